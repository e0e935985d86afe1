"""Large CPU buffers backed by transparent huge pages.

On Linux, a new tensor of more than 32 MB is fresh memory from the kernel
(glibc maps every block above its largest mmap threshold and unmaps it when
freed), and so is any smaller one that lands where glibc has trimmed its
heap.  Each 4 KB page of it faults in on first touch: about 9,000 faults and
12 ms for a ``[72000, 128]`` float32 tensor here, several times the cost of
writing it.  The units' large intermediates and gradients are allocated by
:func:`empty`, which asks the kernel to back them with 2 MB pages
(``madvise(MADV_HUGEPAGE)``, honoured where
``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise``): the same
tensor then costs 2.9 ms.

This is what PyTorch itself does for every allocation of 2 MB or more under
``THP_MEM_ALLOC_ENABLE=1`` (a process-wide setting read once at start-up);
:func:`empty` applies it to the units' own buffers only, whatever the
process's setting.  It changes no value.  Elsewhere (other systems, THP set
to ``always`` or ``never``, CUDA, meta and fake tensors, tracing under
``torch.compile``) :func:`empty` is :func:`torch.empty`.  Switch it off with
:func:`set_huge_pages` or ``GLORE_PYG_HUGE_PAGES=0``.

**Buffer cache.**  Huge pages make fresh memory cheaper, not free: its
faults and the kernel's zeroing come back on every step (at 10^6 points,
2-3 s of system time per forward and backward here).  PyTorch caches freed
memory for CUDA but not for the CPU, so :func:`empty` keeps the buffers of
more than 8 MB it hands out (one :class:`torch.UntypedStorage` each,
rounded up to whole 2 MB pages, on huge pages) and hands a buffer out
again once no tensor uses it any more (its storage's reference count is
back to the cache's own): the smallest free buffer that holds a request
serves it.  Smaller buffers are left to glibc's heap.  Measured here on
the benchmark's 8 point clouds (``LatentGNNConv(128, [64])``, paired runs
in one process): caching from 8 MB instead of only above glibc's 32 MB
mmap threshold made a step 8-14% faster (median 152 against 177 ms), 4%
with the benchmark's naive version run between steps; from 2 or 4 MB
gained nothing more.  Best fit, against serving only requests at most a
quarter smaller than a buffer, changed no time (30 paired steps) and
lowered the peaks (the benchmark's memory measurement): ``GloReConv`` on
the point clouds 338 against 374 MB over 5 steps, the 10^6-point
``LatentGNNConv(64, [64], channel_stride=1)`` 18.3 against 20.1 times its
input over 2 steps (16.2 without the cache: glibc returns blocks that
large to the kernel the moment they are freed).

The price is the cache's own footprint: free buffers stay resident until
a request reuses them.  At each call of :func:`empty` the cache keeps at
most :func:`cache_limit` bytes of them (``GLORE_PYG_BUFFER_CACHE``, default
2 GiB), releasing the least recently used first; :func:`empty_cache`
releases them all and ``GLORE_PYG_BUFFER_CACHE=0`` (or
:func:`set_cache_limit`) switches the cache off.  A tensor from the cache
may sit in a larger storage than itself, which ``torch.save`` would write
whole: ``clone()`` a unit's output before saving it on its own.  Values
never depend on the cache: a buffer is uninitialised memory either way.
Not cached: other devices, tensor subclasses (fake, functional), tracing
under ``torch.compile`` or export, and deterministic mode with
``torch.utils.deterministic.fill_uninitialized_memory`` (which wants every
new buffer filled).
"""
import ctypes
import math
import os
import sys
import threading
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.compiler import is_exporting

HUGE_PAGE = 1 << 21  # 2 MiB, the x86-64 and arm64 (4K base page) THP size
MIN_BYTES = 4 * HUGE_PAGE  # smaller buffers gain little: their edges stay
# on small pages
# smaller blocks are left to glibc's heap (module docstring)
CACHE_MIN_BYTES = 8 << 20
_THP_MODE = '/sys/kernel/mm/transparent_hugepage/enabled'
_MADV_HUGEPAGE = 14  # <sys/mman.h> on Linux

_enabled = os.environ.get('GLORE_PYG_HUGE_PAGES', '1') != '0'
_madvise: Optional[Callable[[int, int, int], int]] = None
_mincore: Optional[Callable] = None
_probed = False


def _probe() -> Optional[Callable[[int, int, int], int]]:
    """libc's ``madvise`` where the kernel backs advised memory (and only
    advised memory) with huge pages; otherwise None."""
    global _mincore
    if not sys.platform.startswith('linux'):
        return None
    try:
        with open(_THP_MODE) as f:
            if '[madvise]' not in f.read():
                return None
        libc = ctypes.CDLL(None, use_errno=True)
        fn, _mincore = libc.madvise, libc.mincore
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    _mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                         ctypes.POINTER(ctypes.c_ubyte)]
    _mincore.restype = ctypes.c_int
    return fn


def _fresh(address: int) -> bool:
    """Whether the page at ``address`` (page-aligned) is not resident yet:
    memory just mapped, not a reused part of the heap (advice there would
    only split the heap's mapping)."""
    if _mincore is None:
        return True
    state = ctypes.c_ubyte(0)
    if _mincore(address, 1, ctypes.byref(state)) != 0:
        return True
    return not state.value & 1


def huge_pages_available() -> bool:
    """Whether :func:`empty` backs large CPU buffers with huge pages here
    (Linux with transparent huge pages in ``madvise`` mode, not switched
    off)."""
    global _madvise, _probed
    if not _probed:
        _madvise, _probed = _probe(), True
    return _enabled and _madvise is not None


def set_huge_pages(enabled: bool) -> bool:
    """Switches huge-page backing of the units' buffers on or off; returns
    the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def advise_huge_pages(t: Tensor) -> Tensor:
    """Asks for huge pages behind the CPU tensor ``t`` (its whole 2 MB-aligned
    interior) if that memory is fresh (not resident yet); returns ``t``.
    Nothing happens where :func:`huge_pages_available` is false."""
    if (t.device.type != 'cpu' or torch.compiler.is_compiling()
            or is_exporting()):
        return t
    try:
        storage = t.untyped_storage()
        if type(t) in (Tensor, torch.nn.Parameter):
            _advise(storage.data_ptr(), storage.nbytes())
    except RuntimeError:  # fake or otherwise storage-less tensors
        pass
    return t


def _advise(start: int, nbytes: int):
    if nbytes < MIN_BYTES or not huge_pages_available():
        return
    first = -(-start // HUGE_PAGE) * HUGE_PAGE
    last = (start + nbytes) // HUGE_PAGE * HUGE_PAGE
    if last > first and _madvise is not None and _fresh(first):
        _madvise(first, last - first, _MADV_HUGEPAGE)  # advice: may fail


_use_count: Optional[Callable[[int], int]] = getattr(
    torch._C, '_storage_Use_Count', None)


def _limit_from_env() -> int:
    value = os.environ.get('GLORE_PYG_BUFFER_CACHE', str(2 << 30))
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise ValueError(f"GLORE_PYG_BUFFER_CACHE must be a number of "
                         f"bytes >= 0, got {value!r}")
    return limit


class _Cache:
    """The buffers :func:`empty` has handed out: ``[storage, nbytes, last
    use]`` entries, each storage held once here (reference count 1 when
    no tensor uses it)."""

    def __init__(self, limit: int):
        self.lock = threading.Lock()
        self.entries: List[list] = []
        self.limit = limit
        self.clock = 0

    @staticmethod
    def free(entry: list) -> bool:
        return _use_count(entry[0]._cdata) == 1

    def take(self, nbytes: int) -> torch.UntypedStorage:
        with self.lock:
            self.clock += 1
            free = [e for e in self.entries if self.free(e)]
            # best fit: any larger free buffer is resident already, so it
            # costs no new memory (module docstring)
            fits = [e for e in free if nbytes <= e[1]]
            best = min(fits, key=lambda e: e[1]) if fits else None
            # the limit, at every call (before a new buffer: this may be
            # the peak)
            self.drop(free, self.limit, spare=best)
            if best is not None:
                best[2] = self.clock
                return best[0]
            # whole huge pages: a slightly larger request fits it next time
            size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
            storage = torch.UntypedStorage(size)
            _advise(storage.data_ptr(), size)
            if self.limit > 0:
                self.entries.append([storage, size, self.clock])
            return storage

    def release(self, keep: int):
        """Drops free buffers, least recently used first, until at most
        ``keep`` bytes of them remain (call with the lock held)."""
        self.drop([e for e in self.entries if self.free(e)], keep)

    def drop(self, free: List[list], keep: int,
             spare: Optional[list] = None):
        """Drops entries of ``free`` other than ``spare``, least recently
        used first, until at most ``keep`` bytes of them remain."""
        free = sorted((e for e in free if e is not spare), key=lambda e: e[2])
        total = sum(e[1] for e in free)
        gone = set()
        for entry in free:
            if total <= keep:
                break
            total -= entry[1]
            gone.add(id(entry))
        if gone:
            self.entries = [e for e in self.entries if id(e) not in gone]

    def stats(self) -> Tuple[int, int]:
        with self.lock:
            free = [self.free(e) for e in self.entries]
            return (sum(e[1] for e, f in zip(self.entries, free) if not f),
                    sum(e[1] for e, f in zip(self.entries, free) if f))


_cache = _Cache(_limit_from_env() if _use_count is not None else 0)


def cache_limit() -> int:
    """Bytes of free buffers the cache keeps (0: no cache)."""
    return _cache.limit


def set_cache_limit(nbytes: int) -> int:
    """Sets how many bytes of free buffers the cache keeps (0 switches it
    off and releases them); returns the previous limit."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"'nbytes' must be an int >= 0, got {nbytes!r}")
    if _use_count is None and nbytes > 0:
        raise RuntimeError("this PyTorch build has no storage reference "
                           "count (torch._C._storage_Use_Count): the buffer "
                           "cache cannot tell free buffers")
    with _cache.lock:
        previous, _cache.limit = _cache.limit, nbytes
        _cache.release(nbytes)
        if nbytes == 0:  # forget the ones in use too
            _cache.entries = []
    return previous


def empty_cache():
    """Releases every free cached buffer (buffers in use stay cached)."""
    with _cache.lock:
        _cache.release(0)


def cached_bytes() -> Tuple[int, int]:
    """Bytes of cached buffers ``(in use, free)``."""
    return _cache.stats()


def _cacheable(like: Tensor, nbytes: int) -> bool:
    return (nbytes > CACHE_MIN_BYTES and _cache.limit > 0
            and like.device.type == 'cpu'
            and type(like) in (Tensor, torch.nn.Parameter)
            and not torch.compiler.is_compiling() and not is_exporting()
            and not (torch.are_deterministic_algorithms_enabled()
                     and getattr(getattr(torch.utils, 'deterministic', None),
                                 'fill_uninitialized_memory', True)))


def empty(shape: Sequence[int], like: Tensor) -> Tensor:
    """``torch.empty(shape)`` with the dtype and device of ``like``: from the
    buffer cache and on huge pages where that pays (module docstring)."""
    shape = tuple(shape)
    nbytes = math.prod(shape) * like.element_size()
    if not _cacheable(like, nbytes):
        return advise_huge_pages(torch.empty(shape, dtype=like.dtype,
                                             device=like.device))
    out = torch.empty(0, dtype=like.dtype, device='cpu')
    return out.set_(_cache.take(nbytes), 0, shape)


def out_buffer(shape: Sequence[int], like: Tensor) -> Optional[Tensor]:
    """An :func:`empty` buffer for an op's ``out=``, or None (a new tensor)
    where ``out=`` is not allowed: under grad mode (double backward,
    tracing) and under ``torch.compile``."""
    if (torch.is_grad_enabled() or torch.compiler.is_compiling()
            or is_exporting()):
        return None
    return empty(shape, like)

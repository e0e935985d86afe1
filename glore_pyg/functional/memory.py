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
"""
import ctypes
import os
import sys
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.compiler import is_exporting

HUGE_PAGE = 1 << 21  # 2 MiB, the x86-64 and arm64 (4K base page) THP size
MIN_BYTES = 4 * HUGE_PAGE  # smaller buffers gain little: their edges stay
# on small pages
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
    nbytes = t.untyped_storage().nbytes()
    if (nbytes < MIN_BYTES or t.device.type != 'cpu'
            or torch.compiler.is_compiling() or is_exporting()
            or not huge_pages_available()):
        return t
    try:
        start = t.untyped_storage().data_ptr()
    except RuntimeError:  # fake or otherwise storage-less tensors
        return t
    first = -(-start // HUGE_PAGE) * HUGE_PAGE
    last = (start + nbytes) // HUGE_PAGE * HUGE_PAGE
    if last > first and _madvise is not None and _fresh(first):
        _madvise(first, last - first, _MADV_HUGEPAGE)  # advice: may fail
    return t


def empty(shape: Sequence[int], like: Tensor) -> Tensor:
    """``torch.empty(shape)`` with the dtype and device of ``like``, on huge
    pages where that pays (module docstring)."""
    return advise_huge_pages(torch.empty(tuple(shape), dtype=like.dtype,
                                         device=like.device))


def out_buffer(shape: Sequence[int], like: Tensor) -> Optional[Tensor]:
    """An :func:`empty` buffer for an op's ``out=``, or None (a new tensor)
    where ``out=`` is not allowed: under grad mode (double backward,
    tracing) and under ``torch.compile``."""
    if (torch.is_grad_enabled() or torch.compiler.is_compiling()
            or is_exporting()):
        return None
    return empty(shape, like)

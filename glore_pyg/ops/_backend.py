"""Which implementation runs an op: probed once, lazily, never by calling a
library just to catch its error.

In order of preference:

1. ``'pyg-lib'``: PyG's own function, when ``torch_geometric.typing`` says
   pyg-lib provides the op (``WITH_FPS`` / ``WITH_KNN`` / ``WITH_RADIUS``,
   PyG >= 2.8).
2. ``'torch_cluster'``: when ``import torch_cluster`` works (older PyG
   versions called it for these ops; PyG 2.8 ignores it).
3. Ours: ``'scipy'`` (one :class:`scipy.spatial.cKDTree` per cloud) for
   :func:`knn` and :func:`radius` on CPU tensors when scipy is importable,
   else ``'torch'``: exact brute force in chunks of at most
   :data:`CHUNK_ENTRIES` distances, on any device; :func:`fps` always runs
   in torch.

``cosine=True`` skips the first two on CPU: both kernels reject it there.
"""
import contextlib
import functools
from typing import Iterator, Optional, Union

import torch

OPS = ('fps', 'knn', 'radius')
NAMES = ('pyg-lib', 'torch_cluster', 'scipy', 'torch')

# Distances computed at a time by the chunked torch path (and query slots
# the scipy path asks for at a time): 16M float32 is 64 MB, large enough that
# a GPU kernel is saturated, small enough to run beside a model.
CHUNK_ENTRIES = 1 << 24

_forced: Optional[str] = None


@functools.lru_cache(maxsize=None)
def pyg_lib_has(op: str) -> bool:
    """Whether PyG's ``torch_geometric.nn.<op>`` runs (pyg-lib provides it)."""
    import torch_geometric.typing
    return bool(getattr(torch_geometric.typing, f'WITH_{op.upper()}', False))


@functools.lru_cache(maxsize=None)
def torch_cluster():
    """The ``torch_cluster`` module, or ``None``."""
    try:
        import torch_cluster as module
    except (ImportError, OSError, RuntimeError):
        # A build against another torch fails with OSError / RuntimeError
        # (undefined symbols) rather than ImportError.
        return None
    return module


@functools.lru_cache(maxsize=None)
def ckdtree():
    """scipy's ``cKDTree`` class, or ``None`` (scipy is optional)."""
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        return None
    return cKDTree


def backend(op: str, device: Union[str, torch.device] = 'cpu',
            cosine: bool = False) -> str:
    r"""The implementation that :func:`glore_pyg.ops.fps`, :func:`knn` or
    :func:`radius` uses for tensors on ``device``.

    Args:
        op (str): :obj:`'fps'`, :obj:`'knn'` or :obj:`'radius'`.
        device (str or torch.device, optional): where the positions lie.
            (default: :obj:`'cpu'`)
        cosine (bool, optional): :func:`knn`'s ``cosine`` argument.
            (default: :obj:`False`)

    Returns:
        str: :obj:`'pyg-lib'`, :obj:`'torch_cluster'`, :obj:`'scipy'` or
        :obj:`'torch'`.

    Raises:
        ValueError: an unknown ``op``.
        RuntimeError: an invalid ``device`` string (from
            :class:`torch.device`); the ``'scipy'`` path forced by the
            tests' ``forced('scipy')`` for tensors that are not on the CPU.
    """
    if op not in OPS:
        raise ValueError(f"'op' must be one of {OPS}, got {op!r}")
    device = torch.device(device)
    on_cpu = device.type == 'cpu'
    ours = 'scipy' if (op != 'fps' and on_cpu
                       and ckdtree() is not None) else 'torch'
    if _forced is not None:
        if _forced == 'scipy' and ours != 'scipy' and op != 'fps':
            raise RuntimeError("the 'scipy' path needs scipy and CPU tensors")
        return 'torch' if _forced == 'scipy' and op == 'fps' else _forced
    if cosine and on_cpu:
        return ours
    if pyg_lib_has(op):
        return 'pyg-lib'
    if torch_cluster() is not None:
        return 'torch_cluster'
    return ours


@contextlib.contextmanager
def forced(name: Optional[str]) -> Iterator[None]:
    """Within the block every op uses implementation ``name`` (tests and
    benchmarks compare ours against the libraries this way); ``'scipy'``
    leaves :func:`fps` on ``'torch'``.  ``None`` restores the dispatch."""
    global _forced
    if name is not None and name not in NAMES:
        raise ValueError(f"'name' must be one of {NAMES} or None, "
                         f'got {name!r}')
    if name == 'pyg-lib' and not all(pyg_lib_has(op) for op in OPS):
        raise RuntimeError('pyg-lib does not provide fps, knn and radius')
    if name == 'torch_cluster' and torch_cluster() is None:
        raise RuntimeError('torch_cluster is not installed')
    if name == 'scipy' and ckdtree() is None:
        raise RuntimeError('scipy is not installed')
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous

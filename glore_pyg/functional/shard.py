r"""Samples split across processes: the reductions of the sharded units.

A global-reasoning unit touches all visible nodes of a sample only through
sums over them (the latent features :math:`\sum_j w_{jk} \mathbf{x}_j`,
LatentGNN's :math:`\sum_j w_{jk}^2`, the node counts of GloRe's mean and the
BatchNorm moments); the latent graph is :math:`d \times d` per sample and
the way back to the visible nodes is row-wise.  So when every process holds
some of the visible nodes of the same samples (a *shard*), one all-reduce
of those sums makes every process's latent nodes equal to those of one
process holding everything, and the rest of the unit runs unchanged.

:class:`Shard` is that all-reduce, on PyTorch's own engine: the
autograd-aware :func:`torch.distributed.nn.functional.all_reduce`, whose
backward all-reduces the gradients, so input gradients are exact too; and
one small :func:`torch.distributed.all_gather` of metadata per call that
makes a disagreement between processes an error on every process instead
of a hang.  :class:`~glore_pyg.functional.Segments` carries an optional
:class:`Shard`; see :func:`glore_pyg.nn.shard_units` for the public entry.
"""
import warnings
import zlib
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['Shard', 'ShardMismatchError', 'all_reduce', 'fingerprint']


def _dist():
    import torch.distributed as dist
    return dist


def all_reduce(t: Tensor, group=None) -> Tensor:
    """The sum of ``t`` over the processes of ``group``, differentiable: the
    backward pass all-reduces the gradients (the autograd-aware
    :func:`torch.distributed.nn.functional.all_reduce`).

    torch 2.13 marks that public module deprecated in favour of a private
    one (``torch.distributed._functional_collectives``); the public one is
    used, its warning silenced here only."""
    from torch.distributed.nn.functional import all_reduce as reduce
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'torch.distributed.nn.functional',
                                FutureWarning)
        return reduce(t, group=group)


def fingerprint(text: str) -> int:
    """A stable 32-bit checksum of ``text`` (CRC-32; Python's ``hash`` of a
    string differs between processes)."""
    return zlib.crc32(text.encode())


class ShardMismatchError(ValueError):
    """Processes of a sharded unit disagree (their inputs, or the unit), or
    one of them rejected its input: raised on every process of the group,
    after the one metadata collective and before any other work."""


#: the fields of the metadata that every process of a shard must share
FIELDS = ('batch_size', 'channels', 'dtype', 'training', 'projection',
          'unit')
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Shard:
    r"""The processes of ``group`` hold parts of the same samples; the sums
    over visible nodes are all-reduced over them.

    Args:
        group (ProcessGroup, optional): the processes that share the
            samples. (default: :obj:`None`: the default group)

    Raises:
        RuntimeError: from every method: ``torch.distributed`` is not
            available or its process group is not initialised.
    """

    def __init__(self, group=None):
        self.group = group

    def __repr__(self) -> str:
        return ('Shard()' if self.group is None else
                f'Shard(group={self.group!r})')

    # -- the group ---------------------------------------------------------
    def check_initialized(self, owner: str = 'the unit'):
        """Raises a ``RuntimeError`` naming ``owner`` unless the process
        group is initialised."""
        dist = _dist()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                f"{owner} is sharded (glore_pyg.nn.shard_units) but "
                f"torch.distributed has no initialised process group: call "
                f"torch.distributed.init_process_group first (e.g. under "
                f"torchrun), or use a model that is not sharded")

    @property
    def world_size(self) -> int:
        """Processes in the group."""
        self.check_initialized()
        return _dist().get_world_size(self.group)

    @property
    def rank(self) -> int:
        """This process's rank in the group."""
        self.check_initialized()
        return _dist().get_rank(self.group)

    # -- the reductions ------------------------------------------------------
    @torch.compiler.disable  # collectives run eagerly (a graph break)
    def all_reduce(self, *tensors: Optional[Tensor]
                   ) -> Tuple[Optional[Tensor], ...]:
        """Each tensor summed over the processes, in one collective
        (flattened and joined; :obj:`None` entries stay :obj:`None`),
        differentiable.  The sum runs in at least float32 and each result
        comes back in its tensor's dtype (a half-precision sum over
        processes would round once per process)."""
        present = [t for t in tensors if t is not None]
        if not present:
            return tuple(tensors)
        dtype = torch.float32
        for t in present:
            dtype = torch.promote_types(dtype, t.dtype)
        flat = torch.cat([t.reshape(-1).to(dtype) for t in present])
        total = all_reduce(flat, self.group)
        parts = iter(total.split([t.numel() for t in present]))
        return tuple(None if t is None else
                     next(parts).view(t.shape).to(t.dtype) for t in tensors)

    @torch.compiler.disable  # collectives run eagerly (a graph break)
    def sum_counts(self, counts: Tensor) -> Tensor:
        """Integer counts (e.g. nodes per sample) summed over the
        processes; not differentiable."""
        total = counts.clone()
        _dist().all_reduce(total, group=self.group)
        return total

    # -- the safety check --------------------------------------------------
    @torch.compiler.disable  # collectives run eagerly (a graph break)
    def agree(self, owner: str, device: torch.device,
              meta: Optional[Sequence[int]],
              error: Optional[BaseException],
              describe: Callable[[], str] = str) -> None:
        """One ``all_gather`` of every process's metadata (the values of
        :data:`FIELDS`, or :obj:`None` with the ``error`` its input raised
        locally); raises on every process when any process has an error or
        the processes disagree.  ``describe()`` (the unit's ``repr``) is
        called and gathered only when the processes disagree on the unit
        (every process then takes that decision from the same table), so
        that the message shows each process's unit.

        Raises:
            ShardMismatchError: another process rejected its input, or the
                processes disagree on a field (the message names it and
                each process's value).
            ValueError, TypeError: this process's own ``error``, re-raised.
        """
        dist = _dist()
        world = dist.get_world_size(self.group)
        row = [1] + [0] * len(FIELDS) if meta is None else [0, *meta]
        mine = torch.tensor(row, dtype=torch.long, device=device)
        table = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(table, mine, group=self.group)
        rows: List[List[int]] = torch.stack(table).tolist()
        if error is not None:
            raise error
        failed = [r for r, values in enumerate(rows) if values[0]]
        if failed:
            raise ShardMismatchError(
                f"{owner} is sharded: process(es) {failed} of the group "
                f"rejected their input (their own error names the cause); "
                f"no process ran the unit")
        for i, field in enumerate(FIELDS, start=1):
            values = [values[i] for values in rows]
            if len(set(values)) > 1:
                shown = [_show(field, v) for v in values]
                if field == 'unit':  # checksums say little: the reprs
                    units: List[object] = [None] * world
                    dist.all_gather_object(units, describe(),
                                           group=self.group)
                    shown = [f'{u} [{c}]' for u, c in zip(units, shown)]
                shown = ', '.join(f'rank {r}: {v}'
                                  for r, v in enumerate(shown))
                raise ShardMismatchError(
                    f"{owner} is sharded, but its processes disagree on "
                    f"{_WHAT[field]} ({shown}); every process must run the "
                    f"same unit on parts of the same samples")


_WHAT = dict(batch_size="the number of samples ('batch_size')",
             channels="the input's channels", dtype="the input's dtype",
             training="training / evaluation mode",
             projection="'return_projection'",
             unit="the unit's configuration (its repr and parameter shapes)")


def _show(field: str, value: int) -> str:
    if field == 'dtype':
        return str(_DTYPES[value]) if 0 <= value < len(_DTYPES) else '?'
    if field == 'training':
        return 'training' if value else 'eval'
    if field == 'projection':
        return str(bool(value))
    if field == 'unit':
        return f'{value:08x}'
    return str(value)


def dtype_code(dtype: torch.dtype) -> int:
    """The index of ``dtype`` among the floating-point dtypes (-1 for
    another)."""
    return _DTYPES.index(dtype) if dtype in _DTYPES else -1

r"""Global reasoning over samples split across processes.

:func:`shard_units` makes the global-reasoning units of a network *sharded*:
on each process a unit receives only its own visible nodes of the samples,
yet computes exactly what one process holding all of them would.  The
papers' visible-to-latent step and its normalisers are sums over the visible
nodes (LatentGNN, `"Learning Efficient Non-local Relations for Visual
Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 3-4; GloRe,
`"Graph-Based Global Reasoning Networks"
<https://arxiv.org/abs/1811.12814>`_, :math:`V = BX`), the latent graph is
:math:`d \times d` per sample and the latent-to-visible step is row-wise, so
one all-reduce of the per-sample latent sums (:math:`S \times d \times C`
numbers, independent of :math:`N`) and of the BatchNorm moments completes
the unit.  See ``docs/scaling.md`` for the cost model.
"""
from typing import List

from torch.nn import Module

from ..functional.shard import Shard
from .norm import convert_distributed_batchnorm
from .units import GlobalReasoningUnit

__all__ = ['shard_units']


def shard_units(module: Module, process_group=None) -> Module:
    r"""Shards every global-reasoning unit of ``module`` (in place) over the
    processes of ``process_group``: each process then passes a unit its
    own visible nodes of the same samples, and every process gets the rows
    of the output that one process would compute on the whole samples.

    Each unit's BatchNorms become :class:`~glore_pyg.nn.DistributedBatchNorm`
    (same parameters, buffers and ``state_dict`` keys), and its sums over
    visible nodes (per-sample latent features, LatentGNN's L2 norms,
    GloRe's node counts) are all-reduced with the autograd-aware
    :func:`torch.distributed.nn.functional.all_reduce`, so:

    * outputs and input gradients equal the rows of the single-process
      ones;
    * parameter gradients summed over the processes equal the
      single-process gradients (``DistributedDataParallel`` *averages*
      them: scale each process's loss by the number of processes, see
      ``docs/scaling.md``);
    * BatchNorm running statistics are the same on every process and equal
      the single-process ones.

    On each call, every process of the group takes part in one small
    ``all_gather`` of metadata first (number of samples, channels, dtype,
    training mode, ``return_projection`` and a checksum of the unit's configuration): a
    disagreement, or an input rejected on one process, raises on every
    process instead of leaving the others waiting in a collective.

    Inputs: node rows ``x [N_p, C]`` of the process with the *global*
    sample ids in ``batch`` and the number of samples in ``batch_size``
    (the same on every process; a process may hold no node of some sample,
    or none at all), or ``ptr``, or ``batch_size`` equal samples; grid
    adapters take each process's rows of the maps (``[B, C, H_p, W]``).
    The memory-lean chunked path (LatentGNN's ``chunk_size``) works
    sharded too.

    .. code-block:: python

        dist.init_process_group('gloo')  # e.g. under torchrun
        unit = shard_units(LatentGNNConv(64, [32]))
        out = unit(x_mine, batch_mine, batch_size=S)  # this rank's rows

    Args:
        module (torch.nn.Module): a unit, a grid adapter or a network
            holding units.
        process_group (ProcessGroup, optional): the processes that hold
            parts of the same samples. (default: :obj:`None`: the default
            group; under ``DistributedDataParallel`` pass a group of its
            own, :func:`torch.distributed.new_group`, so that the units'
            collectives never interleave with DDP's)

    Returns:
        torch.nn.Module: ``module``, its units sharded.

    Raises:
        TypeError: ``module`` not a :class:`torch.nn.Module`; a unit that
            cannot be sharded (:class:`~glore_pyg.nn.NonLocalConv`: its
            attention needs every pair of visible nodes).
        ValueError: ``module`` holds no global-reasoning unit.
    """
    if not isinstance(module, Module):
        raise TypeError(f"'module' must be a torch.nn.Module, got "
                        f"{type(module).__name__}")
    units: List[GlobalReasoningUnit] = [
        m for m in module.modules() if isinstance(m, GlobalReasoningUnit)]
    if not units:
        raise ValueError(f"'module' ({type(module).__name__}) holds no "
                         f"global-reasoning unit to shard")
    for unit in units:
        if not unit.shardable:
            raise TypeError(
                f"{type(unit).__name__} cannot be sharded: its attention "
                f"relates every pair of visible nodes, so each process "
                f"would need the keys and values of all others (O(N) memory "
                f"per process); use GloReConv or LatentGNNConv, whose "
                f"latent nodes need only per-sample sums")
    shard = Shard(process_group)
    for unit in units:
        convert_distributed_batchnorm(unit, process_group)  # in place
        unit.shard = shard
    return module

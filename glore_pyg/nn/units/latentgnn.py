from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, ModuleList, Parameter, Sequential

from ...functional.checks import check_ints
from ...functional.chunked import (Chunk, chunked_map, chunked_reduce,
                                   plan_chunks)
from ...functional.normalize import l2_normalize
from ...functional.segments import Segments
from ..norm import DistributedBatchNorm
from ..stages import LatentAffinityConv, LatentToVisible, VisibleToLatent
from .base import (GlobalReasoningUnit, Projection, check_positive_int,
                   linear_bn, reset_module)

MODES = ('asymmetric', 'symmetric')


class LatentGNNConv(GlobalReasoningUnit):
    r"""The LatentGNN unit from `"Learning Efficient Non-local Relations for
    Visual Recognition" <https://arxiv.org/abs/1905.11634>`_ (ICML 2019) as a
    node-level PyG layer: a non-local (fully connected) graph over the
    visible nodes of each sample, factorised through :math:`d` latent nodes,
    at :math:`O(Nd)` cost: the visible-to-latent (Eq. 3-4), latent-to-latent
    (Eq. 6-8) and latent-to-visible (Eq. 9-10) propagations of the paper,
    with the normalisations and BatchNorm layers of the published
    ``LatentGNNV1`` (latentgnn/LatentGNN-V1-PyTorch).  Per sample and per
    kernel :math:`i`:

    .. math::
        \mathbf{X}_v &= \mathrm{norm}(\mathrm{BN}(\mathbf{X}\mathbf{W}_v)),
        \qquad
        \Psi_{v2l} = \mathrm{norm}_{\text{visible}}\big(\mathrm{ReLU}(
        \mathrm{BN}(\mathbf{X}_v \mathbf{W}_{\psi}))\big)

        \mathbf{Z} &= \Psi_{v2l}^\top \mathbf{X}_v, \qquad
        \tilde{\mathbf{Z}} = \mathrm{softmax}(\hat{\mathbf{Z}}
        \hat{\mathbf{Z}}^\top)\,\mathbf{Z}, \qquad
        \tilde{\mathbf{X}}_i = \Psi_{l2v} \tilde{\mathbf{Z}}

        \mathbf{X}' &= \mathbf{X} + \gamma\, \mathrm{BN}\big(
        [\tilde{\mathbf{X}}_1 \Vert \dots \Vert \tilde{\mathbf{X}}_K]
        \mathbf{W}_{up}\big)

    with :math:`\mathrm{norm}` an L2 normalisation over channels,
    :math:`\Psi_{l2v}` computed like :math:`\Psi_{v2l}` from a second
    projection and L2-normalised over the latent nodes of each visible node
    (``mode="asymmetric"``), or :math:`\Psi_{l2v} = \Psi_{v2l}`, both
    normalised over latent nodes (``mode="symmetric"``), as in the published
    code.  The three stages are :class:`~glore_pyg.nn.VisibleToLatent`,
    :class:`~glore_pyg.nn.LatentAffinityConv` and
    :class:`~glore_pyg.nn.LatentToVisible`.  :math:`\gamma` starts at zero:
    a fresh unit returns its input exactly.

    Args:
        in_channels (int): input (and output) channels :math:`C`.
        latent_dims (list of int): latent nodes of each kernel; one kernel
            per entry (the paper's mixture of low-rank kernels), outputs
            concatenated.
        channel_stride (int, optional): the kernels work on
            ``in_channels // channel_stride`` channels. (default: :obj:`4`)
        mode (str, optional): :obj:`"asymmetric"` (separate
            visible-to-latent and latent-to-visible projections) or
            :obj:`"symmetric"` (one shared projection).
            (default: :obj:`"asymmetric"`)
        graph_conv (bool, optional): add the graph-convolution weight
            :math:`W` (``Linear + BN + ReLU``) after each kernel's
            latent-to-visible step. (default: :obj:`False`)
        without_residual (bool, optional): return
            :math:`\mathrm{BN}([\dots]\mathbf{W}_{up})` alone, without
            :math:`\mathbf{X} + \gamma\,\cdot`. (default: :obj:`False`)
        chunk_size (int, optional): memory-lean mode for very large inputs:
            process at most ``chunk_size`` visible nodes at a time (on the
            CPU at least :meth:`chunk_rows`, see below) and
            recompute their intermediates in backward instead of storing
            them (:mod:`glore_pyg.functional.chunked`).  Same outputs,
            gradients and BatchNorm updates as the default path; peak memory
            a few times the input instead of about twenty, at the price of
            recomputing the cheap row-wise projections.  Each chunk runs
            under :func:`torch.utils.checkpoint.checkpoint`, and BatchNorm
            uses the statistics of all visible nodes (float64 moments summed
            over the chunks): the ``Linear`` and ``ReLU`` modules are called
            per chunk (their hooks fire once per chunk, and again when a
            chunk is recomputed in backward); the ``BatchNorm1d`` modules
            are not called, their parameters and running statistics are
            used and updated as the modules would (so only plain
            ``BatchNorm1d`` is accepted: a ``SyncBatchNorm`` raises a
            ``TypeError``).  Twice differentiable.  On the CPU a chunk
            holds at least 32 MiB per ``[rows, C]`` tensor (131,088 rows at
            ``C = 64`` in float32; see :meth:`chunk_rows`): smaller chunks
            would come from glibc's heap, which keeps what is freed
            resident, so any ``chunk_size`` is lean.
            (default: :obj:`None`: plain autograd)

    Shapes:
        - **input:** node features :math:`(N, C)`, optional ``batch``
          :math:`(N)` (sorted) or ``ptr`` :math:`(S + 1)`, or ``batch_size``
          for :math:`S` equal consecutive samples
        - **output:** :math:`(N, C)`; with ``return_projection=True`` also a
          list with one :class:`~glore_pyg.nn.Projection` per kernel

    Raises:
        ValueError: invalid constructor arguments (``in_channels``,
            ``channel_stride``, ``chunk_size`` or an entry of
            ``latent_dims`` below 1, an empty ``latent_dims``, a
            ``channel_stride`` above ``in_channels``, an unknown ``mode``)
            or input layout (see :class:`~glore_pyg.nn.GlobalReasoningUnit`);
            ``return_projection`` with ``chunk_size``.
        TypeError: ``in_channels``, ``channel_stride``, ``chunk_size`` or an
            entry of ``latent_dims`` not an int, ``latent_dims`` not a list
            (an int included); an input of the wrong dtype or device; a
            ``SyncBatchNorm`` (or other non-``BatchNorm1d`` norm) in the
            chunked mode.
    """
    def __init__(self, in_channels: int, latent_dims: Sequence[int],
                 channel_stride: int = 4, mode: str = 'asymmetric',
                 graph_conv: bool = False, without_residual: bool = False,
                 chunk_size: Optional[int] = None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, 'in_channels')
        self.latent_dims = _check_latent_dims(latent_dims)
        self.channel_stride = check_positive_int(channel_stride,
                                                 'channel_stride')
        if in_channels // channel_stride < 1:
            raise ValueError(f"'channel_stride' ({channel_stride}) leaves no "
                             f"channel of 'in_channels' ({in_channels})")
        if mode not in MODES:
            raise ValueError(f"'mode' must be one of {list(MODES)}, got "
                             f"{mode!r}")
        self.mode = mode
        self.chunk_size = None if chunk_size is None else check_positive_int(
            chunk_size, 'chunk_size')
        self.graph_conv = bool(graph_conv)
        self.without_residual = bool(without_residual)
        c = self.inter_channels = in_channels // channel_stride
        sym = mode == 'symmetric'

        self.down_v2l = linear_bn(in_channels, c)
        self.down_l2v = None if sym else linear_bn(in_channels, c)
        self.psi_v2l = ModuleList(
            [linear_bn(c, d, relu=True) for d in self.latent_dims])
        self.psi_l2v = None if sym else ModuleList(
            [linear_bn(c, d, relu=True) for d in self.latent_dims])
        self.graph_weight = ModuleList([
            linear_bn(c, c, relu=True) for _ in self.latent_dims
        ]) if graph_conv else None
        self.visible_to_latent = VisibleToLatent(
            normalize='l2_latent' if sym else 'l2_visible')
        self.latent_graph = LatentAffinityConv()
        self.latent_to_visible = LatentToVisible(normalize='l2_latent')
        self.up = linear_bn(c * len(self.latent_dims), in_channels)
        self.gamma = Parameter(torch.zeros(1))
        self.reset_parameters()

    @property
    def num_kernels(self) -> int:
        """The number of low-rank kernels :math:`K`,
        ``len(latent_dims)``."""
        return len(self.latent_dims)

    def reset_parameters(self):
        r"""Re-initialises every submodule (PyTorch's defaults; the
        graph-convolution weights, if any, from :math:`\mathcal{N}(0,
        0.01^2)` as in the published code) and zeroes :math:`\gamma`: the
        unit is the identity again."""
        reset_module(self)
        if self.graph_weight is not None:
            for gw in self.graph_weight:  # as in the published code
                torch.nn.init.normal_(gw[0].weight, std=0.01)
        # Zero-initialised residual branch: a fresh unit is the identity.
        self.gamma.data.zero_()

    def add_residual(self, x: Tensor, branch: Tensor) -> Tensor:
        """``x + branch`` (``branch`` alone, in ``x``'s dtype, with
        ``without_residual=True``)."""
        if self.without_residual:
            return branch.to(x.dtype)
        return super().add_residual(x, branch)

    def reason(self, x: Tensor, segments: Segments,
               return_projection: bool = False
               ) -> Tuple[Tensor, List[Projection]]:
        """The branch of node rows ``x [N, C]`` (plain or chunked path), see
        :meth:`GlobalReasoningUnit.reason
        <glore_pyg.nn.GlobalReasoningUnit.reason>`.

        Raises:
            ValueError: ``return_projection`` with ``chunk_size``.
            TypeError: ``chunk_size`` with a norm other than
                ``BatchNorm1d``.
        """
        if self.chunk_size is not None:
            if return_projection:
                raise ValueError("'return_projection' is not available with "
                                 "'chunk_size' (it would store the N x d "
                                 "projections the chunked path avoids)")
            return self._reason_chunked(x, segments), []

        x_v2l, psi_v2l, psi_l2v = self._visible_features(x, _call)
        outs: List[Tensor] = []
        projections: List[Projection] = []
        v2l, l2v = self.visible_to_latent, self.latent_to_visible
        for i in range(self.num_kernels):
            z = v2l(x_v2l, psi_v2l[i], segments=segments)
            z, affinity = self.latent_graph(z, return_affinity=True)
            outs.append(l2v(z, psi_l2v[i], segments=segments))
            if return_projection:  # the weights as the stages apply them
                projections.append(Projection(
                    v2l.applied_weight(psi_v2l[i], segments),
                    l2v.applied_weight(psi_l2v[i], segments),
                    affinity, segments.batch()))
        return self._visible_output(outs, _call), projections

    # The row-wise parts of the unit, shared by the plain and the chunked
    # path, in the order of their heads' BatchNorm levels (see
    # _reason_chunked).  ``head(seq, inp)`` applies a ``Linear + BN
    # (+ ReLU)`` head: the modules themselves on the plain path.
    def _visible_embeddings(self, x: Tensor,
                            head: Callable) -> Tuple[Tensor, Tensor]:
        x_v2l = l2_normalize(head(self.down_v2l, x), dim=1)  # [N, c]
        x_l2v = x_v2l if self.down_l2v is None else l2_normalize(
            head(self.down_l2v, x), dim=1)
        return x_v2l, x_l2v

    def _visible_features(self, x: Tensor, head: Callable):
        x_v2l, x_l2v = self._visible_embeddings(x, head)
        psi_v2l = [head(m, x_v2l) for m in self.psi_v2l]  # [N, d_i]
        psi_l2v = psi_v2l if self.psi_l2v is None else [
            head(m, x_l2v) for m in self.psi_l2v
        ]
        return x_v2l, psi_v2l, psi_l2v

    def _graph_convolution(self, outs: List[Tensor],
                           head: Callable) -> List[Tensor]:
        if self.graph_weight is None:
            return outs
        return [head(m, o) for m, o in zip(self.graph_weight, outs)]

    def _visible_output(self, outs: List[Tensor], head: Callable) -> Tensor:
        outs = self._graph_convolution(outs, head)
        joined = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
        out = head(self.up, joined)  # [N, C]
        return out if self.without_residual else self.gamma * out

    # -- the memory-lean chunked path (chunk_size) -------------------------
    def chunk_rows(self, x: Tensor) -> int:
        """Rows per chunk of the chunked path for the input ``x [N, C]``:
        ``chunk_size``, raised on the CPU to at least :data:`LEAN_BYTES`
        per ``[rows, C]`` tensor.

        A chunk's temporaries are allocated and freed once per chunk and
        pass.  glibc's allocator (the CPU default) serves requests below its
        mmap threshold, which adapts up to 32 MiB, from its heap and keeps
        what is freed there resident, so smaller chunks are not lean
        (measured: 4,000,000 points at ``C = 64`` peaked at 13.5-15.9x the
        input's bytes with 65,536-row chunks, 5x with 262,144); from
        32 MiB on, each temporary is mapped and returned on release.  On
        other devices (CUDA's caching allocator) ``chunk_size`` is used as
        given.

        Raises:
            ValueError: the unit has no ``chunk_size`` (it does not chunk).
        """
        if self.chunk_size is None:
            raise ValueError(f"{self.__class__.__name__} has no "
                             f"'chunk_size': it does not chunk its input")
        rows = self.chunk_size
        if x.device.type != 'cpu':
            return rows
        width = max(x.size(1), 1) * x.element_size()
        return max(rows, -(-LEAN_BYTES // width))

    def _reason_chunked(self, x: Tensor, seg: Segments) -> Tensor:
        """The same computation in passes over chunks of visible nodes.

        A BatchNorm with batch statistics needs those of all visible nodes
        before any row after it exists, so the heads form levels: down
        projections, :math:`\\psi` heads, graph-convolution heads,
        expansion.  Each level with batch statistics costs one pass that
        computes the rows up to its ``Linear`` layers and sums their
        float64 moments; after the :math:`\\psi` level, one pass sums the
        per-sample latent features; the last pass computes the output rows.
        Each pass keeps only its chunks' inputs for backward.  The
        ``Linear`` and ``ReLU`` modules are called per chunk, the
        ``BatchNorm1d`` modules are not (see :class:`_ChunkHead`).

        BatchNorm with running statistics (eval mode) is torch's
        :func:`~torch.nn.functional.batch_norm`, as in ``BatchNorm1d``.
        With the chunks' batch statistics, the affine step and the
        running-statistics update are written out: ``F.batch_norm`` does
        not differentiate through given statistics, and torch's functions
        that update running statistics (``F.batch_norm``,
        ``torch.batch_norm_update_stats``) take the rows, not moments.
        """
        self._check_plain_batchnorm(seg.shard is not None)
        chunks = plan_chunks(x, seg, self.chunk_rows(x))
        level = partial(_level_statistics, chunks, seg,
                        torch.promote_types(x.dtype, torch.float32))
        stats = level({}, [self.down_v2l, self.down_l2v],
                      self._embedding_rows)
        stats = level(stats, [*self.psi_v2l, *(self.psi_l2v or [])],
                      self._feature_rows)
        latent = self._latent_nodes(chunks, seg, stats)
        stats = level(stats, [*(self.graph_weight or [])], self._graph_rows,
                      latent)
        stats = level(stats, [self.up], self._output_rows, latent)
        return chunked_map(partial(_chunk_rows, self._output_rows), chunks,
                           [stats, latent])

    def _check_plain_batchnorm(self, sharded: bool):
        # sharded: shard_units made them DistributedBatchNorm, whose
        # statistics the chunked path all-reduces itself (Segments.reduce)
        allowed = (BatchNorm1d, DistributedBatchNorm) if sharded else (
            BatchNorm1d, )
        for name, seq in self.named_modules():
            if isinstance(seq, Sequential) and type(seq[1]) not in allowed:
                raise TypeError(
                    f"'chunk_size' needs plain BatchNorm1d modules (it "
                    f"normalises with statistics summed over chunks), but "
                    f"'{name}.1' is {type(seq[1]).__name__}")

    def _latent_nodes(self, chunks: Sequence[Chunk], seg: Segments,
                      stats: Dict[Sequential, Tuple[Tensor, Tensor]]
                      ) -> List[Tensor]:
        """Each kernel's latent features after the latent graph,
        ``[S, d_i, c]``: the per-sample sums of
        :meth:`VisibleToLatent.accumulate` over the chunks, finished."""
        v2l = self.visible_to_latent
        sums = iter(seg.reduce(*chunked_reduce(
            partial(_chunk_rows, self._latent_sums), chunks, [stats, []],
            num_samples=seg.num_samples)))
        latent = []
        for _ in range(self.num_kernels):
            pooled = next(sums)
            sum_sq = next(sums) if v2l.normalize == 'l2_visible' else None
            latent.append(self.latent_graph(
                v2l.finish(pooled, sum_sq,
                           seg.total_counts() if v2l.mean else None)))
        return latent

    # The rows of one chunk ``xc`` (of sample ``sample``) up to each level's
    # heads, ``rows(xc, sample, head, latent)``, and the latent sums.
    def _embedding_rows(self, xc: Tensor, sample: int, head: Callable,
                        latent: List[Tensor]):
        return self._visible_embeddings(xc, head)

    def _feature_rows(self, xc: Tensor, sample: int, head: Callable,
                      latent: List[Tensor]):
        return self._visible_features(xc, head)

    def _latent_sums(self, xc: Tensor, sample: int, head: Callable,
                     latent: List[Tensor]) -> Tuple[Tensor, ...]:
        x_v2l, psi_v2l, _ = self._visible_features(xc, head)
        one = Segments.from_batch(xc)  # the chunk as one sample
        return tuple(t[0] for psi in psi_v2l for t in
                     self.visible_to_latent.accumulate(x_v2l, psi, one)
                     if t is not None)

    def _propagated_rows(self, xc: Tensor, sample: int, head: Callable,
                         latent: List[Tensor]) -> List[Tensor]:
        _, _, psi_l2v = self._visible_features(xc, head)
        return [self.latent_to_visible(z[sample:sample + 1], psi,
                                       batch_size=1)
                for z, psi in zip(latent, psi_l2v)]

    def _graph_rows(self, xc: Tensor, sample: int, head: Callable,
                    latent: List[Tensor]) -> List[Tensor]:
        outs = self._propagated_rows(xc, sample, head, latent)
        return self._graph_convolution(outs, head)

    def _output_rows(self, xc: Tensor, sample: int, head: Callable,
                     latent: List[Tensor]) -> Tensor:
        outs = self._propagated_rows(xc, sample, head, latent)
        return self._visible_output(outs, head)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_dims={self.latent_dims}, '
                f'channel_stride={self.channel_stride}, mode={self.mode!r}, '
                f'graph_conv={self.graph_conv}' +
                (f', chunk_size={self.chunk_size})' if self.chunk_size
                 else ')'))


#: the smallest ``[rows, C]`` chunk tensor of the chunked path on the CPU,
#: in bytes: glibc's largest mmap threshold (32 MiB) and a page
LEAN_BYTES = (32 << 20) + 4096


def _check_latent_dims(latent_dims) -> List[int]:
    """``latent_dims`` as a list of ints >= 1, one per kernel; a single int
    is refused (``[64]`` is one kernel of 64 latent nodes)."""
    return check_ints(latent_dims, 'latent_dims', 1, 'one per kernel, e.g. '
                      '[64] for one kernel of 64 latent nodes')


def _call(seq: Sequential, inp: Tensor) -> Tensor:
    return seq(inp)


class _ChunkHead:
    """``head(seq, inp)`` of the row-wise helpers on the chunked path:
    ``Linear``, BatchNorm, ``ReLU`` if the head has one, calling the
    ``Linear`` and ``ReLU`` modules but not the ``BatchNorm1d``.  BatchNorm
    normalises with the batch statistics ``stats[seq]`` (those of all
    visible nodes) if given, else with the running statistics.  For the
    heads in ``record`` the statistics are not known yet: their float64
    moments ``[2, F]`` (sums of the ``Linear`` output and of its square) are
    kept in ``moments`` and the ``Linear`` output is returned."""
    def __init__(self, stats: Dict[Sequential, Tuple[Tensor, Tensor]],
                 record: Sequence[Sequential] = ()):
        self.stats, self.record = stats, tuple(record)
        self.moments: Dict[Sequential, Tensor] = {}

    def __call__(self, seq: Sequential, inp: Tensor) -> Tensor:
        lin = seq[0](inp)
        if seq in self.record:
            a = lin.double()
            self.moments[seq] = torch.stack([a.sum(0), (a * a).sum(0)])
            return lin
        bn = seq[1]
        if seq in self.stats:
            out = _normalize(lin, *self.stats[seq], bn)
        else:  # running statistics, as BatchNorm1d in eval mode
            out = F.batch_norm(lin, bn.running_mean, bn.running_var,
                               bn.weight, bn.bias, False, 0.0, bn.eps)
        return seq[2](out) if len(seq) == 3 else out


# The functions the chunked passes run on each chunk (under checkpoint):
# ``rows`` on the chunk with the statistics known so far.
def _chunk_rows(rows: Callable, xc: Tensor, sample: int,
                stats: Dict[Sequential, Tuple[Tensor, Tensor]],
                latent: List[Tensor]):
    return rows(xc, sample, _ChunkHead(stats), latent)


def _chunk_moments(rows: Callable, record: Sequence[Sequential], xc: Tensor,
                   sample: int, stats: Dict[Sequential, Tuple[Tensor, Tensor]],
                   latent: List[Tensor]) -> Tuple[Tensor, ...]:
    head = _ChunkHead(stats, record)
    rows(xc, sample, head, latent)
    return tuple(head.moments[seq] for seq in record)


def _level_statistics(chunks: Sequence[Chunk], seg: Segments,
                      dtype: torch.dtype,
                      stats: Dict[Sequential, Tuple[Tensor, Tensor]],
                      heads: Sequence[Optional[Sequential]], rows: Callable,
                      latent: Sequence[Tensor] = ()
                      ) -> Dict[Sequential, Tuple[Tensor, Tensor]]:
    """``stats`` and the batch statistics of one level of ``heads`` (those
    whose BatchNorm uses batch statistics), from their moments summed over
    the chunks in one pass of ``rows`` (and over the processes of a
    sharded ``seg``); updates the running statistics.
    A new dict: the passes before recompute with the one they were given."""
    record = [seq for seq in heads
              if seq is not None and _uses_batch_statistics(seq[1])]
    if not record:
        return stats
    sums = seg.reduce(*chunked_reduce(partial(_chunk_moments, rows, record),
                                      chunks, [stats, list(latent)]))
    n = seg.num_nodes if seg.shard is None else int(
        seg.total_counts().sum())
    new = {seq: _batch_statistics(seq[1], total, n, dtype)
           for seq, total in zip(record, sums)}
    return {**stats, **new}


def _uses_batch_statistics(bn: BatchNorm1d) -> bool:
    # as BatchNorm1d.forward decides
    return bn.training or (bn.running_mean is None and bn.running_var is None)


def _normalize(lin: Tensor, mean: Tensor, var: Tensor,
               bn: BatchNorm1d) -> Tensor:
    """BatchNorm's affine step with given batch statistics, which carry
    gradients (``F.batch_norm`` takes given statistics only as running ones
    and does not differentiate through them)."""
    scale = torch.rsqrt(var + bn.eps)
    if bn.affine:
        out = (lin - mean) * (scale * bn.weight) + bn.bias
    else:
        out = (lin - mean) * scale
    # float32 statistics of half-precision rows: back to the rows' dtype,
    # as BatchNorm1d returns
    return out.to(lin.dtype)


def _batch_statistics(bn: BatchNorm1d, sums: Tensor, n: int,
                      dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """(mean, biased variance) in ``dtype`` from the summed float64 moments
    ``[2, F]`` of ``n`` rows; updates ``bn``'s running statistics as
    ``BatchNorm1d.forward`` does in training mode."""
    if n < 2:
        raise ValueError(f"BatchNorm in training mode needs more than one "
                         f"visible node, got {n}")
    mean = sums[0] / n
    var = (sums[1] / n - mean * mean).clamp_min(0)
    if bn.training and bn.track_running_stats:
        _update_running_statistics(bn, mean, var, n)
    return mean.to(dtype), var.to(dtype)


@torch.no_grad()
def _update_running_statistics(bn: BatchNorm1d, mean: Tensor, var: Tensor,
                               n: int):
    """``BatchNorm1d``'s update of its running statistics from the batch
    ``mean`` and biased ``var`` of ``n`` rows: an exponential average with
    ``momentum``, or with ``momentum=None`` the cumulative average over
    ``num_batches_tracked``; the running variance is the unbiased one.
    Written out because torch's functions that update running statistics
    (``F.batch_norm``, ``torch.batch_norm_update_stats``) take the rows, not
    their moments."""
    bn.num_batches_tracked.add_(1)
    factor = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
              else bn.momentum)
    dtype = bn.running_mean.dtype
    bn.running_mean.mul_(1 - factor).add_(factor * mean.to(dtype))
    bn.running_var.mul_(1 - factor).add_(
        factor * (var * n / (n - 1)).to(dtype))

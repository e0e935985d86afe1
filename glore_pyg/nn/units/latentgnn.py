from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, ModuleList, Parameter, Sequential

from ...functional.batch_norm import (batch_norm_rows, cat,
                                      batch_statistics, moments,
                                      uses_batch_stats)
from ...functional.chunked import chunked_map, chunked_reduce, plan_chunks
from ...functional.normalize import l2_normalize, normalize_projection
from ...functional.residual import Residual, add_residual
from ...functional.segments import Segments, channel_views
from ..stages import LatentAffinityConv, LatentToVisible, VisibleToLatent
from .base import (Projection, apply_heads, check_positive_int, linear_bn,
                   node_layout, reset_module)

MODES = ('asymmetric', 'symmetric')


class _NextLevel(Exception):
    """A head whose BatchNorm statistics are not known yet: the pass has
    gathered what it needs."""


class LatentGNNConv(Module):
    r"""The LatentGNN unit from `"Learning Efficient Non-local Relations for
    Visual Recognition" <https://arxiv.org/abs/1905.11634>`_ (ICML 2019) as a
    node-level PyG layer: a non-local (fully connected) graph over the
    visible nodes of each sample, factorised through :math:`d` latent nodes,
    at :math:`O(Nd)` cost.  Per sample and per kernel :math:`i`:

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
            process at most ``chunk_size`` visible nodes at a time and
            recompute their intermediates in backward instead of storing
            them (:mod:`glore_pyg.functional.chunked`).  Same outputs,
            gradients and BatchNorm updates as the default path; peak memory
            a few times the input instead of about twenty, at the price of
            recomputing the cheap row-wise projections.
            (default: :obj:`None`: plain autograd)

    Shapes:
        - **input:** node features :math:`(N, C)`, optional ``batch``
          :math:`(N)` (sorted) or ``ptr`` :math:`(S + 1)`, or ``batch_size``
          for :math:`S` equal consecutive samples
        - **output:** :math:`(N, C)`; with ``return_projection=True`` also a
          list with one :class:`~glore_pyg.nn.Projection` per kernel
    """
    def __init__(self, in_channels: int, latent_dims: Sequence[int],
                 channel_stride: int = 4, mode: str = 'asymmetric',
                 graph_conv: bool = False, without_residual: bool = False,
                 chunk_size: Optional[int] = None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, 'in_channels')
        if isinstance(latent_dims, int) or len(latent_dims) == 0:
            raise ValueError(f"'latent_dims' must be a non-empty list of "
                             f"positive ints, got {latent_dims!r}")
        self.latent_dims = [
            check_positive_int(d, 'latent_dims') for d in latent_dims
        ]
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
    def supports_channels_first(self) -> bool:
        """Whether :meth:`forward_segments` takes channels-first node
        tensors (not in the chunked mode, which works on rows)."""
        return self.chunk_size is None

    @property
    def num_kernels(self) -> int:
        return len(self.latent_dims)

    def reset_parameters(self):
        reset_module(self)
        if self.graph_weight is not None:
            for gw in self.graph_weight:  # as in the published code
                torch.nn.init.normal_(gw[0].weight, std=0.01)
        # Zero-initialised residual branch: a fresh unit is the identity.
        self.gamma.data.zero_()

    def forward(
        self,
        x: Tensor,
        batch: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        batch_size: Optional[int] = None,
        return_projection: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, List[Projection]]]:
        seg = node_layout(x, self.in_channels, batch, ptr, batch_size)
        return self.forward_segments(x, seg, return_projection)

    def forward_segments(
        self,
        x: Tensor,
        seg: Segments,
        return_projection: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, List[Projection]]]:
        """:meth:`forward` on node features in the layout ``seg``: rows
        ``[N, C]`` or channels-first ``[S, C, n]`` (the grid adapters; not
        with ``chunk_size``)."""
        if self.chunk_size is not None and seg.num_nodes > 0:
            if seg.channels_first:
                raise ValueError("'chunk_size' works on the rows layout "
                                 "[N, C] only")
            if return_projection:
                raise ValueError("'return_projection' is not available with "
                                 "'chunk_size' (it would store the N x d "
                                 "projections the chunked path avoids)")
            return self._forward_chunked(x, seg)

        # x's first product and the residual sum share x's gradient buffer
        res = None if self.without_residual else Residual(x, seg)

        def heads(seqs: List[Sequential], inp: Tensor,
                  scale: Optional[Tensor] = None) -> Tensor:
            product = res.linear if res is not None and inp is x else None
            return apply_heads(seg, inp, seqs, scale, product)

        x_v2l, psi_v2l, psi_l2v = self._visible_features(x, heads)
        outs: List[Tensor] = []
        projections: List[Projection] = []
        for i in range(self.num_kernels):
            z = self.visible_to_latent(x_v2l, psi_v2l[i], segments=seg)
            z, affinity = self.latent_graph(z, return_affinity=True)
            outs.append(self.latent_to_visible(z, psi_l2v[i], segments=seg))
            if return_projection:
                v2l, l2v = self.visible_to_latent, self.latent_to_visible
                projections.append(Projection(
                    seg.rows(normalize_projection(psi_v2l[i], v2l.normalize,
                                                  seg, eps=v2l.eps)),
                    seg.rows(normalize_projection(psi_l2v[i], l2v.normalize,
                                                  seg, eps=l2v.eps)),
                    affinity, seg.batch()))
        out = self._visible_output(x, outs, heads, self.gamma,
                                   None if res is None else res.add)
        if return_projection:
            return out, projections
        return out

    # The row-wise parts of the unit, shared by the plain and the chunked
    # path.  ``heads(seqs, inp, scale=None)`` applies ``Linear + BN
    # (+ ReLU)`` heads that share their input, times ``scale``, outputs
    # concatenated on the channel axis, and returns a tensor that nothing
    # has saved for backward (the code below works in place on it).
    def _visible_features(self, x: Tensor, heads: Callable,
                          merge: bool = True):
        downs = [self.down_v2l] + ([] if self.down_l2v is None else
                                   [self.down_l2v])
        # L2-normalised in place (BatchNorm's backward needs its input, not
        # its output); with `merge`, both down projections in one product.
        # (The chunked path does not merge: a [chunk, 2c] temporary would
        # pass glibc's 32 MB mmap threshold at chunk_size=65536, c=64, and
        # then fault its pages in on every use.)
        if merge or len(downs) == 1:
            x_vis = l2_normalize(heads(downs, x), dim=1, inplace=True,
                                 groups=len(downs))
            # [N, c] each: x_v2l twice (the ψ heads' and the pooling's
            # input), so that their gradients and x_l2v's sum into one
            # buffer (channel_views)
            c = self.inter_channels
            l2v = (0, c) if len(downs) == 1 else (c, 2 * c)
            x_v2l, x_psi, x_l2v = channel_views(x_vis, [(0, c), (0, c), l2v])
        else:
            x_v2l, x_l2v = [l2_normalize(heads([m], x), dim=1, inplace=True)
                            for m in downs]
            x_psi = x_v2l
        psi_v2l = [heads([m], x_psi) for m in self.psi_v2l]  # [N, d_i]
        psi_l2v = psi_v2l if self.psi_l2v is None else [
            heads([m], x_l2v) for m in self.psi_l2v
        ]
        return x_v2l, psi_v2l, psi_l2v

    def _visible_output(self, x: Tensor, outs: List[Tensor], heads: Callable,
                        gamma: Tensor,
                        add: Optional[Callable[[Tensor], Tensor]] = None
                        ) -> Tensor:
        if self.graph_weight is not None:
            outs = [heads([m], o) for m, o in zip(self.graph_weight, outs)]
        joined = cat(outs, dim=1)  # [N, K * c]
        if self.without_residual:
            return heads([self.up], joined)
        branch = heads([self.up], joined, scale=gamma)
        return add_residual(x, branch) if add is None else add(branch)

    def _forward_chunked(self, x: Tensor, seg: Segments) -> Tensor:
        """The same computation in passes over chunks of visible nodes:
        BatchNorm moments level by level, the per-sample latent sums, then
        the output rows; each pass stores only ``x`` and small tensors."""
        chunks = plan_chunks(seg, self.chunk_size)
        heads = {id(m): name for name, m in self.named_modules()
                 if isinstance(m, Sequential)}
        by_name = {name: m for name, m in self.named_modules()
                   if isinstance(m, Sequential)}
        known = dict(self.named_parameters())  # name -> tensor (globals)
        for name, seq in by_name.items():
            if not uses_batch_stats(seq[1]):
                known[name + '.mean'] = seq[1].running_mean
                known[name + '.var'] = seq[1].running_var

        def run(targets: List[str], mode: str):
            keys = list(known)

            def fn(xc: Tensor, sample: int, *tensors: Tensor):
                T = dict(zip(keys, tensors))
                recorded: Dict[str, Tensor] = {}

                def head(seqs: List[Sequential], inp: Tensor,
                         scale: Optional[Tensor] = None) -> Tensor:
                    seq, = seqs  # one head at a time (merge=False)
                    name = heads[id(seq)]
                    lin = inp @ T[name + '.0.weight'].t()
                    if name in targets:  # only its moments are wanted
                        recorded[name] = moments(lin)
                        # a copy: what follows may work in place on it
                        return lin.clone()
                    if name + '.mean' not in T:
                        raise _NextLevel
                    weight, bias = T[name + '.1.weight'], T[name + '.1.bias']
                    if scale is not None:
                        weight, bias = scale * weight, scale * bias
                    out = batch_norm_rows(lin, T[name + '.mean'],
                                          T[name + '.var'], seq[1], weight,
                                          bias)
                    return torch.relu(out) if len(seq) == 3 else out

                try:
                    x_v2l, psi_v2l, psi_l2v = self._visible_features(
                        xc, head, merge=False)
                    if mode == 'latent':
                        seg_c = Segments.from_batch(xc)
                        sums = [t[0] for psi in psi_v2l for t in
                                self.visible_to_latent.accumulate(
                                    x_v2l, psi, seg_c) if t is not None]
                        return tuple(sums)
                    if 'latent.0' not in T:
                        raise _NextLevel
                    # .forward: module hooks (e.g. FlopCounterMode's module
                    # tracker) must not fire inside an autograd.Function.
                    l2v = self.latent_to_visible.forward
                    outs = [
                        l2v(T[f'latent.{i}'][sample:sample + 1], psi,
                            batch_size=1) for i, psi in enumerate(psi_l2v)
                    ]
                    rows = self._visible_output(xc, outs, head, T['gamma'])
                except _NextLevel:
                    rows = None
                if mode == 'moments':
                    return tuple(recorded[name] for name in targets)
                return rows

            tensors = list(known.values())
            if mode == 'moments':
                sums = chunked_reduce(fn, x, chunks, tensors)
                for name, total in zip(targets, sums):
                    mean, var = batch_statistics(by_name[name][1], total,
                                                 x.size(0), x.dtype)
                    known[name + '.mean'], known[name + '.var'] = mean, var
            elif mode == 'latent':
                sums = iter(chunked_reduce(fn, x, chunks, tensors,
                                           num_samples=seg.num_samples))
                v2l = self.visible_to_latent
                for i in range(self.num_kernels):
                    pooled = next(sums)
                    sum_sq = next(sums) if v2l.normalize == 'l2_visible' \
                        else None
                    z = v2l.finish(pooled, sum_sq, seg.counts())
                    known[f'latent.{i}'] = self.latent_graph(z)
            else:
                return chunked_map(fn, x, chunks, tensors)

        def level(*modules) -> None:
            targets = [heads[id(m)] for m in modules if m is not None]
            targets = [t for t in targets if t + '.mean' not in known]
            if targets:
                run(targets, 'moments')

        level(self.down_v2l, self.down_l2v)
        level(*self.psi_v2l, *(self.psi_l2v or []))
        run([], 'latent')
        level(*(self.graph_weight or []))
        level(self.up)
        return run([], 'rows')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_dims={self.latent_dims}, '
                f'channel_stride={self.channel_stride}, mode={self.mode!r}, '
                f'graph_conv={self.graph_conv}' +
                (f', chunk_size={self.chunk_size})' if self.chunk_size
                 else ')'))

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, ModuleList, Parameter

from ...functional.normalize import normalize_projection
from ..stages import LatentAffinityConv, LatentToVisible, VisibleToLatent
from .base import (Projection, check_positive_int, linear_bn, node_layout,
                   reset_module)

MODES = ('asymmetric', 'symmetric')


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

    Shapes:
        - **input:** node features :math:`(N, C)`, optional ``batch``
          :math:`(N)` (sorted) or ``ptr`` :math:`(S + 1)`, or ``batch_size``
          for :math:`S` equal consecutive samples
        - **output:** :math:`(N, C)`; with ``return_projection=True`` also a
          list with one :class:`~glore_pyg.nn.Projection` per kernel
    """
    def __init__(self, in_channels: int, latent_dims: Sequence[int],
                 channel_stride: int = 4, mode: str = 'asymmetric',
                 graph_conv: bool = False, without_residual: bool = False):
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
        x_v2l = F.normalize(self.down_v2l(x), dim=-1)  # [N, c]
        x_l2v = x_v2l if self.down_l2v is None else F.normalize(
            self.down_l2v(x), dim=-1)

        outs: List[Tensor] = []
        projections: List[Projection] = []
        for i in range(self.num_kernels):
            psi_v2l = self.psi_v2l[i](x_v2l)  # [N, d_i]
            psi_l2v = psi_v2l if self.psi_l2v is None else self.psi_l2v[i](
                x_l2v)
            z = self.visible_to_latent(x_v2l, psi_v2l, segments=seg)
            z, affinity = self.latent_graph(z, return_affinity=True)
            o = self.latent_to_visible(z, psi_l2v, segments=seg)  # [N, c]
            if self.graph_weight is not None:
                o = self.graph_weight[i](o)
            outs.append(o)
            if return_projection:
                v2l, l2v = self.visible_to_latent, self.latent_to_visible
                projections.append(Projection(
                    normalize_projection(psi_v2l, v2l.normalize, seg,
                                         eps=v2l.eps),
                    normalize_projection(psi_l2v, l2v.normalize, seg,
                                         eps=l2v.eps),
                    affinity, seg.batch()))

        out = self.up(torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0])
        if not self.without_residual:
            out = x + self.gamma * out
        if return_projection:
            return out, projections
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_dims={self.latent_dims}, '
                f'channel_stride={self.channel_stride}, mode={self.mode!r}, '
                f'graph_conv={self.graph_conv})')

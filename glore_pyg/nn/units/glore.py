from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module

from ...functional.residual import Residual
from ...functional.segments import Segments
from ..stages import GloReGraphConv, LatentToVisible, VisibleToLatent
from .base import Projection, apply_heads, check_positive_int, node_layout


class GloReConv(Module):
    r"""The Global Reasoning unit from `"Graph-Based Global Reasoning
    Networks" <https://arxiv.org/abs/1811.12814>`_ (CVPR 2019) as a node-level
    PyG layer: every visible node (point or grid position) of a sample
    exchanges information with all others through ``num_mid`` latent nodes.

    .. math::
        \mathbf{B} &= \theta(\mathbf{X}), \qquad
        \mathbf{V} = \tfrac{1}{m}\,\mathbf{B}^\top \phi(\mathbf{X})

        \mathbf{Z} &= \mathrm{ReLU}\left((\mathbf{I} - \mathbf{A}_g)
        \mathbf{V} + \mathbf{b}\right) \mathbf{W}_g

        \mathbf{X}' &= \mathbf{X} + \mathrm{BN}\left(\mathbf{B}\mathbf{Z}
        \mathbf{W}_{ext}\right)

    per sample, with :math:`\theta, \phi` 1x1 projections (``Linear`` with
    bias), :math:`m = L` (the sample's number of visible nodes) if
    ``normalize`` else 1, and :math:`D = B^\top` for the reverse projection.
    The three stages are :class:`~glore_pyg.nn.VisibleToLatent`,
    :class:`~glore_pyg.nn.GloReGraphConv` and
    :class:`~glore_pyg.nn.LatentToVisible`.  As in the published code,
    ``num_state = 2 * num_mid`` and ``num_node = num_mid``, and the final
    BatchNorm (``eps=1e-4``) has a zero scale at initialisation, so a fresh
    unit returns its input exactly and can be inserted into a trained
    network.

    Args:
        in_channels (int): input (and output) channels :math:`C`.
        num_mid (int): number of latent nodes :math:`d`; the latent state
            has ``2 * num_mid`` channels.
        normalize (bool, optional): divide :math:`\mathbf{V}` by the number
            of visible nodes of the sample (use it when sample sizes vary).
            (default: :obj:`False`)
        bn_eps (float, optional): eps of the output BatchNorm.
            (default: :obj:`1e-4`)

    Shapes:
        - **input:** node features :math:`(N, C)`, optional ``batch``
          :math:`(N)` (sorted) or ``ptr`` :math:`(S + 1)`, or ``batch_size``
          for :math:`S` equal consecutive samples
        - **output:** :math:`(N, C)`; with ``return_projection=True`` also a
          :class:`~glore_pyg.nn.Projection`
    """
    def __init__(self, in_channels: int, num_mid: int,
                 normalize: bool = False, bn_eps: float = 1e-4):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, 'in_channels')
        self.num_mid = check_positive_int(num_mid, 'num_mid')
        self.normalize = bool(normalize)
        self.num_state = 2 * num_mid
        self.num_node = num_mid

        self.state = Linear(in_channels, self.num_state)  # phi: reduce dim
        self.proj = Linear(in_channels, self.num_node)  # theta: B
        self.visible_to_latent = VisibleToLatent(
            normalize='mean' if normalize else None)
        self.latent_graph = GloReGraphConv(self.num_node, self.num_state)
        self.latent_to_visible = LatentToVisible()
        self.extend = Linear(self.num_state, in_channels, bias=False)
        self.norm = BatchNorm1d(in_channels, eps=bn_eps)
        self.reset_parameters()

    #: :meth:`forward_segments` takes channels-first node tensors too.
    supports_channels_first = True

    def reset_parameters(self):
        for m in (self.state, self.proj, self.latent_graph, self.extend,
                  self.norm):
            m.reset_parameters()
        # Zero-initialised residual branch: a fresh unit is the identity.
        self.norm.weight.data.zero_()

    def forward(
        self,
        x: Tensor,
        batch: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        batch_size: Optional[int] = None,
        return_projection: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Projection]]:
        seg = node_layout(x, self.in_channels, batch, ptr, batch_size)
        return self.forward_segments(x, seg, return_projection)

    def forward_segments(
        self,
        x: Tensor,
        seg: Segments,
        return_projection: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Projection]]:
        """:meth:`forward` on node features in the layout ``seg``: rows
        ``[N, C]`` or channels-first ``[S, C, n]`` (the grid adapters)."""
        # phi and theta in one product: x is read once, and its gradient
        # is one product instead of a sum of two
        res = Residual(x, seg)  # x's gradient: one buffer for both uses
        state, b = res.linear(
            torch.cat([self.state.weight, self.proj.weight]),
            torch.cat([self.state.bias, self.proj.bias])).split(
                [self.num_state, self.num_node], dim=1)  # [N, 2d], [N, d]
        v = self.visible_to_latent(state, b, segments=seg)
        z = self.latent_graph(v)  # [S, d, 2d]
        y = self.latent_to_visible(z, b, segments=seg)  # [N, 2d]
        # BN(y W^T), folded into the product where that pays
        out = res.add(apply_heads(seg, y, [(self.extend, self.norm)]))
        if return_projection:
            b = seg.rows(b)
            return out, Projection(b, b, self.latent_graph.node_mixing(),
                                   seg.batch())
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'num_mid={self.num_mid}, normalize={self.normalize})')

from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear

from ...functional.segments import Segments
from ..stages import AttentionConv
from .base import GlobalReasoningUnit, Projection, check_positive_int


class NonLocalConv(GlobalReasoningUnit):
    r"""The non-local block from `"Non-local Neural Networks"
    <https://arxiv.org/abs/1711.07971>`_ (embedded Gaussian) as a node-level
    PyG layer: the full :math:`N \times N` graph over the visible nodes of
    each sample, the dense-GNN baseline that GloRe and LatentGNN compare
    against (:math:`O(N^2)` time and memory per sample).

    .. math::
        \mathbf{X}' = \mathbf{X} + \mathrm{BN}\left(\mathrm{softmax}\left(
        \theta(\mathbf{X})\,\phi(\mathbf{X})^\top\right) g(\mathbf{X})
        \,\mathbf{W}\right)

    per sample, with :math:`\theta, \phi, g` 1x1 projections to
    ``inter_channels`` and the softmax over the nodes of the sample
    (:class:`~glore_pyg.nn.AttentionConv`): the paper's Eq. 1 with the
    embedded-Gaussian affinity of Eq. 3, and the residual
    :math:`\mathbf{z}_i = \mathbf{W}_z \mathbf{y}_i + \mathbf{x}_i` of
    Eq. 6 (:math:`\mathbf{W}_z`: ``Linear`` then BatchNorm).  The BatchNorm
    scale starts at zero: a fresh unit returns its input exactly.

    Args:
        in_channels (int): input (and output) channels :math:`C`.
        inter_channels (int, optional): channels of
            :math:`\theta, \phi, g`. (default: ``in_channels // 2``)
        bn_eps (float, optional): eps of the output BatchNorm.
            (default: :obj:`1e-5`)

    Shapes:
        - **input:** node features :math:`(N, C)`, optional ``batch``
          :math:`(N)` (sorted) or ``ptr`` :math:`(S + 1)`, or ``batch_size``
          for :math:`S` equal consecutive samples
        - **output:** :math:`(N, C)`; with ``return_projection=True`` also
          a list with one :class:`~glore_pyg.nn.Projection` whose
          ``latent_graph`` is the attention of each sample,
          :math:`(S, n, n)` (zero-padded to the largest sample)

    Raises:
        ValueError: ``in_channels`` or ``inter_channels`` below 1; an input
            of another layout (see
            :class:`~glore_pyg.nn.GlobalReasoningUnit`).
        TypeError: ``in_channels`` or ``inter_channels`` not an int; an
            input of the wrong dtype or device.
    """
    #: its attention relates every pair of visible nodes: not shardable
    #: (:func:`~glore_pyg.nn.shard_units` raises)
    shardable = False

    def __init__(self, in_channels: int, inter_channels: Optional[int] = None,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, 'in_channels')
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        self.inter_channels = check_positive_int(inter_channels,
                                                 'inter_channels')
        self.theta = Linear(in_channels, inter_channels)
        self.phi = Linear(in_channels, inter_channels)
        self.g = Linear(in_channels, inter_channels)
        self.attention = AttentionConv()
        self.out = Linear(inter_channels, in_channels)
        self.norm = BatchNorm1d(in_channels, eps=bn_eps)
        self.reset_parameters()

    def reset_parameters(self):
        """Re-initialises every submodule (PyTorch's defaults) and zeroes the
        output BatchNorm's scale: the unit is the identity again."""
        for m in (self.theta, self.phi, self.g, self.out, self.norm):
            m.reset_parameters()
        self.norm.weight.data.zero_()

    def reason(self, x: Tensor, segments: Segments,
               return_projection: bool = False
               ) -> Tuple[Tensor, List[Projection]]:
        """The branch of node rows ``x [N, C]`` (one attention per sample),
        see :meth:`GlobalReasoningUnit.reason
        <glore_pyg.nn.GlobalReasoningUnit.reason>`."""
        attentions: List[Tensor] = []

        def attend(q: Tensor, k: Tensor, v: Tensor,
                   mask: Optional[Tensor]) -> Tensor:
            if not return_projection:
                return self.attention(q, k, v, mask=mask)
            y, alpha = self.attention(q, k, v, return_attention=True,
                                      mask=mask)
            attentions.append(alpha)  # [S', n, n], padding rows 0
            return y

        y = segments.per_sample(attend, self.theta(x), self.phi(x), self.g(x))
        branch = self.norm(self.out(y))
        projections: List[Projection] = []
        if return_projection:  # [S, n_max, n_max], zero-padded
            n = max(a.size(1) for a in attentions)
            graph = torch.cat([
                torch.nn.functional.pad(a, (0, n - a.size(2), 0, n - a.size(1)))
                for a in attentions])
            projections.append(Projection(None, None, graph,
                                          segments.batch()))
        return branch, projections

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'inter_channels={self.inter_channels})')

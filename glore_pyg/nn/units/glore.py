from typing import List, Tuple

from torch import Tensor
from torch.nn import BatchNorm1d, Linear

from ...functional.segments import Segments
from ..stages import GloReGraphConv, LatentToVisible, VisibleToLatent
from .base import GlobalReasoningUnit, Projection, check_positive_int


class GloReConv(GlobalReasoningUnit):
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
    ``normalize`` else 1, and :math:`D = B^\top` for the reverse projection:
    the paper's projection :math:`V = BX`, graph convolution (Eq. 3) and
    reverse projection :math:`Y = DZ`, as ``GloRe_Unit`` of the published
    code (facebookresearch/GloRe) computes them.
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
          list with one :class:`~glore_pyg.nn.Projection`

    Raises:
        ValueError: ``in_channels`` or ``num_mid`` below 1; an input of
            another layout (see :class:`~glore_pyg.nn.GlobalReasoningUnit`).
        TypeError: ``in_channels`` or ``num_mid`` not an int; an input of
            the wrong dtype or device.
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

    def reset_parameters(self):
        """Re-initialises every submodule (PyTorch's defaults, the GloRe
        graph as in :meth:`GloReGraphConv.reset_parameters
        <glore_pyg.nn.GloReGraphConv.reset_parameters>`) and zeroes the
        output BatchNorm's scale: the unit is the identity again."""
        for m in (self.state, self.proj, self.latent_graph, self.extend,
                  self.norm):
            m.reset_parameters()
        # Zero-initialised residual branch: a fresh unit is the identity.
        self.norm.weight.data.zero_()

    def reason(self, x: Tensor, segments: Segments,
               return_projection: bool = False
               ) -> Tuple[Tensor, List[Projection]]:
        r"""The branch :math:`\mathrm{BN}(\mathbf{B}\mathbf{Z}
        \mathbf{W}_{ext})` of node rows ``x [N, C]``, see
        :meth:`GlobalReasoningUnit.reason
        <glore_pyg.nn.GlobalReasoningUnit.reason>`."""
        state = self.state(x)  # phi: [N, 2d]
        b = self.proj(x)  # theta, B: [N, d]
        v = self.visible_to_latent(state, b, segments=segments)  # [S, d, 2d]
        z = self.latent_graph(v)  # [S, d, 2d]
        y = self.latent_to_visible(z, b, segments=segments)  # [N, 2d]
        branch = self.norm(self.extend(y))  # [N, C]
        projections: List[Projection] = []
        if return_projection:
            graph = self.latent_graph.node_mixing()
            projections.append(Projection(
                b, b, graph.expand(segments.num_samples, *graph.shape),
                segments.batch()))
        return branch, projections

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'num_mid={self.num_mid}, normalize={self.normalize})')

from typing import Optional, Tuple, Union

from torch import Tensor

from ...functional.normalize import l2_normalize
from .attention import AttentionConv


class LatentAffinityConv(AttentionConv):
    r"""Latent-to-latent propagation of LatentGNN (`"Learning Efficient
    Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_, Eq. 6-8) with the data-dependent
    affinity of the published code:

    .. math::
        \mathbf{F}_X = \mathrm{softmax}\left(\hat{\mathbf{Z}}
        \hat{\mathbf{Z}}^\top\right), \qquad
        \hat{\mathbf{z}}_k = \mathbf{z}_k / \lVert \mathbf{z}_k \rVert_2,
        \qquad \tilde{\mathbf{Z}} = \mathbf{F}_X \mathbf{Z}

    with the softmax over the neighbours of each latent node: all :math:`d`
    latent nodes of the sample on the fused path, the incoming edges of
    ``edge_index`` on the explicit path.  It has no parameters.

    Args:
        eps (float, optional): lower bound of the L2 norms.
            (default: :obj:`1e-12`)

    Shapes:
        - **input:** latent features :math:`(S, d, C)` (fused) or
          :math:`(D, C)` with ``edge_index`` :math:`(2, E)` (explicit)
        - **output:** the same shape; with ``return_affinity=True`` also
          :math:`\mathbf{F}_X`, :math:`(S, d, d)` (fused) or :math:`(E)`
          (explicit)

    Raises:
        ValueError: from :meth:`forward`, as
            :meth:`AttentionConv.forward
            <glore_pyg.nn.AttentionConv.forward>`.
    """
    def __init__(self, eps: float = 1e-12):
        super().__init__()
        self.eps = eps

    def forward(  # type: ignore[override]
        self,
        z: Tensor,
        edge_index: Optional[Tensor] = None,
        return_affinity: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""
        Args:
            z (Tensor): latent features :math:`\mathbf{Z}`,
                :math:`(S, d, C)` (fused) or :math:`(D, C)` (explicit, all
                latent nodes of all samples).
            edge_index (Tensor, optional): the latent graph :math:`(2, E)`,
                row 0 source :math:`j`, row 1 target :math:`k`, e.g.
                :func:`glore_pyg.functional.complete_latent_graph`; :obj:`None`
                selects the fused path (the complete graph of each sample,
                self-loops included). (default: :obj:`None`)
            return_affinity (bool, optional): also return
                :math:`\mathbf{F}_X`. (default: :obj:`False`)

        Returns:
            :math:`\tilde{\mathbf{Z}}`, the shape of ``z``; with
            ``return_affinity=True`` the pair ``(z_tilde, affinity)``,
            ``affinity`` :math:`(S, d, d)` (entry ``[s, k, j]`` weighs
            ``j -> k``) or :math:`(E)`.

        Raises:
            ValueError: a fused ``z`` that is not 3-D, an explicit ``z``
                that is not a matrix, an ``edge_index`` that is not
                :math:`(2, E)`, negative or out of range.
        """
        z_hat = l2_normalize(z, dim=-1, eps=self.eps)
        return super().forward(z_hat, z_hat, z, edge_index,
                               return_attention=return_affinity)

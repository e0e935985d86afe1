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
        z_hat = l2_normalize(z, dim=-1, eps=self.eps)
        return super().forward(z_hat, z_hat, z, edge_index,
                               return_attention=return_affinity)

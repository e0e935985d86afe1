"""Normalisation of bipartite projection weights (the papers' :math:`m_k(X)`).

A projection between visible and latent nodes is a weighted bipartite graph.
LatentGNN L2-normalises its weights either over the visible nodes linked to
each latent node (``'l2_visible'``: :math:`\\lVert\\psi_{:,k}\\rVert = 1` per
sample) or over the latent nodes linked to each visible node
(``'l2_latent'``: :math:`\\lVert\\psi_{j,:}\\rVert = 1`).  The same equation
serves both storage layouts of the graph: a dense ``[N, d]`` matrix per
sample (fused path) and a list of weighted edges (explicit path).
"""
from typing import Optional

from torch import Tensor
from torch_geometric.utils import scatter

from .segments import Segments

PROJECTION_NORMS = (None, 'l2_visible', 'l2_latent')


def check_projection_norm(normalize: Optional[str], allowed=PROJECTION_NORMS,
                          name: str = 'normalize') -> Optional[str]:
    if normalize not in allowed:
        raise ValueError(f"'{name}' must be one of {list(allowed)}, "
                         f"got {normalize!r}")
    return normalize


def normalize_projection(
    weight: Tensor,
    normalize: Optional[str],
    segments: Optional[Segments] = None,
    visible_index: Optional[Tensor] = None,
    latent_index: Optional[Tensor] = None,
    num_visible: Optional[int] = None,
    num_latent: Optional[int] = None,
    eps: float = 1e-12,
) -> Tensor:
    r"""L2-normalises bipartite weights, :math:`w / \max(\lVert w
    \rVert_{group}, \epsilon)` (the semantics of :func:`torch.nn.functional
    .normalize`).

    Dense layout: ``weight [N, d]`` with ``segments`` (row ``j``, column
    ``k`` = edge between visible node ``j`` and latent node ``k`` of ``j``'s
    sample).  Edge layout: ``weight [E]`` with ``visible_index [E]`` and
    ``latent_index [E]``.
    """
    if normalize is None:
        return weight
    sq = weight * weight
    if weight.dim() == 2 and visible_index is None:  # dense [N, d]
        if normalize == 'l2_latent':
            group = sq.sum(dim=1, keepdim=True)
        else:
            assert segments is not None
            group = segments.expand(segments.sum(sq))
    else:  # edges [E]
        if normalize == 'l2_latent':
            index, size = visible_index, num_visible
        else:
            index, size = latent_index, num_latent
        assert index is not None
        group = scatter(sq, index, dim=0, dim_size=size,
                        reduce='sum').index_select(0, index)
    return weight * inverse_norm(group, eps)


def inverse_norm(sum_of_squares: Tensor, eps: float = 1e-12) -> Tensor:
    r""":math:`1 / \max(\sqrt{s}, \epsilon)` for sums of squares :math:`s`.

    Clamped before the square root: its gradient at 0 is infinite, and an
    all-zero group (a latent node no ReLU-ed affinity reaches) is common."""
    return sum_of_squares.clamp_min(eps * eps).rsqrt()

"""Normalisation of bipartite projection weights (the papers' :math:`m_k(X)`).

A projection between visible and latent nodes is a weighted bipartite graph.
LatentGNN L2-normalises its weights either over the visible nodes linked to
each latent node (``'l2_visible'``: :math:`\\lVert\\psi_{:,k}\\rVert = 1` per
sample) or over the latent nodes linked to each visible node
(``'l2_latent'``: :math:`\\lVert\\psi_{j,:}\\rVert = 1`).  The same equation
serves both storage layouts of the graph: a dense ``[N, d]`` matrix per
sample (fused path) and a list of weighted edges (explicit path).

Half precision: the usual ``eps = 1e-12`` rounds to zero in float16, which
turns an all-zero row into ``0 / 0``.  Every normalisation here sums the
squares in at least float32 and clamps that sum by ``eps ** 2`` before the
square root, so an all-zero row or column stays zero in every dtype, and
its derivatives of every order stay finite.
"""
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from .segments import Segments

PROJECTION_NORMS = (None, 'l2_visible', 'l2_latent')


def check_projection_norm(normalize: Optional[str], allowed=PROJECTION_NORMS,
                          name: str = 'normalize') -> Optional[str]:
    """Returns ``normalize`` if it is one of ``allowed``.

    Raises:
        ValueError: naming ``name`` and the allowed values.
    """
    if normalize not in allowed:
        raise ValueError(f"'{name}' must be one of {list(allowed)}, "
                         f"got {normalize!r}")
    return normalize


def l2_normalize(x: Tensor, dim: int = -1, eps: float = 1e-12) -> Tensor:
    r""":math:`\mathbf{x} / \max(\lVert \mathbf{x} \rVert_2, \epsilon)`
    along ``dim``: the values of :func:`torch.nn.functional.normalize`, with
    the norm taken in at least float32 and clamped before the square root,
    so that an all-zero row stays zero in half precision and stays finite
    to every order of differentiation (``F.normalize``'s second derivative
    at a zero row is ``0 / 0``)."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    sum_sq = x.to(dtype).square().sum(dim, keepdim=True)
    return scale_rows(x, inverse_norm(sum_sq, eps))


def inverse_norm(sum_of_squares: Tensor, eps: float = 1e-12) -> Tensor:
    r""":math:`1 / \max(\sqrt{s}, \epsilon)` for sums of squares :math:`s`
    (float32 or wider, as :meth:`Segments.sum_of_squares` returns them).

    Clamped before the square root: its gradient at 0 is infinite, and an
    all-zero group (a latent node no ReLU-ed affinity reaches) is common."""
    return sum_of_squares.clamp_min(eps * eps).rsqrt()


def scale_rows(t: Tensor, scale: Tensor) -> Tensor:
    """``t * scale`` computed in ``scale``'s (wider) dtype and returned in
    ``t``'s: a factor ``1 / eps`` on an all-zero row must not overflow
    half precision into ``0 * inf``."""
    return (t.to(scale.dtype) * scale).to(t.dtype)


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

    Args:
        normalize (str, optional): :obj:`None` (``weight`` as is),
            :obj:`"l2_visible"` (over the visible nodes of each latent node)
            or :obj:`"l2_latent"` (over the latent nodes of each visible
            node).
    """
    if normalize is None:
        return weight
    if visible_index is None and latent_index is None:  # dense [N, d]
        if normalize == 'l2_latent':
            return l2_normalize(weight, dim=1, eps=eps)
        if segments is None:
            raise ValueError("'segments' is required to normalise dense "
                             "weights over the visible nodes of a sample")
        inv = inverse_norm(segments.sum_of_squares(weight), eps)  # [S, d]
        return scale_rows(weight, segments.expand(inv))
    # edges [E]
    if normalize == 'l2_latent':
        index, size = visible_index, num_visible
    else:
        index, size = latent_index, num_latent
    if index is None:
        end = 'visible' if normalize == 'l2_latent' else 'latent'
        raise ValueError(f"'{normalize}' on edges needs the index of each "
                         f"edge's {end} node")
    dtype = torch.promote_types(weight.dtype, torch.float32)
    sq = weight.to(dtype).square()
    group = scatter(sq, index, dim=0, dim_size=size,
                    reduce='sum').index_select(0, index)
    return scale_rows(weight, inverse_norm(group, eps))

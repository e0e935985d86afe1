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
    at a zero row is ``0 / 0``).

    The L2 normalisation of LatentGNN's published code (its
    ``F.normalize`` of the visible features and of the latent features of
    the affinity :math:`\mathbf{F}_X`, `"Learning Efficient Non-local
    Relations for Visual Recognition" <https://arxiv.org/abs/1905.11634>`_,
    Eq. 6-8).

    Args:
        x (Tensor): any shape, floating point (the result has ``x``'s dtype
            and shape).
        dim (int, optional): the axis normalised. (default: :obj:`-1`)
        eps (float, optional): lower bound :math:`\epsilon` of the norm,
            as in :func:`torch.nn.functional.normalize`; the sum of
            squares is clamped at :math:`\epsilon^2`.
            (default: :obj:`1e-12`)

    Returns:
        Tensor: ``x`` with unit L2 norm along ``dim`` (zero where the norm
        is zero).

    Raises:
        IndexError: ``dim`` out of range for ``x`` (from torch).
    """
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

    Used by LatentGNN's visible-to-latent step (the normalisation
    :math:`m_k` of Eq. 3-4 of `"Learning Efficient Non-local Relations for
    Visual Recognition" <https://arxiv.org/abs/1905.11634>`_) and its
    latent-to-visible step (Eq. 9-10); the L2 form is the published
    code's.

    Args:
        weight (Tensor): projection weights, dense :math:`(N, d)` or one per
            edge :math:`(E)`.
        normalize (str, optional): :obj:`None` (``weight`` as is),
            :obj:`"l2_visible"` (over the visible nodes of each latent node)
            or :obj:`"l2_latent"` (over the latent nodes of each visible
            node); anything else raises a ``ValueError``.
        segments (Segments, optional): the sample layout of the rows of a
            dense ``weight``; needed for :obj:`"l2_visible"` (the norm runs
            over the visible nodes of each sample).
        visible_index (Tensor, optional): visible node of each edge
            :math:`(E)` (edge layout, needed for :obj:`"l2_latent"`).
        latent_index (Tensor, optional): latent node of each edge
            :math:`(E)` (edge layout, needed for :obj:`"l2_visible"`).
        num_visible (int, optional): number of visible nodes (edge layout;
            inferred from the index when omitted).
        num_latent (int, optional): number of latent nodes (edge layout;
            inferred from the index when omitted).
        eps (float, optional): lower bound :math:`\epsilon` of the norms.
            (default: :obj:`1e-12`)

    Returns:
        Tensor: the normalised weights, the shape and dtype of ``weight``
        (``weight`` itself when ``normalize`` is :obj:`None`).

    Raises:
        ValueError: an unknown ``normalize``; dense :obj:`"l2_visible"`
            without ``segments``; edge
            weights without the index the chosen norm groups by.
        RuntimeError: (from torch) a dense ``weight`` whose rows do not
            match ``segments``, or indices of another length than
            ``weight``.
    """
    check_projection_norm(normalize)
    if normalize is None:
        return weight
    if visible_index is None and latent_index is None:  # dense [N, d]
        if normalize == 'l2_latent':
            return l2_normalize(weight, dim=1, eps=eps)
        if segments is None:
            raise ValueError("'segments' is required to normalise dense "
                             "weights over the visible nodes of a sample")
        sum_sq, = segments.reduce(segments.sum_of_squares(weight))
        inv = inverse_norm(sum_sq, eps)  # [S, d]
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

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

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from . import memory
from .segments import Segments, square_sum

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
    sample), or ``[S, d, n]`` with channels-first ``segments``.  Edge
    layout: ``weight [E]`` with ``visible_index [E]`` and ``latent_index
    [E]``.
    """
    if normalize is None:
        return weight
    if visible_index is None and latent_index is None:  # dense [N, d]
        if normalize == 'l2_latent':
            return l2_normalize(weight, dim=1, eps=eps)
        assert segments is not None
        group = segments.expand(segments.sum_of_squares(weight))
    else:  # edges [E]
        sq = weight * weight
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


def _sum_product(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """``(a * b).sum(dim, keepdim=True)`` without the ``a * b``
    temporary (``einsum`` contracts in one pass)."""
    letters = 'abcdefgh'[:a.dim()]
    out = letters.replace(letters[dim], '')
    return torch.einsum(f'{letters},{letters}->{out}', a, b).unsqueeze(dim)


class _L2Normalize(torch.autograd.Function):
    # y = x / max(||x||, eps) along `dim`; dx = (g - y <g, y>) / max(...)
    # where ||x|| >= eps, else g / eps.  Three memory passes forward and
    # three backward, against about ten for the composite of norm, clamp,
    # expand and div.  The norms are kept for backward instead of x, as a
    # second output, so that double backward through them stays exact;
    # with `inplace`, y overwrites x (no new N x C tensor).  With `groups`,
    # `dim` holds that many consecutive groups, each normalised on its own
    # (the norms are then [..., groups, 1, ...]).
    @staticmethod
    def forward(ctx, x: Tensor, dim: int, eps: float, inplace: bool,
                groups: int):
        xg = x.unflatten(dim, (groups, -1)) if groups > 1 else x
        gdim = dim + 1 if groups > 1 else dim
        norm = square_sum(xg, gdim).sqrt_().unsqueeze(gdim)
        scale = norm.clamp_min(eps).reciprocal()
        if inplace:
            xg.mul_(scale)
            y = x
            ctx.mark_dirty(x)
        else:
            y = torch.mul(xg, scale, out=memory.out_buffer(xg.shape, xg)
                          ).view(x.shape)
        ctx.save_for_backward(y, norm)
        ctx.dim, ctx.eps, ctx.groups = dim, eps, groups
        ctx.set_materialize_grads(False)
        return y, norm

    @staticmethod
    def backward(ctx, grad: Optional[Tensor], grad_norm: Optional[Tensor]):
        y, norm = ctx.saved_tensors
        dim, groups = ctx.dim, ctx.groups
        if groups > 1:
            y = y.unflatten(dim, (groups, -1))
            grad = None if grad is None else grad.unflatten(dim,
                                                            (groups, -1))
            dim += 1
        clamped = norm.clamp_min(ctx.eps)
        dx = None
        if grad is not None:
            dot = _sum_product(grad, y, dim) * (norm >= ctx.eps).to(y.dtype)
            dx = torch.addcmul(grad, y, dot, value=-1,
                               out=memory.out_buffer(grad.shape, grad))
            dx = dx.div_(clamped)
        if grad_norm is not None:  # d||x|| / dx = x / ||x|| (0 at x = 0)
            ratio = torch.where(norm > 0, clamped / norm,
                                torch.zeros_like(norm))
            dn = y * (grad_norm * ratio)
            dx = dn if dx is None else dx + dn
        if dx is not None and groups > 1:
            dx = dx.flatten(ctx.dim, ctx.dim + 1)
        return dx, None, None, None, None


def l2_normalize(x: Tensor, dim: int = -1, eps: float = 1e-12,
                 inplace: bool = False, groups: int = 1) -> Tensor:
    r""":func:`torch.nn.functional.normalize` (``p=2``) with a hand-written
    backward: the same values and gradients, in fewer passes over memory
    (the units normalise ``N x C`` matrices, whose element-wise work, not
    the matmuls, bounds their speed on CPU).

    ``inplace=True`` overwrites ``x`` (for a temporary such as a
    BatchNorm's output, which its backward does not need).  ``groups=k``
    normalises each of ``k`` equal consecutive slices of ``dim`` on its own
    (several heads computed side by side in one tensor)."""
    dim = dim % x.dim()
    if groups < 1 or x.size(dim) % groups:
        raise ValueError(f"'groups' ({groups}) must divide the size of "
                         f"'dim' ({x.size(dim)})")
    return _L2Normalize.apply(x, dim, eps, inplace, groups)[0]

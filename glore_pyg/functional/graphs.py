"""Explicit edge lists of the graphs the fused paths imply.

The papers' graphs are complete: every visible node of a sample is linked to
each latent node (GloRe's projection :math:`V = BX`, `"Graph-Based Global
Reasoning Networks" <https://arxiv.org/abs/1811.12814>`_; LatentGNN's
visible-to-latent step, `"Learning Efficient Non-local Relations for Visual
Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 3-4) and the latent
nodes are fully connected (GloRe's Eq. 3, LatentGNN's Eq. 6-8).  These
edge lists feed the stages' explicit-edge paths, which then compute what
the fused paths compute.
"""
from typing import Optional

import torch
from torch import Tensor

from .checks import check_int
from .segments import Segments


def complete_bipartite_graph(x: Tensor, num_latent: int,
                             batch: Optional[Tensor] = None,
                             ptr: Optional[Tensor] = None,
                             batch_size: Optional[int] = None) -> Tensor:
    r"""The visible-to-latent graph of the fused path as ``edge_index``:
    every visible node ``j`` linked to the ``num_latent`` latent nodes
    ``s * num_latent + k`` of its sample ``s``.

    Edge ``j * num_latent + k`` is ``(j, s * num_latent + k)``, so a dense
    projection ``weight [N, d]`` gives the edge weights as
    ``weight.reshape(-1)``.  The latent-to-visible graph is
    ``edge_index.flip(0)``.  This is the complete bipartite graph of
    GloRe's :math:`V = BX` and LatentGNN's Eq. 3-4.

    Args:
        x (Tensor): visible node features :math:`(N, C)` (only their number,
            device and the sample layout are used).
        num_latent (int): latent nodes :math:`d` per sample.
        batch (LongTensor, optional): sorted sample index of each visible
            node :math:`(N)`.
        ptr (LongTensor, optional): sample boundaries :math:`(S + 1)`.
        batch_size (int, optional): :math:`S` samples of equal size stored
            one after the other (without ``batch`` / ``ptr``), see
            :meth:`glore_pyg.functional.Segments.from_batch`.

    Returns:
        LongTensor ``[2, N * num_latent]`` on ``x``'s device: row 0 visible
        node, row 1 latent node.

    Raises:
        ValueError: ``x`` not a matrix, or a malformed or inconsistent
            ``batch`` / ``ptr`` / ``batch_size``.
        TypeError: ``batch_size`` not an int.
    """
    seg = Segments.from_batch(x, batch, ptr, batch_size)
    d = num_latent
    visible = torch.arange(seg.num_nodes, device=x.device)
    visible = visible.repeat_interleave(d)
    latent = (seg.batch().view(-1, 1) * d +
              torch.arange(d, device=x.device).view(1, -1)).view(-1)
    return torch.stack([visible, latent])


def complete_latent_graph(num_samples: int, num_latent: int,
                          device: Optional[torch.device] = None) -> Tensor:
    r"""The fully connected latent graph of each sample, self-loops
    included, as ``edge_index [2, S * d * d]`` over latent nodes numbered
    ``s * d + k``.  Edge ``(s * d + k) * d + j`` is ``j -> k`` of sample
    ``s``, so a dense ``[S, d, d]`` graph (entry ``[s, k, j]`` weighs
    ``j -> k``) gives the edge weights as ``graph.reshape(-1)``.  This is
    the graph of GloRe's Eq. 3 and LatentGNN's Eq. 6-8, for the explicit
    paths of :class:`~glore_pyg.nn.GloReGraphConv` and
    :class:`~glore_pyg.nn.LatentAffinityConv`.

    Args:
        num_samples (int): number of samples :math:`S`.
        num_latent (int): latent nodes :math:`d` per sample.
        device (torch.device, optional): where the result is made.
            (default: :obj:`None`, the current default device)

    Returns:
        LongTensor ``[2, S * d * d]``: row 0 source :math:`j`, row 1
        target :math:`k`.

    Raises:
        RuntimeError: (from torch) a negative ``num_samples`` or
            ``num_latent``; the arguments are not checked otherwise.
    """
    d = num_latent
    k = torch.arange(d, device=device).repeat_interleave(d)  # target
    j = torch.arange(d, device=device).repeat(d)  # source
    offset = (torch.arange(num_samples, device=device) * d).view(-1, 1)
    src = (offset + j.view(1, -1)).view(-1)
    dst = (offset + k.view(1, -1)).view(-1)
    return torch.stack([src, dst])


def topk_bipartite_graph(weight: Tensor, k: int,
                         batch: Optional[Tensor] = None,
                         ptr: Optional[Tensor] = None,
                         batch_size: Optional[int] = None):
    r"""A sparsified visible-to-latent graph: each visible node keeps only
    its ``k`` largest projection weights.  Not in the papers, whose
    visible-to-latent graph is complete (see
    :func:`complete_bipartite_graph`): a sparse variant for the explicit
    path.

    Args:
        weight (Tensor): dense projection weights ``[N, d]`` (e.g. the
            :math:`\psi` of a unit, before normalisation).
        k (int): latent nodes kept per visible node, ``1 <= k <= d``.
        batch (LongTensor, optional): sorted sample index of each visible
            node :math:`(N)`.
        ptr (LongTensor, optional): sample boundaries :math:`(S + 1)`.
        batch_size (int, optional): :math:`S` samples of equal size stored
            one after the other (without ``batch`` / ``ptr``).

    Returns:
        ``(edge_index [2, N * k], edge_weight [N * k])`` for the explicit
        path of :class:`~glore_pyg.nn.VisibleToLatent` (latent node ``j`` of
        sample ``s`` numbered ``s * d + j``); ``edge_index.flip(0)`` is the
        latent-to-visible graph.  Gradients flow into the kept weights.

    Raises:
        ValueError: ``k`` outside :math:`[1, d]`, or a malformed or
            inconsistent ``batch`` / ``ptr`` / ``batch_size``.
        TypeError: ``k`` or ``batch_size`` not an int.
        IndexError: ``weight`` with fewer than two dimensions (from
            torch).
    """
    d = weight.size(1)
    k = check_int(k, 'k', 1, d)
    seg = Segments.from_batch(weight, batch, ptr, batch_size)
    value, index = weight.topk(k, dim=1)  # [N, k]
    visible = torch.arange(seg.num_nodes, device=weight.device)
    latent = seg.batch().view(-1, 1) * d + index
    edge_index = torch.stack([visible.repeat_interleave(k),
                              latent.reshape(-1)])
    return edge_index, value.reshape(-1)

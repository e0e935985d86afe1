"""Explicit edge lists of the graphs the fused paths imply."""
from typing import Optional

import torch
from torch import Tensor

from ..functional.segments import Segments


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
    ``edge_index.flip(0)``.

    Returns:
        LongTensor ``[2, N * num_latent]``.
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
    ``s``."""
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
    its ``k`` largest projection weights.

    Args:
        weight (Tensor): dense projection weights ``[N, d]`` (e.g. the
            :math:`\psi` of a unit, before normalisation).
        k (int): latent nodes kept per visible node, ``1 <= k <= d``.
        batch, ptr, batch_size: the sample layout of the visible nodes.

    Returns:
        ``(edge_index [2, N * k], edge_weight [N * k])`` for the explicit
        path of :class:`~glore_pyg.nn.VisibleToLatent` (latent node ``j`` of
        sample ``s`` numbered ``s * d + j``); ``edge_index.flip(0)`` is the
        latent-to-visible graph.  Gradients flow into the kept weights.
    """
    d = weight.size(1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise ValueError(f"'k' must be an int in [1, {d}], got {k!r}")
    seg = Segments.from_batch(weight, batch, ptr, batch_size)
    value, index = weight.topk(k, dim=1)  # [N, k]
    visible = torch.arange(seg.num_nodes, device=weight.device)
    latent = seg.batch().view(-1, 1) * d + index
    edge_index = torch.stack([visible.repeat_interleave(k),
                              latent.reshape(-1)])
    return edge_index, value.reshape(-1)

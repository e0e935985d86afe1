"""Inverse-distance k-NN interpolation of point features."""
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from ..functional.checks import check_int
from ._clouds import batch_vector, num_clouds, positions, same_space
from .knn import checked_knn


def knn_interpolate(x: Tensor, pos_x: Tensor, pos_y: Tensor,
                    batch_x: Optional[Tensor] = None,
                    batch_y: Optional[Tensor] = None, k: int = 3,
                    num_workers: int = 1) -> Tensor:
    r"""The k-NN interpolation from the `"PointNet++: Deep Hierarchical
    Feature Learning on Point Sets in a Metric Space"
    <https://arxiv.org/abs/1706.02413>`_ paper (Eq. 2, with :math:`p = 2`);
    :func:`torch_geometric.nn.knn_interpolate` on top of
    :func:`glore_pyg.ops.knn`.

    For each point :math:`y` with position :math:`\mathbf{p}(y)` and its
    :math:`k` nearest points :math:`x_1, \ldots, x_k` of the same cloud,

    .. math::
        \mathbf{f}(y) = \frac{\sum_{i=1}^k w(x_i) \mathbf{f}(x_i)}
        {\sum_{i=1}^k w(x_i)}, \qquad w(x_i) = \frac{1}{\max\left(
        d(\mathbf{p}(y), \mathbf{p}(x_i))^2, 10^{-16}\right)} ,

    as PyG computes it: the weights carry no gradient, the features do.  A
    point of :obj:`pos_y` whose cloud has no point in :obj:`pos_x` gets NaN
    (:math:`0 / 0`), as in PyG.  The weights are computed in at least
    float32 and normalised before they multiply the features, so half
    precision (float16, bfloat16) stays finite, also where a target
    coincides with a source point.

    Args:
        x (torch.Tensor): Features :math:`\mathbf{F} \in \mathbb{R}^{N
            \times C}` of the points :obj:`pos_x`.
        pos_x (torch.Tensor): Positions :math:`\in \mathbb{R}^{N \times
            d}`.
        pos_y (torch.Tensor): Positions to interpolate at :math:`\in
            \mathbb{R}^{M \times d}`.
        batch_x (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`pos_x`. (default: :obj:`None`)
        batch_y (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`pos_y`. (default: :obj:`None`)
        k (int, optional): Number of neighbours. (default: :obj:`3`)
        num_workers (int, optional): Threads of the CPU neighbour search.
            (default: :obj:`1`)

    Returns:
        torch.Tensor: :math:`[M, C]` interpolated features.

    Raises:
        TypeError: a non-tensor argument, non-floating positions of
            different dtypes, a non-int :obj:`k` / :obj:`num_workers`, a
            non-integer batch vector.
        ValueError: :obj:`x` not of shape :math:`[N, C]` with one row per
            row of :obj:`pos_x`, or on another device, or
            what :func:`glore_pyg.ops.knn` rejects, named after these
            arguments.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"'x' must be a tensor, got {type(x).__name__}")
    pos_x = positions('pos_x', pos_x)
    pos_y = positions('pos_y', pos_y)
    same_space(pos_x, pos_y, 'pos_x', 'pos_y')
    if x.dim() != 2 or x.size(0) != pos_x.size(0):
        raise ValueError(f"'x' must have shape [N, C] with one row per row "
                         f"of 'pos_x' (N = {pos_x.size(0)}), "
                         f'got {list(x.shape)}')
    if x.device != pos_x.device:
        raise ValueError(f"'x' must be on the device of 'pos_x' "
                         f'({pos_x.device}), got {x.device}')
    k = check_int(k, 'k', minimum=1)
    num_workers = check_int(num_workers, 'num_workers', minimum=1)
    batch_x = batch_vector('batch_x', batch_x, pos_x, 'pos_x')
    batch_y = batch_vector('batch_y', batch_y, pos_y, 'pos_y')
    num = num_clouds([('batch_x', batch_x), ('batch_y', batch_y)], None)

    with torch.no_grad():
        y_idx, x_idx = checked_knn(pos_x, pos_y, k, batch_x, batch_y,
                                   False, num_workers, num)
        # The weights in at least float32: in half precision 1e-16 is 0, a
        # coinciding point's weight inf and the quotient inf / inf.  They
        # are normalised per target before they meet the features, which
        # keep their dtype.
        dtype = torch.promote_types(pos_x.dtype, torch.float32)
        diff = pos_x[x_idx].to(dtype) - pos_y[y_idx].to(dtype)
        squared_distance = (diff * diff).sum(dim=-1, keepdim=True)
        # coinciding points: a huge finite weight, not inf / inf
        weights = 1.0 / torch.clamp(squared_distance, min=1e-16)
        total = scatter(weights, y_idx, 0, pos_y.size(0), reduce='sum')
        weights = (weights / total[y_idx]).to(x.dtype)

    y = scatter(x[x_idx] * weights, y_idx, 0, pos_y.size(0), reduce='sum')
    # a target without neighbours (its cloud is empty in pos_x): 0 / 0
    # (in place: the sum's gradient does not need its output)
    return y.masked_fill_(total == 0, float('nan'))

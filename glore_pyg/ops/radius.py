"""Fixed-radius neighbour search between two batched point sets."""
from typing import Optional

import torch
from torch import Tensor

from ..functional.checks import check_float, check_int
from . import _backend
from ._clouds import batch_vector, layout, num_clouds, positions, same_space
from ._neighbors import nearest_scipy, nearest_torch


def radius(
    x: Tensor,
    y: Tensor,
    r: float,
    batch_x: Optional[Tensor] = None,
    batch_y: Optional[Tensor] = None,
    max_num_neighbors: int = 32,
    num_workers: int = 1,
    batch_size: Optional[int] = None,
) -> Tensor:
    r"""For each row of :obj:`y`, the rows of :obj:`x` in the same cloud
    closer than :obj:`r`; :func:`torch_geometric.nn.radius` with a fallback
    (the ball query of the grouping layer of `"PointNet++: Deep Hierarchical
    Feature Learning on Point Sets in a Metric Space"
    <https://arxiv.org/abs/1706.02413>`_).

    .. code-block:: python

        x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
        y = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
        radius(x, y, 1.5)  # tensor([[0, 0, 1, 1], [0, 1, 2, 3]]) (up to ties)

    A point :math:`\mathbf{x}` is a neighbour of :math:`\mathbf{y}` when
    :math:`\|\mathbf{x} - \mathbf{y}\| < r`, strictly, as in torch_cluster
    and pyg-lib (their kernels test :math:`d^2 < r^2`); a point at distance
    :math:`r` up to rounding may fall either way.

    Runs pyg-lib's or torch_cluster's kernel when installed, else our exact
    search (:func:`glore_pyg.ops.backend` says which): scipy's ``cKDTree``
    on CPU tensors (distances in float64), chunked brute force in torch
    elsewhere (in the input's precision).  When more than
    :obj:`max_num_neighbors` points are within reach, ours keeps the
    **nearest** :obj:`max_num_neighbors` (equidistant ones either way) and
    returns the edges grouped by query in increasing order and, per query,
    by increasing distance; pyg-lib and torch_cluster keep the first ones
    their search meets (which PyG warns is biased on CPU).

    Args:
        x (torch.Tensor): Points :math:`\mathbf{X} \in \mathbb{R}^{N \times
            D}` (a 1-D tensor is read as :math:`[N, 1]`).
        y (torch.Tensor): Queries :math:`\mathbf{Y} \in \mathbb{R}^{M \times
            D}`, same device and dtype as :obj:`x`.
        r (float): The radius, :math:`> 0`.
        batch_x (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`x`; :obj:`None` puts all rows in cloud 0.
            (default: :obj:`None`)
        batch_y (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`y`. (default: :obj:`None`)
        max_num_neighbors (int, optional): The most neighbours returned per
            query, :math:`\geq 1`. (default: :obj:`32`)
        num_workers (int, optional): Threads of the CPU search.
            (default: :obj:`1`)
        batch_size (int, optional): The number of clouds :math:`B`,
            computed from the batch vectors if not given.
            (default: :obj:`None`)

    Returns:
        torch.Tensor: ``[2, E]`` long, on the device of :obj:`x`: row 0
        indexes :obj:`y`, row 1 indexes :obj:`x`.

    Raises:
        TypeError: a non-tensor or non-floating :obj:`x` / :obj:`y`, dtypes
            that differ, a non-number :obj:`r`, an integer argument of
            another type, a non-integer batch vector.
        ValueError: a shape other than :math:`[N, D]`, non-finite
            positions, different :math:`D` or devices, :obj:`r` not in
            :math:`(0, \infty)`, :obj:`max_num_neighbors` or
            :obj:`num_workers` below 1, a batch vector of the wrong length,
            unsorted or negative, or an index :math:`\geq` :obj:`batch_size`.
    """
    x = positions('x', x)
    y = positions('y', y)
    same_space(x, y, 'x', 'y')
    r = check_float(r, 'r', low=0, low_open=True)
    max_num_neighbors = check_int(max_num_neighbors, 'max_num_neighbors',
                                  minimum=1)
    num_workers = check_int(num_workers, 'num_workers', minimum=1)
    batch_x = batch_vector('batch_x', batch_x, x, 'x')
    batch_y = batch_vector('batch_y', batch_y, y, 'y')
    num = num_clouds([('batch_x', batch_x), ('batch_y', batch_y)], batch_size)
    if x.size(0) == 0 or y.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)

    lay = layout(x, y, batch_x, batch_y, num)
    name = _backend.backend('radius', x.device)
    if name == 'pyg-lib':
        from torch_geometric.nn import radius as pyg_radius
        return pyg_radius(x, y, r, lay.batch_x, lay.batch_y,
                          max_num_neighbors, num_workers,
                          num if num > 1 else None)
    if name == 'torch_cluster':
        return _backend.torch_cluster().radius(
            x, y, r, lay.batch_x, lay.batch_y,
            max_num_neighbors=max_num_neighbors, num_workers=num_workers)
    if name == 'scipy':
        return nearest_scipy(x, y, lay, max_num_neighbors, r=r,
                             num_workers=num_workers)
    return nearest_torch(x, y, lay, max_num_neighbors, r=r)

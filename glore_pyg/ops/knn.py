"""k-nearest-neighbour search between two batched point sets."""
from typing import Optional

import torch
from torch import Tensor

from ..functional.checks import check_int
from . import _backend
from ._clouds import batch_vector, layout, num_clouds, positions, same_space
from ._neighbors import nearest_scipy, nearest_torch


def knn(
    x: Tensor,
    y: Tensor,
    k: int,
    batch_x: Optional[Tensor] = None,
    batch_y: Optional[Tensor] = None,
    cosine: bool = False,
    num_workers: int = 1,
    batch_size: Optional[int] = None,
) -> Tensor:
    r"""For each row of :obj:`y`, the :obj:`k` nearest rows of :obj:`x` in
    the same cloud; :func:`torch_geometric.nn.knn` with a fallback.

    .. code-block:: python

        x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
        y = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
        knn(x, y, 2)  # tensor([[0, 0, 1, 1], [0, 1, 2, 3]]) (up to ties)

    Runs pyg-lib's or torch_cluster's kernel when installed, else our exact
    search (:func:`glore_pyg.ops.backend` says which): scipy's ``cKDTree``
    on CPU tensors, chunked brute force in torch elsewhere.  Ours returns the
    edges grouped by query in increasing order and, per query, by increasing
    distance; a query whose cloud has fewer than :obj:`k` points gets all of
    them, one whose cloud has none gets no edge.  Equidistant points may be
    chosen either way.

    Args:
        x (torch.Tensor): Points :math:`\mathbf{X} \in \mathbb{R}^{N \times
            D}` (a 1-D tensor is read as :math:`[N, 1]`).
        y (torch.Tensor): Queries :math:`\mathbf{Y} \in \mathbb{R}^{M \times
            D}`, same device and dtype as :obj:`x`.
        k (int): The number of neighbours, :math:`\geq 1`.
        batch_x (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`x`, :math:`\{0, \ldots, B-1\}^N`; :obj:`None` puts all rows
            in cloud 0. (default: :obj:`None`)
        batch_y (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`y`, :math:`\{0, \ldots, B-1\}^M`. (default: :obj:`None`)
        cosine (bool, optional): Rank by cosine distance
            :math:`1 - \cos(\mathbf{x}, \mathbf{y})` instead of the Euclidean
            one.  Ours ranks the rows normalised to unit length by
            Euclidean distance, which orders alike; a zero row, whose cosine
            is undefined (NaN in torch_cluster's kernel), stays zero.  The
            library kernels support it on GPU only, so on CPU ours runs.
            (default: :obj:`False`)
        num_workers (int, optional): Threads of the CPU search (pyg-lib's,
            torch_cluster's, scipy's ``workers``). (default: :obj:`1`)
        batch_size (int, optional): The number of clouds :math:`B`,
            computed from the batch vectors if not given.
            (default: :obj:`None`)

    Returns:
        torch.Tensor: ``[2, E]`` long, on the device of :obj:`x`: row 0
        indexes :obj:`y`, row 1 indexes :obj:`x`.

    Raises:
        TypeError: a non-tensor or non-floating :obj:`x` / :obj:`y`, dtypes
            that differ, an integer argument of another type, a non-integer
            batch vector.
        ValueError: a shape other than :math:`[N, D]`, non-finite
            positions, different :math:`D` or devices, :obj:`k` or
            :obj:`num_workers` below 1, a batch vector of the wrong length,
            unsorted or negative, or an index :math:`\geq` :obj:`batch_size`.
    """
    x = positions('x', x)
    y = positions('y', y)
    same_space(x, y, 'x', 'y')
    k = check_int(k, 'k', minimum=1)
    if not isinstance(cosine, bool):
        raise TypeError(f"'cosine' must be a bool, "
                        f'got {type(cosine).__name__}')
    num_workers = check_int(num_workers, 'num_workers', minimum=1)
    batch_x = batch_vector('batch_x', batch_x, x, 'x')
    batch_y = batch_vector('batch_y', batch_y, y, 'y')
    num = num_clouds([('batch_x', batch_x), ('batch_y', batch_y)], batch_size)
    return checked_knn(x, y, k, batch_x, batch_y, cosine, num_workers, num)


def checked_knn(x: Tensor, y: Tensor, k: int, batch_x: Optional[Tensor],
                batch_y: Optional[Tensor], cosine: bool, num_workers: int,
                num: int) -> Tensor:
    """:func:`knn` on arguments already checked; ``num`` clouds."""
    if x.size(0) == 0 or y.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    lay = layout(x, y, batch_x, batch_y, num)
    name = _backend.backend('knn', x.device, cosine)
    if name == 'pyg-lib':
        from torch_geometric.nn import knn as pyg_knn
        return pyg_knn(x, y, k, lay.batch_x, lay.batch_y, cosine,
                       num_workers, num if num > 1 else None)
    if name == 'torch_cluster':
        return _backend.torch_cluster().knn(
            x, y, k, lay.batch_x, lay.batch_y, cosine=cosine,
            num_workers=num_workers)
    if name == 'scipy':
        return nearest_scipy(x, y, lay, k, cosine=cosine,
                             num_workers=num_workers)
    return nearest_torch(x, y, lay, k, cosine=cosine)

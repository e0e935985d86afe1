"""Our exact neighbour searches behind :func:`~glore_pyg.ops.knn` and
:func:`~glore_pyg.ops.radius`: for each query row of ``y`` the ``k``
nearest rows of ``x`` in its cloud, optionally only those closer than ``r``.

Both return ``[2, E]`` long edges ``(query, point)`` grouped by query in
increasing order and, per query, by increasing distance (ties in either
order).

* :func:`nearest_scipy`: CPU tensors, one :class:`scipy.spatial.cKDTree`
  per cloud, distances in float64.
* :func:`nearest_torch`: any device, brute force in rectangles of at most
  ``_backend.CHUNK_ENTRIES`` distances (:func:`_clouds.blocks`), distances
  in the input's precision (float32 for half types).
"""
from typing import List, Optional

import numpy as np
import torch
from torch import Tensor

from . import _backend
from ._clouds import Layout, blocks

# cKDTree.query fills k slots per query, found or not (and topk's cost grows
# with k): above this many a counting pass first sizes k to the most points
# any query has within r.
_COUNT_FIRST = 128


def _compute_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.dtype in (torch.float32, torch.float64) \
        else torch.float32


def _edges(rows: List, cols: List, device: torch.device) -> Tensor:
    if not rows:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if isinstance(rows[0], np.ndarray):
        rows = [torch.from_numpy(np.concatenate(rows)).long()]
        cols = [torch.from_numpy(np.concatenate(cols)).long()]
    return torch.stack([torch.cat(rows), torch.cat(cols)]).to(device)


def nearest_scipy(x: Tensor, y: Tensor, lay: Layout, k: int,
                  r: Optional[float] = None, cosine: bool = False,
                  num_workers: int = 1) -> Tensor:
    tree_class = _backend.ckdtree()
    x = x.detach().to(torch.float64)
    y = y.detach().to(torch.float64)
    if cosine:
        # the nearest by cosine distance are the nearest unit vectors
        x = torch.nn.functional.normalize(x, dim=1)
        y = torch.nn.functional.normalize(y, dim=1)
    xn, yn = x.numpy(), y.numpy()
    rows, cols = [], []
    for b in range(lay.num_clouds):
        x0, x1 = lay.ptr_x[b], lay.ptr_x[b + 1]
        y0, y1 = lay.ptr_y[b], lay.ptr_y[b + 1]
        if x0 == x1 or y0 == y1:
            continue
        tree = tree_class(xn[x0:x1])
        kk = min(k, x1 - x0)
        if r is not None and kk > _COUNT_FIRST:
            # counts include distance == r; the query below excludes it
            counts = tree.query_ball_point(yn[y0:y1], r, return_length=True,
                                           workers=num_workers)
            kk = min(kk, int(counts.max()))
            if kk == 0:
                continue
        bound = np.inf if r is None else r  # strict: distance < bound
        step = max(1, _backend.CHUNK_ENTRIES // kk)
        for s in range(y0, y1, step):
            e = min(s + step, y1)
            _, idx = tree.query(yn[s:e], k=kk, distance_upper_bound=bound,
                                workers=num_workers)
            idx = idx.reshape(e - s, kk)  # k == 1 gives [e - s]
            query = np.broadcast_to(np.arange(s, e)[:, None], idx.shape)
            if r is None:
                rows.append(query.ravel())
                cols.append(idx.ravel() + x0)
            else:
                found = idx < x1 - x0  # a miss has index x1 - x0
                rows.append(query[found])
                cols.append(idx[found] + x0)
    return _edges(rows, cols, torch.device('cpu'))


def nearest_torch(x: Tensor, y: Tensor, lay: Layout, k: int,
                  r: Optional[float] = None, cosine: bool = False) -> Tensor:
    dtype = _compute_dtype(x)
    x, y = x.detach().to(dtype), y.detach().to(dtype)
    if cosine:
        x = torch.nn.functional.normalize(x, dim=1)
        y = torch.nn.functional.normalize(y, dim=1)
    rows, cols = [], []
    for y0, y1, x0, x1, mixed in blocks(lay, _backend.CHUNK_ENTRIES):
        # the matrix-product form loses exactness to cancellation
        dist = torch.cdist(y[y0:y1], x[x0:x1],
                           compute_mode='donot_use_mm_for_euclid_dist')
        if r is not None:
            dist.masked_fill_(dist >= r, float('inf'))
        if mixed:
            dist.masked_fill_(
                lay.batch_y[y0:y1, None] != lay.batch_x[None, x0:x1],
                float('inf'))
        kk = min(k, x1 - x0)
        if r is not None and kk > _COUNT_FIRST:
            # topk's cost grows with k: size it to the most found
            kk = min(kk, int(dist.isfinite().sum(1).max()))
            if kk == 0:
                continue
        dist, idx = dist.topk(kk, dim=1, largest=False)  # sorted
        query = torch.arange(y0, y1, device=x.device)[:, None].expand_as(idx)
        if r is None and not mixed:
            rows.append(query.reshape(-1))
            cols.append(idx.reshape(-1) + x0)
        else:
            found = dist.isfinite()
            rows.append(query[found])
            cols.append(idx[found] + x0)
    return _edges(rows, cols, x.device)

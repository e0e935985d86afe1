"""Checks of the ops' arguments and the layout of batched point clouds.

A batch of clouds is PyG's: the rows of ``x`` (and of ``y``) sorted by their
cloud index ``batch``; cloud ``b`` holds rows ``ptr[b]:ptr[b + 1]``.  Every
check runs before any work, and its message names the argument.
"""
from typing import Iterator, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..functional.checks import check_int


def positions(name: str, t, flatten: bool = False) -> Tensor:
    """``t`` as a finite floating-point ``[N, D]`` matrix (a 1-D tensor is a
    column ``[N, 1]``, as torch_cluster reads it; with ``flatten``, more
    dimensions are flattened, as PyG's :func:`fps` does)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"'{name}' must be a tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"'{name}' must be a floating-point tensor, "
                        f'got {t.dtype}')
    if t.dim() == 1:
        t = t.view(-1, 1)
    if t.dim() != 2 and not (flatten and t.dim() > 2):
        raise ValueError(f"'{name}' must have shape [N, D], "
                         f'got {list(t.shape)}')
    t = t.flatten(1)
    if t.size(1) == 0:
        raise ValueError(f"'{name}' must have at least one coordinate, "
                         f'got shape {list(t.shape)}')
    if t.numel() > 0 and not bool(torch.isfinite(t).all()):
        raise ValueError(f"'{name}' must hold finite values only")
    return t


def same_space(x: Tensor, y: Tensor, x_name: str, y_name: str) -> None:
    if y.size(1) != x.size(1):
        raise ValueError(f"'{y_name}' must have as many coordinates as "
                         f"'{x_name}' ({x.size(1)}), got {y.size(1)}")
    if y.device != x.device:
        raise ValueError(f"'{y_name}' must be on the device of '{x_name}' "
                         f'({x.device}), got {y.device}')
    if y.dtype != x.dtype:
        raise TypeError(f"'{y_name}' must have the dtype of '{x_name}' "
                        f'({x.dtype}), got {y.dtype}')


def batch_vector(name: str, batch, points: Tensor,
                 points_name: str) -> Optional[Tensor]:
    """Checks a cloud-index vector of ``points`` (sorted, non-negative)."""
    if batch is None:
        return None
    if not isinstance(batch, Tensor):
        raise TypeError(f"'{name}' must be a tensor or None, "
                        f'got {type(batch).__name__}')
    if batch.dtype == torch.bool or batch.is_floating_point() or \
            batch.is_complex():
        raise TypeError(f"'{name}' must be an integer tensor, "
                        f'got {batch.dtype}')
    if batch.dim() != 1 or batch.numel() != points.size(0):
        raise ValueError(f"'{name}' must have shape [{points.size(0)}] "
                         f"(one entry per row of '{points_name}'), "
                         f'got {list(batch.shape)}')
    if batch.device != points.device:
        raise ValueError(f"'{name}' must be on the device of "
                         f"'{points_name}' ({points.device}), "
                         f'got {batch.device}')
    if batch.numel() > 0:
        # one transfer for both checks
        low, unsorted = torch.stack([
            batch.min(), (batch[1:] < batch[:-1]).sum()]).tolist()
        if low < 0:
            raise ValueError(f"'{name}' must be non-negative, got {low}")
        if unsorted:
            raise ValueError(f"'{name}' must be sorted (the rows of "
                             f"'{points_name}' grouped by cloud, as in "
                             f'PyG batches)')
    return batch.long()


def num_clouds(batches: List[Tuple[str, Optional[Tensor]]],
               batch_size) -> int:
    """``batch_size`` (checked against the batch vectors) or one more than
    the largest cloud index; 1 without batch vectors."""
    given = [(n, b) for n, b in batches if b is not None]
    if batch_size is not None:
        check_int(batch_size, 'batch_size', minimum=1)
    if not given:
        return 1
    highest = [int(b[-1]) if b.numel() > 0 else -1 for _, b in given]
    if batch_size is None:
        return max(max(highest) + 1, 1)
    for (name, _), high in zip(given, highest):
        if high >= batch_size:
            raise ValueError(f"'{name}' holds cloud index {high} but "
                             f"'batch_size' is {batch_size}")
    return batch_size


class Layout(NamedTuple):
    """Clouds of ``x`` and ``y``: ``ptr_x`` / ``ptr_y`` as host lists of
    ``B + 1`` offsets, ``batch_x`` / ``batch_y`` as tensors (all zeros where
    none was given), or ``None`` when ``B == 1``."""
    num_clouds: int
    ptr_x: List[int]
    ptr_y: List[int]
    batch_x: Optional[Tensor]
    batch_y: Optional[Tensor]


def pointer(batch: Optional[Tensor], n: int, num: int) -> List[int]:
    if batch is None:
        return [0] + [n] * num
    return [0] + torch.bincount(batch, minlength=num).cumsum(0).tolist()


def layout(x: Tensor, y: Tensor, batch_x: Optional[Tensor],
           batch_y: Optional[Tensor], num: int) -> Layout:
    if num == 1:
        return Layout(1, [0, x.size(0)], [0, y.size(0)], None, None)

    def full(b, t):
        return b if b is not None else t.new_zeros(t.size(0), dtype=torch.long)
    batch_x, batch_y = full(batch_x, x), full(batch_y, y)
    return Layout(num, pointer(batch_x, x.size(0), num),
                  pointer(batch_y, y.size(0), num), batch_x, batch_y)


def blocks(lay: Layout, budget: int) -> Iterator[Tuple[int, int, int, int,
                                                       bool]]:
    """Rectangles ``(y0, y1, x0, x1, mixed)`` of the query-by-point distance
    matrix that cover every same-cloud pair, in query order, each of at most
    ``budget`` entries (or one query row).  Consecutive small clouds share a
    rectangle (``mixed``: pairs across clouds in it must be masked out), so
    that many tiny clouds do not cost one kernel launch each; a large cloud
    is cut into slices of queries."""
    current = None
    for b in range(lay.num_clouds):
        y0, y1 = lay.ptr_y[b], lay.ptr_y[b + 1]
        x0, x1 = lay.ptr_x[b], lay.ptr_x[b + 1]
        if y0 == y1 or x0 == x1:
            continue
        if current is not None and \
                (y1 - current[0]) * (x1 - current[2]) <= budget:
            current = (current[0], y1, current[2], x1, True)
            continue
        if current is not None:
            yield current
            current = None
        rows = max(1, budget // (x1 - x0))
        if rows >= y1 - y0:
            current = (y0, y1, x0, x1, False)
        else:
            for start in range(y0, y1, rows):
                yield (start, min(start + rows, y1), x0, x1, False)
    if current is not None:
        yield current

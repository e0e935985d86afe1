"""Farthest point sampling of batched point clouds."""
from typing import List, Optional

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from ..functional.checks import check_float
from . import _backend
from ._clouds import batch_vector, num_clouds, pointer, positions


def fps(
    x: Tensor,
    batch: Optional[Tensor] = None,
    ratio: float = 0.5,
    random_start: bool = True,
    batch_size: Optional[int] = None,
) -> Tensor:
    r"""Farthest point sampling from the `"PointNet++: Deep Hierarchical
    Feature Learning on Point Sets in a Metric Space"
    <https://arxiv.org/abs/1706.02413>`_ paper (its sampling layer);
    :func:`torch_geometric.nn.fps` with a fallback.

    Per cloud of :math:`n` points it samples
    :math:`m = \lceil \mathrm{ratio} \cdot n \rceil` points (the product
    taken in float32, as pyg-lib and torch_cluster take it: 25 points at
    ratio 0.6 give 16), a start point
    :math:`s_1`, then repeatedly the point farthest from those sampled,

    .. math::
        s_{i+1} = \operatorname{arg\,max}_{j} \min_{l \leq i}
        \| \mathbf{x}_j - \mathbf{x}_{s_l} \|^2 ,

    the first such point on ties.  Runs pyg-lib's or torch_cluster's kernel
    when installed, else ours (:func:`glore_pyg.ops.backend` says which):
    the same exact iteration in torch on any device, all clouds advancing
    together (clouds of similar size share one padded tensor).

    .. code-block:: python

        x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
        fps(x, ratio=0.5, random_start=False)  # tensor([0, 3])

    Args:
        x (torch.Tensor): Points :math:`\mathbf{X} \in \mathbb{R}^{N \times
            D}` (more dimensions are flattened, a 1-D tensor is
            :math:`[N, 1]`).
        batch (torch.Tensor, optional): Sorted cloud index of each row of
            :obj:`x`, :math:`\{0, \ldots, B-1\}^N`; :obj:`None` for one
            cloud. (default: :obj:`None`)
        ratio (float, optional): Sampling ratio in :math:`(0, 1]`.
            (default: :obj:`0.5`)
        random_start (bool, optional): Start each cloud at a uniformly
            random point (drawn with torch's generator, so
            :func:`torch.manual_seed` repeats it); if :obj:`False`, at its
            first point. (default: :obj:`True`)
        batch_size (int, optional): The number of clouds :math:`B`,
            computed from :obj:`batch` if not given. (default: :obj:`None`)

    Returns:
        torch.Tensor: long indices into :obj:`x`, on its device: cloud after
        cloud, each in sampling order (start point first).

    Raises:
        TypeError: a non-tensor or non-floating :obj:`x`, a non-number
            :obj:`ratio`, a non-bool :obj:`random_start`, a non-integer
            :obj:`batch` or :obj:`batch_size`.
        ValueError: an :obj:`x` with no coordinate or non-finite values,
            :obj:`ratio` outside :math:`(0, 1]`, a :obj:`batch` of the wrong
            length, unsorted or negative, or an index :math:`\geq`
            :obj:`batch_size`.
    """
    x = positions('x', x, flatten=True)
    batch = batch_vector('batch', batch, x, 'x')
    ratio = check_float(ratio, 'ratio', 0, 1, low_open=True)
    if not isinstance(random_start, bool):
        raise TypeError(f"'random_start' must be a bool, "
                        f'got {type(random_start).__name__}')
    num = num_clouds([('batch', batch)], batch_size)
    if x.size(0) == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)

    name = _backend.backend('fps', x.device)
    if name == 'pyg-lib':
        from torch_geometric.nn import fps as pyg_fps
        return pyg_fps(x, batch, ratio, random_start,
                       num if batch is not None else None)
    if name == 'torch_cluster':
        return _backend.torch_cluster().fps(x, batch, ratio, random_start)
    return fps_torch(x, pointer(batch, x.size(0), num), ratio, random_start)


def fps_torch(x: Tensor, ptr: List[int], ratio: float,
              random_start: bool) -> Tensor:
    """Our :func:`fps` on checked arguments: ``x [N, D]``, clouds
    ``x[ptr[b]:ptr[b + 1]]``."""
    device = x.device
    sizes = torch.tensor(ptr).diff()
    counts = (sizes.to(torch.float32) * torch.tensor(
        ratio, dtype=torch.float32)).ceil().long()
    out_ptr = [0] + counts.cumsum(0).tolist()
    out = torch.empty(out_ptr[-1], dtype=torch.long, device=device)
    if random_start:
        # drawn for every cloud at once, on the CPU generator
        starts = (torch.rand(len(sizes)) * sizes).long().clamp(
            max=(sizes - 1).clamp(min=0))
    else:
        starts = torch.zeros(len(sizes), dtype=torch.long)

    # Clouds whose sizes share a power of two run together, padded to the
    # largest: at most half of a group's work is padding, and a batch of
    # very unequal clouds costs a few groups, not one per cloud.
    sizes_list, counts_list = sizes.tolist(), counts.tolist()
    groups = {}
    for b, n in enumerate(sizes_list):
        if n > 0:
            groups.setdefault(n.bit_length(), []).append(b)
    for clouds in groups.values():
        picks = _fps_group(x, [ptr[b] for b in clouds],
                           [sizes_list[b] for b in clouds],
                           max(counts_list[b] for b in clouds),
                           starts[clouds].to(device))
        for row, b in enumerate(clouds):  # [G, m] -> per cloud
            m = counts_list[b]
            out[out_ptr[b]:out_ptr[b] + m] = picks[row, :m] + ptr[b]
    return out


def _fps_group(x: Tensor, begins: List[int], sizes: List[int], steps: int,
               starts: Tensor) -> Tensor:
    """``steps`` FPS picks (local indices ``[G, steps]``) of ``G`` clouds
    at once."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) \
        else torch.float32
    G, n, D = len(sizes), max(sizes), x.size(1)
    device = x.device
    lengths = torch.tensor(sizes, device=device)
    cloud = torch.arange(G, device=device).repeat_interleave(lengths)
    first = lengths.cumsum(0) - lengths
    # the rows of x of the group's clouds, cloud after cloud
    src = (torch.tensor(begins, device=device)[cloud] - first[cloud]
           + torch.arange(cloud.numel(), device=device))
    dense, real = to_dense_batch(x[src].to(dtype), cloud, batch_size=G,
                                 max_num_nodes=n)
    pos = dense.permute(2, 0, 1).contiguous()  # [G, n, D] -> [D, G, n]
    # distance to the nearest pick; padding at -1 is never the farthest
    nearest = torch.full((G, n), float('inf'), dtype=dtype, device=device)
    nearest.masked_fill_(~real, -1.0)
    picks = torch.empty(G, steps, dtype=torch.long, device=device)
    rows = torch.arange(G, device=device)
    dist = torch.empty(G, n, dtype=dtype, device=device)
    tmp = torch.empty(G, n, dtype=dtype, device=device)
    pick = starts
    for i in range(steps):
        picks[:, i] = pick
        p = pos[:, rows, pick]  # [D, G]
        # squared distance summed coordinate by coordinate, in place: no
        # [D, G, n] temporary, a few passes over [G, n] per pick
        torch.sub(pos[0], p[0, :, None], out=dist).square_()
        for d in range(1, D):
            dist.add_(torch.sub(pos[d], p[d, :, None], out=tmp).square_())
        torch.minimum(nearest, dist, out=nearest)
        pick = nearest.argmax(dim=1)
    return picks

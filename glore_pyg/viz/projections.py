"""Where the latent nodes look: the visible-to-latent projections of a unit
drawn over its input (an image or a point cloud)."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers '3d')
from torch import Tensor

from ..functional.checks import check_int
from ..nn.units import Projection
from ._common import (PathLike, check_nodes, check_path, check_title, finish,
                      grid_shape, num_samples, select_projection,
                      strongest_nodes)

ProjectionLike = Union[Projection, Sequence[Projection]]

_PANEL_2D = (2.6, 2.8)  # inches per image panel (width, height)
_PANEL_3D = (3.6, 3.4)  # inches per 3-D panel
_HEAT_CMAP = 'jet'
_HEAT_ALPHA = 0.5


# -- checks ---------------------------------------------------------------
def _check_image(image) -> np.ndarray:
    """The image as a float array in ``[0, 1]``, ``[H, W]`` (gray) or
    ``[H, W, 3]`` (RGB)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    if not isinstance(image, Tensor):
        raise TypeError(f"'image' must be a tensor [C, H, W] or [H, W], got "
                        f"{type(image).__name__}")
    if image.dim() == 3 and image.size(0) in (1, 3):
        image = image[0] if image.size(0) == 1 else image.movedim(0, -1)
    elif image.dim() != 2:
        raise ValueError(f"'image' must be [C, H, W] with C in (1, 3) or "
                         f"[H, W], got {tuple(image.shape)}")
    if image.size(0) == 0 or image.size(1) == 0:
        raise ValueError(f"'image' must not be empty, got "
                         f"{tuple(image.shape)}")
    image = image.detach().cpu().double()
    if not torch.isfinite(image).all():
        raise ValueError("'image' must hold finite values only")
    low, high = image.min(), image.max()
    if high > low:
        image = (image - low) / (high - low)
    else:
        image = torch.zeros_like(image)
    return image.numpy()


def _check_feature_shape(feature_shape) -> Tuple[int, int]:
    if not isinstance(feature_shape, (tuple, list)):  # torch.Size included
        raise TypeError(f"'feature_shape' must be a pair (h, w) of ints, got "
                        f"{type(feature_shape).__name__} {feature_shape!r}")
    if len(feature_shape) != 2:
        raise ValueError(f"'feature_shape' must be a pair (h, w) of ints, got "
                         f"{len(feature_shape)} values {feature_shape!r}")
    h, w = (check_int(s, f'feature_shape[{i}]', minimum=1)
            for i, s in enumerate(feature_shape))
    return h, w


def _sample_mask(proj: Projection, sample: int) -> Tensor:
    """Rows of ``sample`` (a boolean mask over the projection's rows)."""
    check_int(sample, 'sample', 0, num_samples(proj) - 1)
    return (proj.batch == sample).cpu()


def _spread_queries(h: int, w: int, count: int) -> List[int]:
    """``count`` positions (flat ``i * w + j``) spread evenly over an
    ``h x w`` map: the centres of the cells of a near-square grid."""
    count = min(count, h * w)
    rows = max(1, min(h, round(float(np.sqrt(count * h / w)))))
    cols = -(-count // rows)
    if cols > w:
        cols = w
        rows = -(-count // cols)
    out = []
    for a in range(rows):
        for b in range(cols):
            i = min(h - 1, int((a + 0.5) * h / rows))
            j = min(w - 1, int((b + 0.5) * w / cols))
            if i * w + j not in out:
                out.append(i * w + j)
    return out[:count]


# -- images ---------------------------------------------------------------
def image_projection_maps(
    image: Tensor,
    projection: ProjectionLike,
    feature_shape: Tuple[int, int],
    sample: int = 0,
    kernel: int = 0,
    nodes: Optional[Sequence[int]] = None,
    num_nodes: int = 4,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
) -> Figure:
    r"""The projection maps of latent nodes over an image, as in Fig. 6 of
    `"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_ (CVPR 2019): the input image and,
    for each of several latent nodes :math:`k`, the weights
    :math:`\mathbf{B}_{:, k}` of the visible-to-latent projection of one
    sample (GloRe's :math:`B`, LatentGNN's normalised
    :math:`\Psi_{v2l}`), reshaped to the feature map ``(h, w)``, upsampled
    to the image size (bilinear, :func:`torch.nn.functional.interpolate`
    with ``align_corners=False``) and overlaid on the image as a heat map
    (``jet``, half transparent, scaled to each map's own range).  One panel
    per latent node, titled ``"latent node k"``.

    For a non-local block (no latent nodes: ``visible_to_latent`` is
    :obj:`None` and ``latent_graph`` the attention ``[S, h w, h w]``,
    `"Non-local Neural Networks" <https://arxiv.org/abs/1711.07971>`_,
    Eq. 1 and 3) the panels show instead the attention maps of query
    positions (row ``i w + j`` of the sample's attention, reshaped and
    upsampled the same way), titled ``"query (i, j)"``, the query marked
    with a white cross.

    The image is shown gray (one channel) or RGB (three) after min-max
    scaling to ``[0, 1]``.

    Args:
        image (Tensor): the input image :math:`(C, H, W)` with
            :math:`C \in \{1, 3\}`, or :math:`(H, W)` (a NumPy array of
            these shapes is accepted too).
        projection (Projection or list of Projection): what a grid unit
            (:class:`~glore_pyg.nn.GloRe2d`,
            :class:`~glore_pyg.nn.LatentGNN2d`,
            :class:`~glore_pyg.nn.NonLocal2d`) returned with
            ``return_projection=True`` for a batch of feature maps
            :math:`(B, C', h, w)`: rows ordered ``b h w + i w + j``.
        feature_shape (tuple of int): ``(h, w)``, the spatial size of the
            feature map the unit ran on.
        sample (int, optional): the image of the batch (rows
            ``sample * h * w`` to ``(sample + 1) * h * w``).
            (default: :obj:`0`)
        kernel (int, optional): the projection of the list to show (one per
            LatentGNN kernel); ignored for a single projection.
            (default: :obj:`0`)
        nodes (list of int, optional): the latent nodes to show (for a
            non-local projection: the flat query positions ``i w + j``).
            (default: :obj:`None`: the ``num_nodes`` latent nodes with the
            largest total weight magnitude over the sample, strongest
            first; for a non-local projection ``num_nodes`` queries spread
            evenly over the map)
        num_nodes (int, optional): how many nodes (queries) to pick when
            ``nodes`` is :obj:`None` (at most the number there are).
            (default: :obj:`4`)
        path (str or os.PathLike, optional): save the figure there as a PNG
            (parent folders created, see :func:`save_figure`).
            (default: :obj:`None`)
        title (str, optional): the figure's title. (default: :obj:`None`)

    Returns:
        matplotlib.figure.Figure: ``1 + len(nodes)`` axes, the image first;
        in each node panel the first image is the input, the last the
        upsampled map :math:`(H, W)`.

    Raises:
        ValueError: ``image`` not :math:`(C, H, W)` / :math:`(H, W)` with
            :math:`C \in \{1, 3\}`, empty or not finite; ``feature_shape``
            not two positive ints, or not matching the projection's rows;
            ``sample``, ``kernel``, ``nodes`` out of range, or ``nodes``
            empty or repeating a node; ``num_nodes`` below 1.
        TypeError: ``image`` not a tensor; ``projection`` not a
            :class:`~glore_pyg.nn.Projection` or a list of them;
            ``feature_shape``, ``nodes`` or one of their entries, ``sample``,
            ``kernel``, ``num_nodes``, ``path`` or ``title`` of the wrong
            type.
    """
    img = _check_image(image)
    proj = select_projection(projection, kernel)
    h, w = _check_feature_shape(feature_shape)
    check_int(num_nodes, 'num_nodes', minimum=1)
    check_path(path)
    check_title(title)
    mask = _sample_mask(proj, sample)
    rows, total = int(mask.sum()), proj.batch.numel()
    samples = num_samples(proj)
    if total != samples * h * w or rows != h * w:
        raise ValueError(
            f"'feature_shape' {(h, w)} does not match the projection: "
            f"{total} rows for {samples} sample(s) ({rows} in sample "
            f"{sample}), expected {h * w} per sample")
    non_local = proj.visible_to_latent is None
    if non_local:
        attention = proj.latent_graph[sample]
        if attention.size(-1) < h * w:
            raise ValueError(
                f"'feature_shape' {(h, w)} does not match the projection's "
                f"attention {tuple(attention.shape)}")
        if nodes is None:
            nodes = _spread_queries(h, w, num_nodes)
        else:
            nodes = check_nodes(nodes, h * w)
        maps = attention[nodes, :h * w]  # [q, h*w]: row q over positions
        labels = [f"query ({q // w}, {q % w})" for q in nodes]
    else:
        weights = proj.visible_to_latent[mask.to(
            proj.visible_to_latent.device)].detach()  # [h*w, d]
        if nodes is None:
            nodes = strongest_nodes(weights, num_nodes)
        else:
            nodes = check_nodes(nodes, weights.size(1))
        maps = weights[:, nodes].T  # [k, h*w]
        labels = [f"latent node {k}" for k in nodes]

    height, width = img.shape[:2]
    maps = maps.detach().cpu().double().reshape(len(nodes), 1, h, w)
    heat = F.interpolate(maps, size=(height, width), mode='bilinear',
                         align_corners=False)[:, 0].numpy()

    count = 1 + len(nodes)
    nrows, ncols = grid_shape(count, 5)
    fig = Figure(figsize=(_PANEL_2D[0] * ncols, _PANEL_2D[1] * nrows),
                 layout='constrained')
    if title is not None:
        fig.suptitle(title)
    gray = dict(cmap='gray', vmin=0.0, vmax=1.0) if img.ndim == 2 else {}
    ax = fig.add_subplot(nrows, ncols, 1)
    ax.imshow(img, **gray)
    ax.set_title(f"image (sample {sample})")
    ax.set_axis_off()
    for i, (label, node) in enumerate(zip(labels, nodes)):
        ax = fig.add_subplot(nrows, ncols, i + 2)
        ax.imshow(img, **gray)
        ax.imshow(heat[i], cmap=_HEAT_CMAP, alpha=_HEAT_ALPHA,
                  interpolation='nearest')
        if non_local:  # the query's centre in image pixels
            qi, qj = divmod(node, w)
            ax.plot([(qj + 0.5) * width / w - 0.5],
                    [(qi + 0.5) * height / h - 0.5], marker='x',
                    color='white', markersize=9, markeredgewidth=2.5)
        ax.set_title(label)
        ax.set_axis_off()
    return finish(fig, path)


# -- point clouds ---------------------------------------------------------
def _qualitative(count: int) -> ListedColormap:
    """A qualitative colormap of ``count`` colours (``tab10`` / ``tab20``,
    repeated beyond 20)."""
    base = colormaps['tab10' if count <= 10 else 'tab20']
    return ListedColormap([base(k % base.N) for k in range(count)])


def point_projection_maps(
    pos: Tensor,
    projection: ProjectionLike,
    sample: int = 0,
    kernel: int = 0,
    nodes: Optional[Sequence[int]] = None,
    num_nodes: int = 3,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
) -> Figure:
    r"""The visible-to-latent projection of a point cloud: the points of one
    sample as 3-D scatters, first coloured by the latent node each point
    projects to most (:math:`\arg\max_k` of its row of
    ``visible_to_latent``, a qualitative colormap), then, for each of
    ``num_nodes`` latent nodes :math:`k`, coloured by the weight
    :math:`\mathbf{B}_{i k}` (``viridis``, with a colorbar): the point-cloud
    counterpart of Fig. 6 of `"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_ (the soft assignment of visible
    nodes to latent nodes, LatentGNN's :math:`\Psi_{v2l}` of Eq. 4 in
    `"Learning Efficient Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_).

    Args:
        pos (Tensor): coordinates of the rows of the projection
            :math:`(N, 3)` (all samples; the sample's rows are taken with
            ``projection.batch``).
        projection (Projection or list of Projection): what a node-level
            unit (:class:`~glore_pyg.nn.GloReConv`,
            :class:`~glore_pyg.nn.LatentGNNConv`) returned with
            ``return_projection=True``, ``visible_to_latent`` :math:`(N, d)`.
        sample (int, optional): the point cloud of the batch.
            (default: :obj:`0`)
        kernel (int, optional): the projection of the list to show (one per
            LatentGNN kernel); ignored for a single projection.
            (default: :obj:`0`)
        nodes (list of int, optional): the latent nodes of the weight
            panels. (default: :obj:`None`: the ``num_nodes`` with the
            largest total weight magnitude over the sample, strongest
            first)
        num_nodes (int, optional): how many nodes to pick when ``nodes`` is
            :obj:`None` (at most :math:`d`). (default: :obj:`3`)
        path (str or os.PathLike, optional): save the figure there as a PNG
            (see :func:`save_figure`). (default: :obj:`None`)
        title (str, optional): the figure's title. (default: :obj:`None`)

    Returns:
        matplotlib.figure.Figure: ``1 + len(nodes)`` 3-D axes (the
        assignment first; the scatter's array holds the latent node of each
        point, then each panel's the node's weights), plus one colorbar axes
        per weight panel.

    Raises:
        ValueError: ``pos`` not :math:`(N, 3)` with the projection's
            :math:`N`, or not finite; a ``projection`` without
            ``visible_to_latent`` (the non-local block has no latent
            nodes); ``sample`` (or a sample without points), ``kernel``,
            ``nodes`` out of range, or ``nodes`` empty or repeating a node;
            ``num_nodes`` below 1.
        TypeError: ``pos`` not a floating-point tensor; ``projection`` not
            a :class:`~glore_pyg.nn.Projection` or a list of them;
            ``nodes`` or one of its entries, ``sample``, ``kernel``,
            ``num_nodes``, ``path`` or ``title`` of the wrong type.
    """
    if not isinstance(pos, Tensor) or not pos.is_floating_point():
        raise TypeError(f"'pos' must be a floating-point tensor [N, 3], got "
                        f"{getattr(pos, 'dtype', type(pos).__name__)}")
    proj = select_projection(projection, kernel)
    if proj.visible_to_latent is None:
        raise ValueError("'projection' has no visible_to_latent weights (a "
                         "non-local block has no latent nodes): use a GloRe "
                         "or LatentGNN projection")
    weights = proj.visible_to_latent.detach()
    if pos.dim() != 2 or pos.size(1) != 3 or pos.size(0) != weights.size(0):
        raise ValueError(f"'pos' must be [N, 3] with the projection's N = "
                         f"{weights.size(0)}, got {tuple(pos.shape)}")
    if not torch.isfinite(pos).all():
        raise ValueError("'pos' must hold finite values only")
    check_int(num_nodes, 'num_nodes', minimum=1)
    check_path(path)
    check_title(title)
    mask = _sample_mask(proj, sample)
    if not mask.any():
        raise ValueError(f"'sample' {sample} has no points")
    weights = weights.cpu().double()[mask]  # [n, d]
    d = weights.size(1)
    if nodes is None:
        nodes = strongest_nodes(weights, num_nodes)
    else:
        nodes = check_nodes(nodes, d)
    points = pos.detach().cpu().double()[mask].numpy()  # [n, 3]
    assignment = weights.argmax(1).numpy()

    count = 1 + len(nodes)
    nrows, ncols = grid_shape(count, 4)
    fig = Figure(figsize=(_PANEL_3D[0] * ncols, _PANEL_3D[1] * nrows),
                 layout='constrained')
    if title is not None:
        fig.suptitle(title)
    extent = np.ptp(points, axis=0)
    aspect = np.maximum(extent, 1e-3 * max(float(extent.max()), 1e-12))

    def panel(index: int, values, **kwargs):
        ax = fig.add_subplot(nrows, ncols, index, projection='3d')
        scatter = ax.scatter(points[:, 0], points[:, 1], points[:, 2],
                             c=values, s=8, depthshade=False, **kwargs)
        ax.set_box_aspect(aspect)
        ax.set_xlabel('x')
        ax.set_ylabel('y')
        ax.set_zlabel('z')
        ax.tick_params(labelsize=7)
        return ax, scatter

    cmap = _qualitative(d)
    ax, _ = panel(1, assignment, cmap=cmap, vmin=-0.5, vmax=d - 0.5)
    ax.set_title(f"argmax node (sample {sample})", fontsize=10)
    present = np.unique(assignment)
    if len(present) <= 10:
        ax.legend(handles=[
            Line2D([], [], linestyle='', marker='o', color=cmap(int(k)),
                   label=str(int(k))) for k in present],
            title='latent node', fontsize=7, title_fontsize=7,
            loc='center left', bbox_to_anchor=(1.15, 0.5))
    for i, node in enumerate(nodes):
        ax, scatter = panel(i + 2, weights[:, node].numpy(), cmap='viridis')
        ax.set_title(f"latent node {node}", fontsize=10)
        fig.colorbar(scatter, ax=ax, shrink=0.6, pad=0.22, label='weight')
    return finish(fig, path)

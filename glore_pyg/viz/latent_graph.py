"""The latent graph of a unit (GloRe's :math:`I - A_g`, LatentGNN's
:math:`F_X`, the non-local attention) as a heat map and as a drawn
graph."""
from typing import Optional, Sequence, Tuple, Union

import networkx as nx
import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from ..functional.checks import check_float, check_int
from ..nn.units import Projection
from .networkx import Unit, node_unit, to_networkx
from ._common import (PathLike, check_path, check_title, finish, num_samples,
                      select_projection)

Source = Union[Unit, Tensor, Projection, Sequence[Projection]]

_DIVERGING = 'RdBu_r'
_SEQUENTIAL = 'viridis'
_EDGE_CMAP = 'plasma_r'


def _latent_graph(source: Source, x: Optional[Tensor],
                  batch: Optional[Tensor], sample: int, kernel: int
                  ) -> Tuple[np.ndarray, nx.DiGraph]:
    """The latent graph as a dense ``[d, d]`` array (entry ``[k, j]``
    weighs ``j -> k``) and as :func:`~glore_pyg.viz.to_networkx`'s
    DiGraph (all non-zero edges, self-loops included)."""
    check_int(sample, 'sample', minimum=0)
    check_int(kernel, 'kernel', minimum=0)
    if isinstance(source, Projection) or (
            isinstance(source, (list, tuple)) and not isinstance(source, str)):
        proj = select_projection(source, kernel, name='source')
        check_int(sample, 'sample', 0, num_samples(proj) - 1)
        matrix = proj.latent_graph[sample]
        graph = to_networkx(matrix)
    elif isinstance(source, Tensor):
        if source.dim() != 2 or source.size(0) != source.size(1):
            raise ValueError(f"'source' must be a square [d, d] matrix, got "
                             f"{tuple(source.shape)}")
        if not source.is_floating_point():
            raise TypeError(f"'source' must be a floating-point matrix, got "
                            f"{source.dtype}")
        graph = to_networkx(source)
    elif node_unit(source) is not None:
        # to_networkx runs the unit (in eval mode) and checks x, sample and
        # kernel against its projections
        graph = to_networkx(source, x=x, batch=batch, sample=sample,
                            kernel=kernel)
    else:
        raise TypeError(f"'source' must be a unit, a [d, d] tensor or a "
                        f"Projection, got {type(source).__name__}")
    d = graph.number_of_nodes()
    if d == 0:
        raise ValueError("'source' has an empty latent graph (d = 0)")
    # to_numpy_array: [u, v] = weight of u -> v, i.e. the transpose
    dense = nx.to_numpy_array(graph, nodelist=range(d), weight='weight',
                              dtype=np.float64).T
    return np.ascontiguousarray(dense), graph


def _source_name(source) -> str:
    if node_unit(source) is not None:
        return type(source).__name__
    if isinstance(source, Tensor):
        return 'matrix'
    return 'projection'


def _int_ticks(ax, d: int):
    if d <= 20:
        ax.set_xticks(range(d))
        ax.set_yticks(range(d))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)


def latent_graph_heatmap(
    source: Source,
    x: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    sample: int = 0,
    kernel: int = 0,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
) -> Figure:
    r"""The latent graph of a unit as a heat map: entry ``[k, j]`` (row
    "to latent node k", column "from latent node j") weighs the message
    :math:`j \to k`.

    * GloRe: the learned :math:`\mathbf{I} - \mathbf{A}_g` of the graph
      convolution (`"Graph-Based Global Reasoning Networks"
      <https://arxiv.org/abs/1811.12814>`_, Eq. 3);
    * LatentGNN: the data-dependent latent affinity :math:`\mathbf{F}_X`
      of input ``x`` (`"Learning Efficient Non-local Relations for Visual
      Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 6-8);
    * the non-local block: its attention over the visible nodes
      (`"Non-local Neural Networks" <https://arxiv.org/abs/1711.07971>`_,
      Eq. 1 and 3).

    A matrix with both signs uses a diverging colormap (``RdBu_r``)
    centred on 0, otherwise ``viridis``; a colorbar gives the scale.

    Args:
        source (GlobalReasoningUnit, GridUnit, Tensor or Projection): a
            unit (node-level or a grid adapter; read with
            :func:`glore_pyg.viz.to_networkx`), a square matrix
            :math:`(d, d)`, or a :class:`~glore_pyg.nn.Projection` (or the
            list a unit returns) whose ``latent_graph[sample]`` is shown.
        x (Tensor, optional): the input of a unit whose graph depends on it
            (LatentGNN, non-local): node features :math:`(N, C)` or a
            feature map :math:`(B, C, *spatial)` for a grid unit.
            (default: :obj:`None`)
        batch (LongTensor, optional): sample index of each row of ``x``
            :math:`(N)` (node-level units). (default: :obj:`None`)
        sample (int, optional): the sample whose graph is shown.
            (default: :obj:`0`)
        kernel (int, optional): the LatentGNN kernel (index into the list
            of projections). (default: :obj:`0`)
        path (str or os.PathLike, optional): save the figure there as a PNG
            (see :func:`save_figure`). (default: :obj:`None`)
        title (str, optional): the axes' title.
            (default: :obj:`None`: the source and sample)

    Returns:
        matplotlib.figure.Figure: two axes, the heat map (its image holds
        the :math:`(d, d)` matrix) and the colorbar.

    Raises:
        ValueError: ``sample`` or ``kernel`` out of range; a matrix that is
            not square; ``x`` missing or malformed for a data-dependent
            graph (from :func:`~glore_pyg.viz.to_networkx`).
        TypeError: ``source`` of another type; a non-floating matrix;
            ``sample``, ``kernel``, ``path`` or ``title`` of the wrong
            type.
    """
    check_path(path)
    check_title(title)
    matrix, _ = _latent_graph(source, x, batch, sample, kernel)
    d = matrix.shape[0]
    low, high = float(matrix.min()), float(matrix.max())
    if low < 0.0 < high:
        bound = max(-low, high)
        style = dict(cmap=_DIVERGING, vmin=-bound, vmax=bound)
    else:
        style = dict(cmap=_SEQUENTIAL)
    side = min(8.0, 3.0 + 0.12 * d)
    fig = Figure(figsize=(side + 1.2, side), layout='constrained')
    ax = fig.add_subplot()
    image = ax.imshow(matrix, interpolation='nearest', **style)
    fig.colorbar(image, ax=ax, label='weight')
    ax.set_xlabel('from latent node j')
    ax.set_ylabel('to latent node k')
    _int_ticks(ax, d)
    ax.set_title(title if title is not None else
                 f"latent graph of {_source_name(source)} (sample {sample})")
    return finish(fig, path)


def latent_graph_drawing(
    source: Source,
    x: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    sample: int = 0,
    kernel: int = 0,
    threshold: Optional[float] = None,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
) -> Figure:
    r"""The latent graph of a unit drawn as a directed graph: the latent
    nodes on a circle (:func:`networkx.circular_layout`), an arrow
    :math:`j \to k` per kept edge, its width growing with :math:`|w_{kj}|`
    and its colour (with a colorbar) giving :math:`w_{kj}` on a diverging
    scale centred on 0 when the kept weights have both signs (GloRe's
    :math:`I - A_g`), else :math:`|w_{kj}|` (``plasma_r``) over the range
    shown.  Self-loops (the diagonal, e.g. GloRe's identity term) are
    omitted; a caption says how many edges are kept.  The graph is GloRe's
    :math:`\mathbf{I} - \mathbf{A}_g` (`"Graph-Based Global Reasoning
    Networks" <https://arxiv.org/abs/1811.12814>`_, Eq. 3), LatentGNN's
    :math:`\mathbf{F}_X` (`"Learning Efficient Non-local Relations for
    Visual Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 6-8) or
    the non-local attention, as :func:`glore_pyg.viz.to_networkx` gives
    it.

    The nodes, edges and labels are drawn with
    :func:`networkx.draw_networkx_nodes`, :func:`~networkx.
    draw_networkx_edges` and :func:`~networkx.draw_networkx_labels` (what
    :func:`networkx.draw_networkx` calls, without its
    ``pyplot.draw_if_interactive``, so that no pyplot state is touched).

    Args:
        source (GlobalReasoningUnit, GridUnit, Tensor or Projection): a
            unit (node-level or a grid adapter), a square matrix
            :math:`(d, d)` (entry ``[k, j]`` weighs :math:`j \to k`), or a
            :class:`~glore_pyg.nn.Projection` (or the list a unit returns)
            whose ``latent_graph[sample]`` is drawn.
        x (Tensor, optional): the input of a unit whose graph depends on it
            (LatentGNN, non-local). (default: :obj:`None`)
        batch (LongTensor, optional): sample index of each row of ``x``
            :math:`(N)` (node-level units). (default: :obj:`None`)
        sample (int, optional): the sample whose graph is drawn.
            (default: :obj:`0`)
        kernel (int, optional): the LatentGNN kernel. (default: :obj:`0`)
        threshold (float, optional): keep the edges with
            :math:`|w| >` ``threshold``. (default: :obj:`None`: the
            :math:`3 d` strongest edges by :math:`|w|`)
        path (str or os.PathLike, optional): save the figure there as a PNG
            (see :func:`save_figure`). (default: :obj:`None`)
        title (str, optional): the axes' title.
            (default: :obj:`None`: the source, sample and number of edges)

    Returns:
        matplotlib.figure.Figure: two axes, the drawing (one node marker
        per latent node :math:`0 .. d-1`, one arrow patch per kept edge)
        and the colorbar of :math:`w` or :math:`|w|`.

    Raises:
        ValueError: ``threshold`` negative or not finite; ``sample`` or
            ``kernel`` out of range; a matrix that is not square; ``x``
            missing or malformed for a data-dependent graph.
        TypeError: ``source`` of another type; ``threshold`` not a number
            (nor :obj:`None`); ``sample``, ``kernel``, ``path`` or
            ``title`` of the wrong type.
    """
    if threshold is not None:
        threshold = check_float(threshold, 'threshold', low=0)
    check_path(path)
    check_title(title)
    _, full = _latent_graph(source, x, batch, sample, kernel)
    d = full.number_of_nodes()
    edges = [(j, k, w) for j, k, w in full.edges(data='weight') if j != k]
    if threshold is None:
        edges = sorted(edges, key=lambda e: -abs(e[2]))[:3 * d]
    else:
        edges = [e for e in edges if abs(e[2]) > threshold]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(d))
    graph.add_weighted_edges_from(edges)
    edgelist = [(j, k) for j, k, _ in edges]
    weight = np.array([w for _, _, w in edges], dtype=np.float64)
    magnitude = np.abs(weight)
    vmax = float(magnitude.max()) if magnitude.size and \
        magnitude.max() > 0 else 1.0
    if weight.size and weight.min() < 0.0 < weight.max():
        # both signs (GloRe's I - A_g): signed colours centred on 0
        colour, low, cmap = weight, -vmax, colormaps[_DIVERGING]
        bar_label = 'weight'
    else:  # one sign: the magnitudes, over the range shown
        colour, cmap, bar_label = magnitude, colormaps[_EDGE_CMAP], '|weight|'
        low = float(magnitude.min()) if magnitude.size else 0.0
        if low >= vmax:
            low = 0.0
    total = sum(1 for j, k in full.edges() if j != k)
    kept = (f'strongest {len(edgelist)} of {total} edges' if threshold is None
            else f'{len(edgelist)} of {total} edges with |w| > {threshold:g}')

    side = min(9.0, 4.0 + 0.1 * d)
    fig = Figure(figsize=(side + 1.0, side), layout='constrained')
    ax = fig.add_subplot()
    layout = nx.circular_layout(graph)
    small = d <= 24
    nx.draw_networkx_nodes(graph, layout, ax=ax,
                           node_size=350 if small else 60,
                           node_color='#e8e8e8', edgecolors='black',
                           linewidths=1.0)
    if edgelist:
        nx.draw_networkx_edges(
            graph, layout, ax=ax, edgelist=edgelist, arrows=True,
            width=list(0.6 + 3.4 * magnitude / vmax),
            edge_color=list(colour), edge_cmap=cmap, edge_vmin=low,
            edge_vmax=vmax, arrowsize=12 if small else 6,
            node_size=350 if small else 60,
            connectionstyle='arc3,rad=0.12')
    nx.draw_networkx_labels(graph, layout, ax=ax,
                            font_size=9 if small else 6)
    ax.set_axis_off()
    ax.set_aspect('equal')
    fig.colorbar(ScalarMappable(norm=Normalize(low, vmax), cmap=cmap),
                 ax=ax, shrink=0.7, label=bar_label)
    ax.set_title(title if title is not None else
                 f"latent graph of {_source_name(source)} (sample {sample}, "
                 f"{len(edgelist)} edges)")
    fig.text(0.5, 0.01, f'{kept}, self-loops omitted; width grows with '
             f'|w|', ha='center', va='bottom', fontsize=8)
    return finish(fig, path)

from typing import Any, Optional, Union

import networkx as nx
import torch
from torch import Tensor

from ..functional.checks import check_int
from ..nn.grid import GridUnit, node_unit
from ..nn.modes import eval_mode
from ..nn.units import GloReConv, GlobalReasoningUnit

#: A node-level unit or a grid adapter around one.
Unit = Union[GlobalReasoningUnit, GridUnit]


@torch.no_grad()
def to_networkx(
    source: Union[Unit, Tensor],
    x: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    ptr: Optional[Tensor] = None,
    sample: int = 0,
    kernel: int = 0,
    threshold: float = 0.0,
) -> nx.DiGraph:
    r"""The latent graph of a unit as a weighted :class:`networkx.DiGraph`.

    * :class:`~glore_pyg.nn.GloReConv` (and ``GloRe1d/2d/3d``): the learned
      :math:`\mathbf{I} - \mathbf{A}_g`, the same for every input (``x`` is
      not needed).
    * any other unit (:class:`~glore_pyg.nn.LatentGNNConv`,
      :class:`~glore_pyg.nn.NonLocalConv` and their grid versions): the
      ``latent_graph`` of its :class:`~glore_pyg.nn.Projection` for input
      ``x`` (node matrix with ``batch``/``ptr``, or a feature map for the
      grid units), sample ``sample``, kernel ``kernel``: LatentGNN's
      data-dependent :math:`\mathbf{F}_X`, the non-local block's attention
      over visible nodes.
    * a ``[d, d]`` tensor: used as is.

    The unit is inspected in evaluation mode (BatchNorm running statistics,
    nothing updated) and then put back in the mode it was in: the unit is
    not changed.

    Edge ``j -> k`` carries ``weight`` = entry ``[k, j]`` (the weight of the
    message from latent node ``j`` to ``k``); edges with
    ``abs(weight) <= threshold`` are left out.  Nodes are ``0 .. d-1``.

    Sources: GloRe's graph convolution (`"Graph-Based Global Reasoning
    Networks" <https://arxiv.org/abs/1811.12814>`_, Eq. 3), LatentGNN's
    latent affinity (`"Learning Efficient Non-local Relations for Visual
    Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 6-8) and the
    non-local block's attention (`"Non-local Neural Networks"
    <https://arxiv.org/abs/1711.07971>`_, Eq. 1 and 3).

    Args:
        source (GlobalReasoningUnit, GridUnit or Tensor): a unit
            (node-level, or a grid adapter such as
            :class:`~glore_pyg.nn.GloRe2d`) or a square ``[d, d]`` matrix
            (entry ``[k, j]`` weighs ``j -> k``).
        x (Tensor, optional): the input whose graph is wanted: node features
            :math:`(N, C)` for a node-level unit, a feature map
            :math:`(B, C, *spatial)` for a grid unit; not needed for GloRe
            or a matrix. (default: :obj:`None`)
        batch (LongTensor, optional): sorted sample index of each row of
            ``x`` :math:`(N)` (node-level units). (default: :obj:`None`)
        ptr (LongTensor, optional): sample boundaries :math:`(S + 1)`
            (node-level units). (default: :obj:`None`)
        sample (int, optional): the sample whose graph is returned.
            (default: :obj:`0`)
        kernel (int, optional): the LatentGNN kernel whose graph is
            returned. (default: :obj:`0`)
        threshold (float, optional): edges with ``abs(weight)`` at most
            this are left out. (default: :obj:`0.0`)

    Returns:
        networkx.DiGraph: nodes ``0 .. d-1`` (for the non-local block the
        visible nodes ``0 .. n-1``, ``n`` those of the largest sample: a
        smaller sample's padding gives isolated nodes), edges ``j -> k``
        with a float ``weight`` attribute.

    Raises:
        ValueError: ``x`` missing for a data-dependent graph, ``sample`` or
            ``kernel`` out of range, a non-square matrix; what the unit's
            forward raises for ``x`` (shape, layout, LatentGNN's
            ``chunk_size``, which stores no projection).
        TypeError: ``source`` of another type; ``sample`` or ``kernel`` not
            an int (for a data-dependent graph; they are not used
            otherwise); an ``x`` of the wrong dtype or device (from the
            unit's forward).
    """
    unit = node_unit(source)
    if isinstance(source, Tensor):
        matrix = source
    elif isinstance(unit, GloReConv):  # learned, the same for any input
        matrix = unit.latent_graph.node_mixing()
    elif unit is not None:
        if x is None:
            raise ValueError(f"'x' is required: the latent graph of "
                             f"{type(source).__name__} depends on the input")
        check_int(sample, 'sample', minimum=0)  # the type before a forward
        check_int(kernel, 'kernel', minimum=0)
        # a grid adapter takes the map alone, a unit its node layout
        layout = {} if unit is not source else dict(batch=batch, ptr=ptr)
        with eval_mode(source):
            _, projections = source(x, return_projection=True, **layout)
        kernel = check_int(kernel, 'kernel', 0, len(projections) - 1)
        graphs = projections[kernel].latent_graph  # [S, d, d]
        sample = check_int(sample, 'sample', 0, graphs.size(0) - 1)
        matrix = graphs[sample]
    else:
        raise TypeError(f"'source' must be a unit (GloReConv, LatentGNNConv, "
                        f"NonLocalConv, ...) or a [d, d] tensor, got "
                        f"{type(source).__name__}")
    if matrix.dim() != 2 or matrix.size(0) != matrix.size(1):
        raise ValueError(f"The latent graph must be a square matrix, got "
                         f"{tuple(matrix.shape)}")

    graph = nx.DiGraph()
    graph.add_nodes_from(range(matrix.size(0)))
    weights = matrix.detach().cpu().double()
    for k, j in (weights.abs() > threshold).nonzero().tolist():
        graph.add_edge(j, k, weight=float(weights[k, j]))
    return graph

from typing import Optional, Union

import networkx as nx
import torch
from torch import Tensor

from ..nn.units import GloReConv, LatentGNNConv


@torch.no_grad()
def to_networkx(
    source: Union[GloReConv, LatentGNNConv, Tensor],
    x: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    ptr: Optional[Tensor] = None,
    sample: int = 0,
    kernel: int = 0,
    threshold: float = 0.0,
) -> nx.DiGraph:
    r"""The latent graph of a unit as a weighted :class:`networkx.DiGraph`.

    * :class:`~glore_pyg.nn.GloReConv` (and ``GloRe1d/2d/3d``): the learned
      :math:`\mathbf{I} - \mathbf{A}_g`, the same for every input (``x`` may
      be omitted).
    * :class:`~glore_pyg.nn.LatentGNNConv` (and ``LatentGNN1d/2d/3d``): the
      data-dependent :math:`\mathbf{F}_X` of sample ``sample`` and kernel
      ``kernel`` for input ``x`` (node matrix with ``batch``/``ptr``, or a
      feature map for the grid units).
    * a ``[d, d]`` tensor: used as is.

    Edge ``j -> k`` carries ``weight`` = entry ``[k, j]`` (the weight of the
    message from latent node ``j`` to ``k``); edges with
    ``abs(weight) <= threshold`` are left out.  Nodes are ``0 .. d-1``.
    The unit is run in its current mode (call ``eval()`` first for
    BatchNorm running statistics).
    """
    if isinstance(source, Tensor):
        matrix = source
    elif isinstance(source, GloReConv):
        matrix = source.latent_graph.node_mixing()
    elif isinstance(source, LatentGNNConv):
        if x is None:
            raise ValueError("'x' is required: the latent graph of "
                             "LatentGNN depends on the input")
        if not 0 <= kernel < source.num_kernels:
            raise ValueError(f"'kernel' must be in [0, {source.num_kernels})"
                             f", got {kernel}")
        if x.dim() == 2:
            _, projections = source(x, batch=batch, ptr=ptr,
                                    return_projection=True)
        else:  # a grid unit
            _, projections = source(x, return_projection=True)
        graphs = projections[kernel].latent_graph  # [S, d, d]
        if not 0 <= sample < graphs.size(0):
            raise ValueError(f"'sample' must be in [0, {graphs.size(0)}), "
                             f"got {sample}")
        matrix = graphs[sample]
    else:
        raise TypeError(f"'source' must be a GloReConv, a LatentGNNConv or "
                        f"a [d, d] tensor, got {type(source).__name__}")
    if matrix.dim() != 2 or matrix.size(0) != matrix.size(1):
        raise ValueError(f"The latent graph must be a square matrix, got "
                         f"{tuple(matrix.shape)}")

    graph = nx.DiGraph()
    graph.add_nodes_from(range(matrix.size(0)))
    weights = matrix.detach().cpu().double()
    for k, j in (weights.abs() > threshold).nonzero().tolist():
        graph.add_edge(j, k, weight=float(weights[k, j]))
    return graph

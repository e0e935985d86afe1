"""Shared explicit-edge machinery of the two bipartite stages.

:class:`~glore_pyg.nn.VisibleToLatent` and
:class:`~glore_pyg.nn.LatentToVisible` propagate along a weighted bipartite
graph in opposite directions.  Their explicit-edge paths are the same
weighted-sum message passing; only which end of an edge is the visible node
differs.  Each subclass owns its fused path.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, SparseTensor
from torch_geometric.utils import is_sparse, spmm, to_edge_index

from ...functional.normalize import normalize_projection
from .checks import check_edge_index


def with_values(adj: Union[Tensor, SparseTensor], value: Tensor):
    """The sparse adjacency ``adj`` with its stored values replaced."""
    if isinstance(adj, SparseTensor):
        return adj.set_value(value, layout='coo')
    if adj.layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(adj.indices(), value, adj.size(),
                                       is_coalesced=True)
    if adj.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(),
                                       value, adj.size())
    if adj.layout == torch.sparse_csc:
        return torch.sparse_csc_tensor(adj.ccol_indices(), adj.row_indices(),
                                       value, adj.size())
    raise ValueError(f"Unsupported sparse layout {adj.layout}")


class BipartiteConv(MessagePassing):
    r"""Weighted-sum propagation over a bipartite graph,
    :math:`\mathbf{h}_i = \sum_{j \to i} w_{ji}\, \mathbf{x}_j`
    (or the mean over :math:`j` with ``aggr='mean'``).

    Subclasses set :attr:`visible_is_source`.
    """
    visible_is_source: bool = True

    def __init__(self, normalize: Optional[str], aggr: str = 'sum',
                 eps: float = 1e-12):
        super().__init__(aggr=aggr)
        self.normalize = normalize
        self.eps = eps

    def _split(self, source: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
        # (visible index, latent index) of each edge
        return (source, target) if self.visible_is_source else (target,
                                                                  source)

    def _normalize_edges(self, weight: Tensor, source: Tensor, target: Tensor,
                         num_sources: int, num_targets: int) -> Tensor:
        visible, latent = self._split(source, target)
        num_visible, num_latent = self._split(
            num_sources, num_targets)  # type: ignore[arg-type]
        return normalize_projection(weight, self.normalize,
                                    visible_index=visible,
                                    latent_index=latent,
                                    num_visible=num_visible,
                                    num_latent=num_latent, eps=self.eps)

    def propagate_edges(self, x: Tensor, edge_index: Adj,
                        weight: Optional[Tensor],
                        num_targets: Optional[int]) -> Tensor:
        r"""Explicit-edge path.

        ``edge_index`` is ``[2, E]`` (row 0 source, row 1 target) with
        ``weight [E]``, or a sparse adjacency ``adj_t [num_targets,
        num_sources]`` (``torch_sparse.SparseTensor`` or ``torch.sparse``)
        whose stored values are the weights.
        """
        if x.dim() != 2:
            raise ValueError(f"With 'edge_index', node features must be a "
                             f"matrix [num_nodes, C], got {tuple(x.shape)}")
        num_sources = x.size(0)
        if is_sparse(edge_index):
            if weight is not None:
                raise ValueError(
                    "'weight' must be None when 'edge_index' is a sparse "
                    "adjacency: its stored values are the edge weights")
            adj_t = edge_index
            if adj_t.size(1) != num_sources:
                raise ValueError(
                    f"The sparse adjacency must have shape [num_targets, "
                    f"{num_sources}] (transposed, as in PyG), got "
                    f"{tuple(adj_t.size())}")
            if num_targets is not None and adj_t.size(0) != num_targets:
                raise ValueError(
                    f"The sparse adjacency has {adj_t.size(0)} target rows "
                    f"but {num_targets} targets were requested")
            if (not isinstance(adj_t, SparseTensor)
                    and adj_t.layout == torch.sparse_coo):
                # PyG marks COO inputs as coalesced in place without sorting
                # them (scrambling the weights) and without a derivative;
                # hand it a sorted CSR matrix, which spmm uses anyway.
                adj_t = adj_t.coalesce().to_sparse_csr()
            if self.normalize is not None:
                (target, source), value = to_edge_index(adj_t)
                value = self._normalize_edges(value, source, target,
                                              num_sources, adj_t.size(0))
                adj_t = with_values(adj_t, value)
            return self.propagate(adj_t, x=(x, None))

        if (not isinstance(edge_index, Tensor) or edge_index.dim() != 2
                or edge_index.size(0) != 2):
            raise ValueError(f"'edge_index' must be a [2, E] tensor or a "
                             f"sparse adjacency, got {edge_index!r:.80}")
        num_edges = edge_index.size(1)
        if weight is None or weight.shape != (num_edges, ):
            shape = None if weight is None else tuple(weight.shape)
            raise ValueError(f"'weight' must hold one value per edge "
                             f"[{num_edges}], got {shape}")
        source, target = edge_index[0], edge_index[1]
        check_edge_index(edge_index, num_sources, num_targets,
                         *self._split('visible', 'latent'))
        if num_targets is None:
            num_targets = int(target.max()) + 1 if num_edges > 0 else 0
        weight = self._normalize_edges(weight, source, target, num_sources,
                                       num_targets)
        return self.propagate(edge_index, x=(x, None), edge_weight=weight,
                              size=(num_sources, num_targets))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj,
                              x: Tuple[Tensor, Optional[Tensor]]) -> Tensor:
        return spmm(adj_t, x[0], reduce=self.aggr)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(normalize={self.normalize!r})'

from .graphs import (complete_bipartite_graph, complete_latent_graph,
                     topk_bipartite_graph)
from .networkx import to_networkx

__all__ = [
    'to_networkx',
    'complete_bipartite_graph',
    'complete_latent_graph',
    'topk_bipartite_graph',
]

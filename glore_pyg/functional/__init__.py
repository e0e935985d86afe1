"""The few helpers the stages share: the sample layout of visible nodes (and
its sums over processes when sharded), the
normalisations of projection weights, the memory-lean chunked passes and
the builders of explicit visible-latent graphs."""
from .graphs import (complete_bipartite_graph, complete_latent_graph,
                     topk_bipartite_graph)
from .normalize import l2_normalize, normalize_projection
from .segments import Segments
from .shard import Shard, ShardMismatchError

__all__ = ['Segments', 'Shard', 'ShardMismatchError', 'l2_normalize', 'normalize_projection',
           'complete_bipartite_graph', 'complete_latent_graph',
           'topk_bipartite_graph']

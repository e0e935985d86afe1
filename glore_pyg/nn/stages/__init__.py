"""The three message-passing stages of a latent-graph unit (the math, once)."""
from .attention import AttentionConv
from .glore_graph_conv import GloReGraphConv
from .latent_affinity_conv import LatentAffinityConv
from .latent_to_visible import LatentToVisible
from .visible_to_latent import VisibleToLatent

__all__ = [
    'VisibleToLatent',
    'GloReGraphConv',
    'LatentAffinityConv',
    'AttentionConv',
    'LatentToVisible',
]

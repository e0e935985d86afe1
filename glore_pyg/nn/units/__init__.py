"""Units composed of the stages: node-level PyG layers."""
from .base import Projection
from .glore import GloReConv
from .latentgnn import LatentGNNConv
from .non_local import NonLocalConv

__all__ = ['GloReConv', 'LatentGNNConv', 'NonLocalConv', 'Projection']

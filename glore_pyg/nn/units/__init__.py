"""Units composed of the stages: node-level PyG layers sharing one
protocol (:class:`GlobalReasoningUnit`)."""
from .base import GlobalReasoningUnit, Projection
from .glore import GloReConv
from .latentgnn import LatentGNNConv
from .non_local import NonLocalConv

__all__ = ['GlobalReasoningUnit', 'GloReConv', 'LatentGNNConv',
           'NonLocalConv', 'Projection']

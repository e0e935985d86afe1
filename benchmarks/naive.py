"""The naive per-edge version of a unit: what a PyG user writes first.

The same unit object, with its two bipartite stages swapped for adapters
that call the stages' explicit ``edge_index`` path over the complete
bipartite graph (``E = N * d`` edges, one ``C``-channel message each).  The
latent graph (``d x d`` per sample) is left as it is.
"""
import copy

from torch import Tensor, nn

from glore_pyg.functional import Segments
from glore_pyg.functional import complete_bipartite_graph


class EdgeCache:
    """The complete bipartite ``edge_index`` of a layout (visible to
    latent, or latent to visible with ``flip``), built once: a dataset
    would store it."""

    def __init__(self, flip: bool = False):
        self.flip, self.key, self.edge_index = flip, None, None

    def __call__(self, weight: Tensor, seg: Segments) -> Tensor:
        key = (seg.num_nodes, seg.num_samples, seg.sizes, weight.size(1))
        if key != self.key:
            self.key = key
            edge_index = complete_bipartite_graph(weight, weight.size(1),
                                                  seg.batch())
            self.edge_index = edge_index.flip(0) if self.flip else edge_index
        return self.edge_index


class NaiveVisibleToLatent(nn.Module):
    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage, self.edges = stage, EdgeCache()

    def forward(self, x: Tensor, weight: Tensor, segments: Segments):
        S, d = segments.num_samples, weight.size(1)
        z = self.stage(x, weight.reshape(-1), self.edges(weight, segments),
                       num_latent=S * d)
        return z.view(S, d, -1)


class NaiveLatentToVisible(nn.Module):
    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage, self.edges = stage, EdgeCache(flip=True)

    def forward(self, z: Tensor, weight: Tensor, segments: Segments):
        return self.stage(z.reshape(-1, z.size(2)), weight.reshape(-1),
                          self.edges(weight, segments),
                          num_visible=segments.num_nodes)


def naive(unit: nn.Module) -> nn.Module:
    """A copy of ``unit`` (same weights) on per-edge message passing."""
    unit = copy.deepcopy(unit)
    unit.visible_to_latent = NaiveVisibleToLatent(unit.visible_to_latent)
    unit.latent_to_visible = NaiveLatentToVisible(unit.latent_to_visible)
    return unit

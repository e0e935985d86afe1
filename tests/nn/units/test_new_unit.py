"""The unit protocol's promise: a fourth unit is one subclass of
GlobalReasoningUnit with ``reason``, and the grid adapter (``GridUnit``
wrapping it), input checks, empty inputs, autocast and ``to_networkx`` work
for it unchanged."""
from typing import List, Tuple

import pytest
import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear

from glore_pyg.functional import Segments
from glore_pyg.nn import GlobalReasoningUnit, GridUnit, Projection
from glore_pyg.viz import to_networkx


class GlobalContextConv(GlobalReasoningUnit):
    """A test unit: one latent node per sample, the mean of a projection
    of its visible nodes, spread back to every node
    (``X' = X + BN(W_2 mean_s(W_1 X))``)."""

    def __init__(self, in_channels: int, hidden: int = 4):
        super().__init__()
        self.in_channels = in_channels
        self.down = Linear(in_channels, hidden)
        self.up = Linear(hidden, in_channels)
        self.norm = BatchNorm1d(in_channels)
        torch.nn.init.zeros_(self.norm.weight)

    def reason(self, x: Tensor, segments: Segments,
               return_projection: bool = False
               ) -> Tuple[Tensor, List[Projection]]:
        weight = x.new_ones(x.size(0), 1)  # every node -> its latent node
        z = segments.pool(weight, self.down(x)) / segments.counts().view(
            -1, 1, 1)  # [S, 1, hidden]
        branch = self.norm(self.up(segments.spread(weight, z)))
        projections = []
        if return_projection:
            graph = x.new_ones(segments.num_samples, 1, 1)
            projections.append(Projection(weight, weight, graph,
                                          segments.batch()))
        return branch, projections


def GlobalContext2d(in_channels: int) -> GridUnit:
    return GridUnit(GlobalContextConv(in_channels), dims=2)


def reference(unit, x, sizes):
    """Per-sample loop, written out."""
    parts = []
    for xs in x.split(sizes):
        h = unit.up(unit.down(xs).mean(0, keepdim=True)).expand(len(xs), -1)
        parts.append(h)
    return x + unit.norm(torch.cat(parts))


def test_node_level_and_grid():
    torch.manual_seed(0)
    unit = GlobalContextConv(6).double()
    torch.nn.init.normal_(unit.norm.weight)
    x = torch.randn(7, 6, dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    torch.testing.assert_close(unit(x, batch), reference(unit, x, [3, 4]))

    grid = GlobalContext2d(6).double()
    grid.load_state_dict(unit.state_dict())  # unit's keys: under 'unit.'
    assert list(grid.state_dict()) == ['unit.' + k
                                       for k in unit.state_dict()]
    m = torch.randn(2, 6, 3, 2, dtype=torch.float64)
    rows = m.movedim(1, -1).reshape(-1, 6)
    want = reference(unit, rows, [6, 6]).view(2, 3, 2, 6).movedim(-1, 1)
    torch.testing.assert_close(grid(m), want)


def test_protocol_features_come_for_free():
    unit = GlobalContextConv(6)
    x = torch.randn(9, 6)
    assert torch.equal(unit(x, batch_size=3), x)  # zero-initialised BN
    assert unit(torch.randn(0, 6)).shape == (0, 6)
    with pytest.raises(TypeError, match="'x' is torch.float64"):
        unit(x.double())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert unit(x, batch_size=3).dtype == torch.float32
    graph = to_networkx(unit.train(), x, torch.tensor([0] * 4 + [1] * 5),
                        sample=1)
    assert unit.training and list(graph.edges(data='weight')) == [(0, 0,
                                                                    1.0)]
    grid = GlobalContext2d(6)
    _, (proj, ) = grid(torch.randn(2, 6, 3, 3), return_projection=True)
    assert proj.latent_graph.shape == (2, 1, 1)
    graph = to_networkx(grid, torch.randn(2, 6, 3, 3), sample=1)
    assert list(graph.edges(data='weight')) == [(0, 0, 1.0)]

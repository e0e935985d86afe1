"""glore_pyg.viz.to_networkx: the latent graph of a unit as a weighted
networkx.DiGraph."""
import networkx as nx
import pytest
import torch

from glore_pyg.nn import (GloRe2d, GloReConv, GridUnit, LatentGNN2d,
                          LatentGNNConv)
from glore_pyg.viz import to_networkx
from glore_pyg.nn import node_unit
from tests.weights import randomize

DTYPE = torch.float64
C = 16


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=DTYPE)


def as_matrix(graph, d):
    """Dense ``[d, d]`` with entry ``[k, j]`` the weight of edge ``j -> k``
    (NaN where there is no edge)."""
    out = torch.full((d, d), float('nan'), dtype=DTYPE)
    for j, k, w in graph.edges(data='weight'):
        out[k, j] = w
    return out


# ---------------------------------------------------------------------------
# GloRe: I - A_g
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('cls', [GloReConv, GloRe2d])
def test_glore_graph(cls):
    d = 5
    unit = randomize(cls(C, d), 1)
    graph = to_networkx(unit)
    assert isinstance(graph, nx.DiGraph)
    assert sorted(graph.nodes) == list(range(d))
    assert graph.number_of_edges() == d * d
    adjacency = node_unit(unit).latent_graph.adjacency.detach()
    mixing = torch.eye(d, dtype=DTYPE) - adjacency
    for j in range(d):
        for k in range(d):
            assert graph[j][k]['weight'] == pytest.approx(
                float(mixing[k, j]), abs=1e-12)
    # asymmetric matrix: the direction of the edges matters
    j, k = 0, 1
    assert mixing[k, j] != mixing[j, k]
    assert graph[j][k]['weight'] != graph[k][j]['weight']
    # x is not needed, and is ignored when given
    graph2 = to_networkx(unit, x=randn(10, C))
    assert torch.equal(as_matrix(graph2, d), as_matrix(graph, d))


def test_glore_threshold():
    d = 6
    unit = randomize(GloReConv(C, d), 2)
    mixing = torch.eye(d, dtype=DTYPE) - unit.latent_graph.adjacency.detach()
    threshold = float(mixing.abs().median())
    graph = to_networkx(unit, threshold=threshold)
    assert graph.number_of_nodes() == d  # isolated nodes are kept
    kept = mixing.abs() > threshold
    assert 0 < graph.number_of_edges() == int(kept.sum()) < d * d
    for j, k, w in graph.edges(data='weight'):
        assert abs(w) > threshold
        assert w == pytest.approx(float(mixing[k, j]))


def test_glore_graph_does_not_need_grad():
    unit = GloReConv(C, 3)
    graph = to_networkx(unit)
    assert all(isinstance(w, float) for _, _, w in graph.edges(data='weight'))


# ---------------------------------------------------------------------------
# LatentGNN: F_X of one sample and kernel
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
def test_latentgnn_graph(mode):
    dims = [3, 5]
    unit = randomize(LatentGNNConv(C, dims, mode=mode), 3).eval()
    sizes = [7, 12, 9]
    x = randn(sum(sizes), C, seed=3)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    ptr = torch.tensor([0, 7, 19, 28])
    _, projs = unit(x, batch=batch, return_projection=True)
    for kernel, d in enumerate(dims):
        for sample in range(3):
            graph = to_networkx(unit, x, batch=batch, sample=sample,
                                kernel=kernel)
            assert sorted(graph.nodes) == list(range(d))
            assert graph.number_of_edges() == d * d
            fx = projs[kernel].latent_graph[sample]
            torch.testing.assert_close(as_matrix(graph, d), fx)
            # rows of F_X sum to 1: the incoming weights of each node
            for k in range(d):
                incoming = sum(w for _, _, w in graph.in_edges(k, 'weight'))
                assert incoming == pytest.approx(1.0)
            # ptr gives the same graph
            graph_ptr = to_networkx(unit, x, ptr=ptr, sample=sample,
                                    kernel=kernel)
            assert torch.equal(as_matrix(graph_ptr, d), as_matrix(graph, d))
    # in eval mode, F_X of a sample does not depend on the others
    alone = to_networkx(unit, x[7:19], kernel=1)
    torch.testing.assert_close(
        as_matrix(alone, 5),
        as_matrix(to_networkx(unit, x, batch=batch, sample=1, kernel=1), 5))
    # the graph depends on the input
    other = to_networkx(unit, randn(12, C, seed=4), kernel=1)
    assert not torch.allclose(as_matrix(other, 5), as_matrix(alone, 5))


def test_node_unit():
    node = GloReConv(C, 4)
    assert node_unit(node) is node
    assert node_unit(GridUnit(node, dims=1)) is node
    assert type(node_unit(LatentGNN2d(C, [4]))) is LatentGNNConv
    assert node_unit(torch.nn.Linear(2, 2)) is None
    assert node_unit(torch.eye(2)) is None


def test_latentgnn_grid_unit():
    unit = randomize(LatentGNN2d(C, [4]), 5).eval()
    x = randn(2, C, 3, 5, seed=5)
    _, projs = unit(x, return_projection=True)
    graph = to_networkx(unit, x, sample=1)
    assert graph.number_of_edges() == 16
    torch.testing.assert_close(as_matrix(graph, 4), projs[0].latent_graph[1])


def test_latentgnn_threshold():
    unit = randomize(LatentGNNConv(C, [6]), 6).eval()
    x = randn(20, C, seed=6)
    _, projs = unit(x, return_projection=True)
    fx = projs[0].latent_graph[0].detach()
    threshold = float(fx.median())
    graph = to_networkx(unit, x, threshold=threshold)
    assert graph.number_of_nodes() == 6
    assert 0 < graph.number_of_edges() == int((fx > threshold).sum()) < 36
    assert all(w > threshold for _, _, w in graph.edges(data='weight'))


def test_latentgnn_errors():
    unit = LatentGNNConv(C, [3, 4]).eval()
    x = torch.randn(10, C)
    with pytest.raises(ValueError, match="'x' is required"):
        to_networkx(unit)
    with pytest.raises(ValueError,
                       match=r"^'kernel' must be an int in \[0, 1\], got 2$"):
        to_networkx(unit, x, kernel=2)
    with pytest.raises(ValueError,
                       match="^'kernel' must be an int >= 0, got -1$"):
        to_networkx(unit, x, kernel=-1)
    with pytest.raises(ValueError,
                       match=r"^'sample' must be an int in \[0, 0\], got 1$"):
        to_networkx(unit, x, sample=1)
    with pytest.raises(ValueError,
                       match=r"^'sample' must be an int in \[0, 1\], got 2$"):
        to_networkx(unit, x, batch=torch.tensor([0] * 5 + [1] * 5), sample=2)
    with pytest.raises(ValueError,
                       match="^'sample' must be an int >= 0, got -1$"):
        to_networkx(unit, x, sample=-1)
    with pytest.raises(TypeError, match=r"^'kernel' must be an int >= 0, "
                       r"got float 1\.0$"):
        to_networkx(unit, x, kernel=1.0)
    with pytest.raises(TypeError, match="^'sample' must be an int >= 0, "
                       "got bool False$"):
        to_networkx(unit, x, sample=False)
    with pytest.raises(TypeError, match="^'sample' must be an int >= 0, "
                       "got str '0'$"):
        to_networkx(unit, x, sample='0')
    # numpy integers are ints
    np = pytest.importorskip('numpy')
    assert to_networkx(unit, x, sample=np.int64(0), kernel=np.int32(1)
                       ).number_of_nodes() == 4


# ---------------------------------------------------------------------------
# A matrix as is
# ---------------------------------------------------------------------------
def test_matrix_source():
    m = torch.tensor([[0.5, 0.0, -2.0], [1.0, 0.0, 0.0], [0.0, 3.0, 0.25]])
    graph = to_networkx(m)
    assert sorted(graph.nodes) == [0, 1, 2]
    # zeros are not edges (threshold 0 keeps |w| > 0)
    assert graph.number_of_edges() == 5
    assert graph[2][0]['weight'] == -2.0  # entry [0, 2]: 2 -> 0
    assert graph[0][1]['weight'] == 1.0  # entry [1, 0]: 0 -> 1
    assert graph[1][2]['weight'] == 3.0
    assert graph[0][0]['weight'] == 0.5
    assert not graph.has_edge(0, 2)
    graph = to_networkx(m, threshold=0.9)
    assert sorted(graph.edges) == [(0, 1), (1, 2), (2, 0)]
    # a matrix that requires grad is fine
    graph = to_networkx(m.clone().requires_grad_())
    assert graph.number_of_edges() == 5


def test_bad_sources():
    with pytest.raises(ValueError, match='square'):
        to_networkx(torch.zeros(2, 3))
    with pytest.raises(ValueError, match='square'):
        to_networkx(torch.zeros(2, 2, 2))
    with pytest.raises(TypeError, match="'source'"):
        to_networkx(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="'source'"):
        to_networkx([[1.0]])


def test_each_modules_own_mode_restored():
    unit = randomize(LatentGNN2d(C, [4]), 5).train()
    unit.unit.up[1].eval()  # a BatchNorm frozen by the user
    modes = [(name, m.training) for name, m in unit.named_modules()]
    to_networkx(unit, randn(2, C, 3, 5, seed=5))
    assert [(name, m.training) for name, m in unit.named_modules()] == modes

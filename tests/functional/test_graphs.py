"""Tests of :func:`glore_pyg.functional.topk_bipartite_graph`: the kept
edges, and the checks of ``k``."""
import pytest
import torch

from glore_pyg.functional import topk_bipartite_graph


def test_keeps_the_k_largest_weights_of_each_visible_node():
    weight = torch.tensor([[0.1, 0.9, 0.5],
                           [0.7, 0.2, 0.3],
                           [0.4, 0.6, 0.8]])
    batch = torch.tensor([0, 0, 1])
    edge_index, edge_weight = topk_bipartite_graph(weight, 2, batch=batch)
    # latent node j of sample s is s * 3 + j
    assert edge_index.tolist() == [[0, 0, 1, 1, 2, 2],
                                   [1, 2, 0, 2, 5, 4]]
    assert edge_weight.tolist() == pytest.approx([0.9, 0.5, 0.7, 0.3, 0.8,
                                                  0.6])


def test_k_may_be_a_numpy_int():
    np = pytest.importorskip('numpy')
    edge_index, _ = topk_bipartite_graph(torch.randn(4, 3), np.int64(3))
    assert edge_index.shape == (2, 12)


@pytest.mark.parametrize('k, error, match', [
    (0, ValueError, r"^'k' must be an int in \[1, 3\], got 0$"),
    (4, ValueError, r"^'k' must be an int in \[1, 3\], got 4$"),
    (-1, ValueError, r"^'k' must be an int in \[1, 3\], got -1$"),
    (2.0, TypeError, r"^'k' must be an int in \[1, 3\], got float 2\.0$"),
    (True, TypeError, r"^'k' must be an int in \[1, 3\], got bool True$"),
    (None, TypeError, r"^'k' must be an int in \[1, 3\], got NoneType "
     r"None$"),
])
def test_bad_k(k, error, match):
    with pytest.raises(error, match=match):
        topk_bipartite_graph(torch.randn(4, 3), k)


def test_bad_batch_size():
    with pytest.raises(TypeError, match=r"^'batch_size' must be an int >= 1, "
                       r"got float 2\.0$"):
        topk_bipartite_graph(torch.randn(4, 3), 1, batch_size=2.0)

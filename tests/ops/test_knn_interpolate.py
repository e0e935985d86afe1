"""knn_interpolate against a hand computation and against PyG's own
function running on our knn."""
import importlib

import pytest
import torch

from glore_pyg.ops import knn, knn_interpolate


def batch_of(sizes):
    return torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))


def test_hand_computation():
    pos_x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    x = torch.tensor([[1.0, 0.0], [2.0, 1.0], [4.0, 2.0], [100.0, 100.0]])
    pos_y = torch.tensor([[0.0, 1.0]])
    # squared distances 1, 2, 1 -> weights 1, 1/2, 1 (the far point is 4th)
    expected = (1 * x[0] + 0.5 * x[1] + 1 * x[2]) / 2.5
    out = knn_interpolate(x, pos_x, pos_y, k=3)
    torch.testing.assert_close(out, expected.view(1, 2))


def test_coinciding_point_dominates():
    pos_x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
                         dtype=torch.float64)
    x = torch.tensor([[3.0], [5.0], [7.0]], dtype=torch.float64)
    out = knn_interpolate(x, pos_x, pos_x[:1], k=3)
    torch.testing.assert_close(out, x[:1], atol=1e-12, rtol=0)


def test_matches_pyg_formula_batched(monkeypatch):
    """PyG's function, with its knn replaced by ours, on batched clouds
    (cloud 1 has few points, cloud 2 one point, cloud 3 no queries)."""
    pyg = importlib.import_module('torch_geometric.nn.unpool.knn_interpolate')
    monkeypatch.setattr(pyg, 'knn', knn)
    g = torch.Generator().manual_seed(0)
    sx, sy = [12, 2, 1, 4], [7, 5, 3, 0]
    pos_x = torch.rand(sum(sx), 3, generator=g)
    pos_y = torch.rand(sum(sy), 3, generator=g)
    x = torch.randn(sum(sx), 6, generator=g)
    bx, by = batch_of(sx), batch_of(sy)
    ours = knn_interpolate(x, pos_x, pos_y, bx, by, k=3)
    theirs = pyg.knn_interpolate(x, pos_x, pos_y, bx, by, k=3)
    torch.testing.assert_close(ours, theirs)
    # one-point cloud: its feature everywhere
    torch.testing.assert_close(ours[12:15], x[14].expand(3, 6))


def test_gradient_reaches_features_only():
    g = torch.Generator().manual_seed(1)
    pos_x = torch.rand(10, 2, generator=g, requires_grad=True)
    pos_y = torch.rand(4, 2, generator=g, requires_grad=True)
    x = torch.randn(10, 3, generator=g, dtype=torch.float32,
                    requires_grad=True)
    out = knn_interpolate(x, pos_x, pos_y, k=2)
    out.sum().backward()
    assert x.grad is not None and pos_x.grad is None and pos_y.grad is None
    # each query's weights sum to one
    torch.testing.assert_close(x.grad.sum(), torch.tensor(12.0))


def test_empty_cloud_gives_nan_as_pyg():
    pos_x = torch.rand(3, 2)
    pos_y = torch.rand(2, 2)
    out = knn_interpolate(torch.ones(3, 1), pos_x, pos_y,
                          batch_x=torch.zeros(3, dtype=torch.long),
                          batch_y=torch.tensor([0, 1]))
    assert out[0].item() == pytest.approx(1.0) and out[1].isnan().all()


@pytest.mark.parametrize('call,error,match', [
    (lambda p: knn_interpolate(torch.ones(4), p, p), ValueError, "'x'"),
    (lambda p: knn_interpolate(torch.ones(3, 1), p, p), ValueError, "'x'"),
    (lambda p: knn_interpolate([1.0], p, p), TypeError, "'x'"),
    (lambda p: knn_interpolate(torch.ones(4, 1), p, p[:, :1]), ValueError,
     "'pos_y'"),
    (lambda p: knn_interpolate(torch.ones(4, 1), p.long(), p), TypeError,
     "'pos_x'"),
    (lambda p: knn_interpolate(torch.ones(4, 1), p, p, k=0), ValueError,
     "'k'"),
    (lambda p: knn_interpolate(torch.ones(4, 1), p, p,
                               batch_x=torch.tensor([1, 0, 0, 0])),
     ValueError, "'batch_x'"),
])
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.rand(4, 2))

"""The ops' argument checks, the dispatch (pyg-lib, torch_cluster, scipy,
torch: the libraries are simulated, neither is installed here) and the
benchmark script."""
import types

import pytest
import torch
import torch_geometric.nn

from glore_pyg.ops import _backend, backend, fps, knn, radius
from tests.scripts import load

X = torch.rand(5, 3)
B = torch.tensor([0, 0, 1, 1, 1])

KNN_ERRORS = [
    (dict(x=[[0.0, 1.0]]), TypeError, "'x' must be a tensor"),
    (dict(x=X.long()), TypeError, "'x' must be a floating-point"),
    (dict(x=X.view(5, 3, 1)), ValueError, r"'x' must have shape \[N, D\]"),
    (dict(x=torch.empty(5, 0)), ValueError, "'x' must have at least one"),
    (dict(y=torch.tensor([[0.0, float('nan'), 0.0]])), ValueError,
     "'y' must hold finite"),
    (dict(y=X[:, :2]), ValueError, "'y' must have as many coordinates"),
    (dict(y=X.double()), TypeError, "'y' must have the dtype"),
    (dict(k=0), ValueError, "^'k' must be an int >= 1, got 0$"),
    (dict(k=2.0), TypeError, r"^'k' must be an int >= 1, got float 2\.0$"),
    (dict(k=True), TypeError, "^'k' must be an int >= 1, got bool True$"),
    (dict(cosine=1), TypeError, "'cosine' must be a bool"),
    (dict(num_workers=0), ValueError,
     "^'num_workers' must be an int >= 1, got 0$"),
    (dict(batch_x=B.float()), TypeError, "'batch_x' must be an integer"),
    (dict(batch_x=B.bool()), TypeError, "'batch_x' must be an integer"),
    (dict(batch_x=[0, 0, 1, 1, 1]), TypeError, "'batch_x' must be a tensor"),
    (dict(batch_x=B[:4]), ValueError, r"'batch_x' must have shape \[5\]"),
    (dict(batch_y=B.view(5, 1)), ValueError, "'batch_y' must have shape"),
    (dict(batch_x=B.flip(0)), ValueError, "'batch_x' must be sorted"),
    (dict(batch_y=B - 1), ValueError, "'batch_y' must be non-negative"),
    (dict(batch_x=B, batch_size=1), ValueError,
     "'batch_x' holds cloud index 1 but 'batch_size' is 1"),
    (dict(batch_size=0), ValueError,
     "^'batch_size' must be an int >= 1, got 0$"),
    (dict(batch_size=2.0), TypeError,
     r"^'batch_size' must be an int >= 1, got float 2\.0$"),
]


@pytest.mark.parametrize('change,error,match', KNN_ERRORS)
def test_knn_errors(change, error, match):
    kwargs = dict(x=X, y=X, k=2, batch_x=None, batch_y=None)
    kwargs.update(change)
    with pytest.raises(error, match=match):
        knn(**kwargs)


@pytest.mark.parametrize('change,error,match', [
    (dict(r=0.0), ValueError, r"^'r' must be a finite number > 0, got 0\.0$"),
    (dict(r=-1), ValueError, r"^'r' must be a finite number > 0, got -1\.0$"),
    (dict(r=float('inf')), ValueError,
     "^'r' must be a finite number > 0, got inf$"),
    (dict(r=float('nan')), ValueError,
     "^'r' must be a finite number > 0, got nan$"),
    (dict(r='1'), TypeError, "^'r' must be a finite number > 0, got str '1'$"),
    (dict(max_num_neighbors=0), ValueError,
     "^'max_num_neighbors' must be an int >= 1, got 0$"),
    (dict(max_num_neighbors=None), TypeError,
     "^'max_num_neighbors' must be an int >= 1, got NoneType None$"),
    (dict(num_workers=-1), ValueError,
     "^'num_workers' must be an int >= 1, got -1$"),
    (dict(y=X.T), ValueError, "'y' must have as many coordinates"),
    (dict(batch_y=B[1:]), ValueError, "'batch_y' must have shape"),
])
def test_radius_errors(change, error, match):
    kwargs = dict(x=X, y=X, r=0.5)
    kwargs.update(change)
    with pytest.raises(error, match=match):
        radius(**kwargs)


@pytest.mark.parametrize('change,error,match', [
    (dict(ratio=0.0), ValueError,
     r"^'ratio' must be a finite number in \(0, 1\], got 0\.0$"),
    (dict(ratio=1.5), ValueError,
     r"^'ratio' must be a finite number in \(0, 1\], got 1\.5$"),
    (dict(ratio=torch.tensor(0.5)), TypeError,
     r"^'ratio' must be a finite number in \(0, 1\], got Tensor tensor"),
    (dict(random_start=0), TypeError, "'random_start' must be a bool"),
    (dict(x=X.int()), TypeError, "'x' must be a floating-point"),
    (dict(x=torch.full((2, 2), float('inf'))), ValueError, "'x' must hold"),
    (dict(batch=B[:3]), ValueError, "'batch' must have shape"),
    (dict(batch=B, batch_size=1), ValueError, "'batch_size' is 1"),
])
def test_fps_errors(change, error, match):
    kwargs = dict(x=X)
    kwargs.update(change)
    with pytest.raises(error, match=match):
        fps(**kwargs)


def test_backend_here():
    """No pyg-lib or torch_cluster here: ours, scipy on CPU if installed."""
    has_scipy = _backend.ckdtree() is not None
    cpu = 'scipy' if has_scipy else 'torch'
    if not _backend.pyg_lib_has('knn') and _backend.torch_cluster() is None:
        assert backend('knn') == cpu and backend('radius', 'cpu') == cpu
        assert backend('fps') == 'torch'
        assert backend('knn', torch.device('cuda')) == 'torch'
    assert backend('knn', 'cpu', cosine=True) == cpu
    with pytest.raises(ValueError, match="'op' must be one of"):
        backend('nearest')
    with _backend.forced('torch'):
        assert backend('knn') == 'torch'
    with pytest.raises(ValueError, match="'name' must be one of"):
        with _backend.forced('faiss'):
            pass


def test_without_scipy_cpu_takes_the_torch_path(monkeypatch):
    monkeypatch.setattr(_backend, 'ckdtree', lambda: None)
    monkeypatch.setattr(_backend, 'pyg_lib_has', lambda op: False)
    monkeypatch.setattr(_backend, 'torch_cluster', lambda: None)
    assert backend('knn') == 'torch' and backend('radius') == 'torch'
    x = torch.rand(30, 2)
    row, col = knn(x, x, 1)
    assert torch.equal(col, torch.arange(30))
    assert radius(x, x, 0.3).size(1) >= 30
    with pytest.raises(RuntimeError, match='scipy'):
        with _backend.forced('scipy'):
            pass


def recorder(calls, name, result):
    def fn(*args, **kwargs):
        calls.append((name, args, kwargs))
        return result
    return fn


def test_pyg_lib_is_called_when_it_provides_the_op(monkeypatch):
    """Both batch vectors (zeros for a missing one) and ``batch_size`` go
    to PyG, as pyg-lib needs both pointers."""
    calls, out = [], torch.zeros(2, 0, dtype=torch.long)
    monkeypatch.setattr(_backend, 'pyg_lib_has', lambda op: True)
    for op in ('knn', 'radius', 'fps'):
        monkeypatch.setattr(torch_geometric.nn, op, recorder(calls, op, out))
    y = torch.rand(4, 3)
    by = torch.tensor([0, 1, 2, 2])
    assert knn(X, y, 2, None, by) is out
    name, args, _ = calls[-1]
    assert name == 'knn' and args[2] == 2 and args[7] == 3
    assert torch.equal(args[3], torch.zeros(5, dtype=torch.long))
    assert torch.equal(args[4], by)
    assert radius(X, y, 0.5, B, None, 7, batch_size=4) is out
    name, args, _ = calls[-1]
    assert name == 'radius' and args[2] == 0.5 and args[5] == 7
    assert torch.equal(args[4], torch.zeros(4, dtype=torch.long))
    assert args[7] == 4
    assert fps(X, B, 0.5, False) is out
    assert calls[-1][0] == 'fps' and calls[-1][1][4] == 2
    # one cloud: no batch vectors at all
    knn(X, y, 2)
    assert calls[-1][1][3] is None and calls[-1][1][7] is None
    # cosine on CPU is rejected by the library kernel: ours runs
    n = len(calls)
    assert knn(X, y, 2, cosine=True).shape == (2, 8) and len(calls) == n


def test_torch_cluster_is_called_when_installed(monkeypatch):
    calls, out = [], torch.zeros(2, 0, dtype=torch.long)
    fake = types.SimpleNamespace(**{op: recorder(calls, op, out)
                                    for op in ('knn', 'radius', 'fps')})
    monkeypatch.setattr(_backend, 'pyg_lib_has', lambda op: False)
    monkeypatch.setattr(_backend, 'torch_cluster', lambda: fake)
    assert backend('knn') == 'torch_cluster'
    assert knn(X, X, 3, B, B, num_workers=2) is out
    name, args, kwargs = calls[-1]
    assert name == 'knn' and args[2] == 3 and kwargs['num_workers'] == 2
    assert radius(X, X, 0.4, B, B, 5) is out
    assert calls[-1][2]['max_num_neighbors'] == 5
    assert fps(X, B, 0.25) is out
    assert calls[-1][1][2:] == (0.25, True)


def test_benchmark_script_quick(capsys):
    rows = load('benchmarks/ops.py').main(['--quick'])
    assert [r['op'] for r in rows] == ['knn', 'radius', 'fps']
    assert all(r['agree'] and r['ours_s'] > 0 and r['brute_s'] > 0
               for r in rows)
    out = capsys.readouterr().out
    assert '| op | ours |' in out and 'torch_cluster' in out

"""Half precision everywhere (issue 23): every op and model of the library
runs finite in float16 and bfloat16, converted with ``.to(dtype)`` and
under :func:`torch.autocast`, and agrees with float32.

The reference is float32 on the *same* rounded inputs (``x.to(dtype)
.float()``), so the comparison measures the arithmetic, not the rounding of
the data.  Tolerances are relative to the float32 output's largest entry
(``max |half - float32| / max |float32|``) and were set from measured
errors with a margin of about 3x (numbers beside each).  The weights are
random everywhere (``tests.weights.randomize``: BatchNorm statistics, a
non-zero residual scale), so every unit's branch is active, with
LatentGNN's projection heads lifted away from zero
(``tests.weights.lift_projections`` says why)."""
import copy

import pytest
import torch

from glore_pyg.apps.classification.task import build_model
from glore_pyg.apps.segmentation.pointnet2 import PointNet2Segmentation
from glore_pyg.nn import (GloRe1d, GloRe2d, GloRe3d, GloReConv, LatentGNN1d,
                          LatentGNN2d, LatentGNN3d, LatentGNNConv, NonLocal1d,
                          NonLocal2d, NonLocal3d, NonLocalConv)
from glore_pyg.ops import fps, knn, knn_interpolate, radius
from tests.weights import lift_projections, randomize

DTYPES = [torch.float16, torch.bfloat16]
#: relative tolerances, measured maxima over every case in brackets: a
#: unit's output (float16 0.0021, bfloat16 0.025), its residual branch
#: alone (0.0034, 0.040: bfloat16 in training mode is the worst, the output
#: BatchNorm amplifies the rounding, see tests/nn/units/test_protocol.py),
#: a whole network's logits (0.0028, 0.0145)
UNIT_TOL = {torch.float16: 0.006, torch.bfloat16: 0.075}
BRANCH_TOL = {torch.float16: 0.01, torch.bfloat16: 0.12}
NET_TOL = {torch.float16: 0.01, torch.bfloat16: 0.05}


@torch.no_grad()
def relative_error(out, ref):
    assert out.shape == ref.shape
    assert torch.isfinite(out).all(), 'non-finite output'
    return float((out.float() - ref).abs().max() / ref.abs().max())



def rounded(t, dtype):
    """``t`` in ``dtype`` and the same values back in float32."""
    low = t.to(dtype)
    return low, low.float()


def clouds(sizes=(200, 1, 57, 120), seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(sum(sizes), 3, generator=g)
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    return pos, batch


# -- ops ----------------------------------------------------------------------
@pytest.mark.parametrize('dtype', DTYPES)
def test_knn_interpolate_half_is_finite_where_points_coincide(dtype):
    """Regression: float16 gave NaN for a target on or near a source point
    (the weight 1 / max(d^2, 1e-16) overflowed: 1e-16 is 0 in float16)."""
    pos, batch = clouds()
    x = torch.randn(pos.size(0), 6, generator=torch.Generator().manual_seed(1))
    # targets: every source point itself, points 1e-4 away, random points
    near = pos + 1e-4
    target = torch.cat([pos, near, torch.rand(50, 3)])
    t_batch = torch.cat([batch, batch, torch.zeros(50, dtype=torch.long)])
    order = t_batch.argsort(stable=True)
    target, t_batch = target[order], t_batch[order]
    xl, xr = rounded(x, dtype)
    pl, pr = rounded(pos, dtype)
    tl, tr = rounded(target, dtype)
    out = knn_interpolate(xl, pl, tl, batch, t_batch, k=3)
    ref = knn_interpolate(xr, pr, tr, batch, t_batch, k=3)
    assert out.dtype == dtype
    # interpolated features are convex combinations: the error is the
    # features' own rounding (float16 2^-11, bfloat16 2^-8 of |x| <= 4)
    assert relative_error(out, ref) <= {torch.float16: 2e-3,
                                        torch.bfloat16: 1.6e-2}[dtype]
    # a target on a source point takes that point's features
    on = knn_interpolate(xl, pl, pl[:1], k=3)
    torch.testing.assert_close(on, xl[:1], rtol=0, atol=0)


@pytest.mark.parametrize('dtype', DTYPES)
def test_knn_and_radius_half_find_the_float32_neighbours(dtype):
    """The neighbours found in half precision are the float32 ones up to
    ties within the half-precision rounding of a distance."""
    pos, batch = clouds()
    y, y_batch = pos[::3], batch[::3]
    pl, pr = rounded(pos, dtype)
    yl, yr = rounded(y, dtype)
    slack = {torch.float16: 4e-3, torch.bfloat16: 3e-2}[dtype]

    def dist(edge, p, q):  # float64 distances of [2, E] (row: query)
        return (q[edge[0]].double() - p[edge[1]].double()).norm(dim=1)

    k = 4
    found = knn(pl, yl, k, batch, y_batch)
    ref = knn(pr, yr, k, batch, y_batch)
    assert found.shape == ref.shape
    torch.testing.assert_close(found[0], ref[0])  # k per query, same order
    d_found = dist(found, pr, yr).view(-1, k).sort(1).values
    d_ref = dist(ref, pr, yr).view(-1, k).sort(1).values
    assert (d_found - d_ref).abs().max() <= slack

    r = 0.2
    found = radius(pl, yl, r, batch, y_batch, max_num_neighbors=1000)
    ref = radius(pr, yr, r, batch, y_batch, max_num_neighbors=1000)
    assert (dist(found, pr, yr) <= r * (1 + slack)).all()
    inner = ref[:, dist(ref, pr, yr) <= r * (1 - slack)]
    pairs = set(map(tuple, found.t().tolist()))
    assert all(tuple(e) in pairs for e in inner.t().tolist())


@pytest.mark.parametrize('dtype', DTYPES)
def test_fps_half_samples_like_float32(dtype):
    """Farthest point sampling of half-precision positions: a valid sample
    of each cloud, as far-spread as float32's (the largest distance from a
    point to the sample within the rounding)."""
    pos, batch = clouds()
    pl, pr = rounded(pos, dtype)
    idx = fps(pl, batch, ratio=0.25, random_start=False)
    ref = fps(pr, batch, ratio=0.25, random_start=False)
    assert idx.shape == ref.shape
    assert torch.equal(batch[idx], batch[ref])  # as many per cloud

    def coverage(sample):
        d = torch.cdist(pr.double(), pr[sample].double())
        d[batch[:, None] != batch[sample][None, :]] = float('inf')
        return d.min(1).values.max()

    assert coverage(idx) <= coverage(ref) * 1.05


# -- units --------------------------------------------------------------------
NODE_UNITS = {
    'glore': lambda: GloReConv(16, 6, normalize=True),
    'latentgnn': lambda: LatentGNNConv(16, [4, 3], graph_conv=True),
    'latentgnn-chunked': lambda: LatentGNNConv(16, [4], chunk_size=37),
    'nonlocal': lambda: NonLocalConv(16),
}
GRID_UNITS = {
    'GloRe1d': (lambda: GloRe1d(16, 4), (2, 16, 30)),
    'GloRe2d': (lambda: GloRe2d(16, 4), (2, 16, 6, 5)),
    'GloRe3d': (lambda: GloRe3d(16, 4), (2, 16, 3, 4, 5)),
    'LatentGNN1d': (lambda: LatentGNN1d(16, [4]), (2, 16, 30)),
    'LatentGNN2d': (lambda: LatentGNN2d(16, [4]), (2, 16, 6, 5)),
    'LatentGNN3d': (lambda: LatentGNN3d(16, [4]), (2, 16, 3, 4, 5)),
    'NonLocal1d': (lambda: NonLocal1d(16), (2, 16, 30)),
    'NonLocal2d': (lambda: NonLocal2d(16), (2, 16, 6, 5)),
    'NonLocal3d': (lambda: NonLocal3d(16), (2, 16, 3, 4, 5)),
}


def _inputs(shape, seed=3):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', list(NODE_UNITS))
def test_node_units_in_half_precision(name, dtype, training):
    """``unit.to(dtype)`` on a batch of clouds of different sizes (one of a
    single point) against the float32 unit on the same rounded input."""
    _, batch = clouds()
    ref_unit = lift_projections(randomize(NODE_UNITS[name](), 0,
                                          torch.float32)).train(training)
    unit = copy.deepcopy(ref_unit).to(dtype)
    xl, xr = rounded(_inputs((batch.numel(), 16)), dtype)
    out = unit(xl, batch)
    ref = ref_unit(xr, batch)
    assert out.dtype == dtype
    assert relative_error(out - xl, ref - xr) <= BRANCH_TOL[dtype]
    assert relative_error(out, ref) <= UNIT_TOL[dtype]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', list(GRID_UNITS))
def test_grid_units_in_half_precision(name, dtype):
    make, shape = GRID_UNITS[name]
    ref_unit = lift_projections(randomize(make(), 0, torch.float32)).eval()
    unit = copy.deepcopy(ref_unit).to(dtype)
    xl, xr = rounded(_inputs(shape), dtype)
    assert relative_error(unit(xl), ref_unit(xr)) <= UNIT_TOL[dtype]
    with torch.autocast('cpu', dtype=dtype):
        auto = ref_unit(xr)
    assert auto.dtype == torch.float32
    assert relative_error(auto, ref_unit(xr)) <= UNIT_TOL[dtype]


# -- networks -----------------------------------------------------------------
def _pointnet(units):
    torch.manual_seed(0)
    net = PointNet2Segmentation(3, 13, preset='small', units=units,
                                random_start=False)
    return lift_projections(randomize(net, 0, torch.float32)).eval()


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('units', [{}, {'sa3': 'latentgnn:kernels=3'},
                                   {'sa2': 'glore', 'fp3': 'nonlocal'}],
                         ids=['plain', 'latentgnn', 'glore+nonlocal'])
def test_pointnet2_in_half_precision(units, dtype):
    """Regression: ``PointNet2Segmentation(...).half()`` gave NaN on 473 of
    512 rows (through knn_interpolate).  ``.to(dtype)`` and autocast, on
    clouds of different sizes."""
    pos, batch = clouds((300, 212))
    x = _inputs((pos.size(0), 3))
    net = _pointnet(units)
    pr, xr = pos.to(dtype).float(), x.to(dtype).float()
    ref = net(pr, xr, batch)
    with torch.autocast('cpu', dtype=dtype):
        auto = net(pr, xr, batch)
    assert relative_error(auto, ref) <= NET_TOL[dtype]
    low = net.to(dtype)(pos.to(dtype), x.to(dtype), batch)
    assert low.dtype == dtype
    assert relative_error(low, ref) <= NET_TOL[dtype]


@pytest.mark.parametrize('dtype', DTYPES)
def test_classification_network_in_half_precision(dtype):
    """The digits ResNet with a unit of each kind, ``.to(dtype)`` and
    autocast."""
    torch.manual_seed(0)
    net = build_model('digits', 1, 2, units={'layer1': 'nonlocal',
                                             'layer2': 'glore',
                                             'layer3': 'latentgnn:d=16,'
                                                       'graph_conv=1'})
    net = lift_projections(randomize(net, 0, torch.float32)).eval()
    xl, xr = rounded(_inputs((4, 1, 32, 32)), dtype)
    ref = net(xr)
    with torch.autocast('cpu', dtype=dtype):
        auto = net(xr)
    assert relative_error(auto, ref) <= NET_TOL[dtype]
    low = net.to(dtype)(xl)
    assert low.dtype == dtype
    assert relative_error(low, ref) <= NET_TOL[dtype]

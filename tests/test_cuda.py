"""The CUDA paths (issue 23): the point operations and the units on a CUDA
device against the same computation on the CPU (float64, forward and
backward), half precision under autocast, and ``torch.compile``.  Skipped
without a CUDA device; ``benchmarks/gpu_check.sh`` runs them on a GPU
machine."""
import copy

import pytest
import torch

from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNN2d, LatentGNNConv,
                          NonLocal2d, NonLocalConv)
from glore_pyg.ops import fps, knn, knn_interpolate, radius
from tests.weights import lift_projections, randomize

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='no CUDA device')
CUDA = torch.device('cuda')
SIZES = [40, 1, 17, 64]


def _clouds(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(sum(SIZES), 3, generator=g, dtype=dtype)
    batch = torch.arange(len(SIZES)).repeat_interleave(torch.tensor(SIZES))
    return pos, batch


def test_point_ops_on_cuda_equal_cpu():
    pos, batch = _clouds()
    pc, bc = pos.to(CUDA), batch.to(CUDA)
    assert torch.equal(fps(pc, bc, 0.3, random_start=False).cpu(),
                       fps(pos, batch, 0.3, random_start=False))
    q, qb = pos[::2], batch[::2]
    assert torch.equal(knn(pc, q.to(CUDA), 4, bc, qb.to(CUDA)).cpu(),
                       knn(pos, q, 4, batch, qb))
    cuda_pairs = radius(pc, q.to(CUDA), 0.3, bc, qb.to(CUDA), 64).cpu()
    cpu_pairs = radius(pos, q, 0.3, batch, qb, 64)
    assert set(map(tuple, cuda_pairs.t().tolist())) == set(
        map(tuple, cpu_pairs.t().tolist()))
    x = torch.randn(pos.size(0), 5, dtype=torch.float64)
    torch.testing.assert_close(
        knn_interpolate(x.to(CUDA), pc, q.to(CUDA), bc, qb.to(CUDA)).cpu(),
        knn_interpolate(x, pos, q, batch, qb))


UNITS = {
    'glore': (lambda: GloReConv(8, 4, normalize=True), None),
    'latentgnn': (lambda: LatentGNNConv(8, [4, 3], graph_conv=True), None),
    'latentgnn-chunked': (lambda: LatentGNNConv(8, [4], chunk_size=11),
                          None),
    'nonlocal': (lambda: NonLocalConv(8), None),
    'GloRe2d': (lambda: GloRe2d(8, 4), (2, 8, 5, 6)),
    'LatentGNN2d': (lambda: LatentGNN2d(8, [4]), (2, 8, 5, 6)),
    'NonLocal2d': (lambda: NonLocal2d(8), (2, 8, 5, 6)),
}


def _run(unit, x, batch):
    x = x.clone().requires_grad_()
    out = unit(x) if batch is None else unit(x, batch)
    out.backward(torch.ones_like(out))
    return out.detach(), x.grad, [p.grad for p in unit.parameters()]


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('name', list(UNITS))
def test_units_on_cuda_equal_cpu(name, training):
    make, shape = UNITS[name]
    unit = lift_projections(randomize(make(), 0)).train(training)
    g = torch.Generator().manual_seed(1)
    _, batch = _clouds()
    x = torch.randn(shape or (batch.numel(), 8), generator=g,
                    dtype=torch.float64)
    b = None if shape else batch
    ref = _run(unit, x, b)
    gpu = _run(copy.deepcopy(unit).to(CUDA), x.to(CUDA),
               None if b is None else b.to(CUDA))
    torch.testing.assert_close(gpu[0].cpu(), ref[0])
    torch.testing.assert_close(gpu[1].cpu(), ref[1])
    for a, r in zip(gpu[2], ref[2]):
        torch.testing.assert_close(a.cpu(), r)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', list(UNITS))
def test_autocast_on_cuda(name, dtype):
    make, shape = UNITS[name]
    unit = lift_projections(randomize(make(), 0, torch.float32)).eval()
    _, batch = _clouds()
    x = torch.randn(shape or (batch.numel(), 8),
                    generator=torch.Generator().manual_seed(1))
    b = None if shape else batch
    ref = unit(x) if b is None else unit(x, b)
    unit = unit.to(CUDA)
    with torch.autocast('cuda', dtype=dtype):
        out = unit(x.to(CUDA)) if b is None else unit(x.to(CUDA), b.to(CUDA))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    tol = {torch.float16: 0.01, torch.bfloat16: 0.1}[dtype]
    assert (out.cpu() - ref).abs().max() <= tol * ref.abs().max()


@pytest.mark.parametrize('name', ['latentgnn', 'glore', 'LatentGNN2d'])
def test_compile_on_cuda(name):
    make, shape = UNITS[name]
    unit = lift_projections(randomize(make(), 0, torch.float32)).to(CUDA)
    unit.eval()
    compiled = torch.compile(copy.deepcopy(unit))
    _, batch = _clouds()
    batch = batch.to(CUDA)
    x = torch.randn(shape or (batch.numel(), 8), device=CUDA)
    args = (x, ) if shape else (x, batch)
    torch.testing.assert_close(compiled(*args), unit(*args), atol=1e-4,
                               rtol=1e-4)

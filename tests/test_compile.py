"""torch.compile runs the units and matches eager, forward and backward
(train mode: BatchNorm batch statistics and running-statistics updates).

Compilation on CPU is slow (about 10 s of one-off start-up, then a C++
build per kernel): the shapes are small, one kernel per LatentGNN, and each
case compiles once for the forward and once for the backward graph(s)."""
import copy

import pytest
import torch

from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNN2d, LatentGNNConv,
                          NonLocal2d, NonLocalConv)
from tests.weights import randomize as shared_randomize

# torch.compile: 6 to 11 s a test on 2 CPU cores
pytestmark = pytest.mark.slow

C = 16
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def randomize(module, seed=0):
    return shared_randomize(module, seed, dtype=torch.float32)


def close(a, b):
    torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


def close_grad(a, b):
    """float32 gradients of a few BatchNorm-ed layers reach tens: an
    absolute tolerance of 1e-5 relative to the largest entry."""
    scale = max(1.0, float(b.abs().max()))
    torch.testing.assert_close(a, b, atol=ATOL * scale, rtol=RTOL)


def check_compiled_matches_eager(unit, x, training, **kwargs):
    eager = unit.train(training)
    module = copy.deepcopy(eager)
    compiled = torch.compile(module)

    x_e = x.clone().requires_grad_()
    x_c = x.clone().requires_grad_()
    out_e = eager(x_e, **kwargs)
    out_c = compiled(x_c, **kwargs)
    assert out_c.shape == out_e.shape
    close(out_c, out_e)
    assert (out_e - x).abs().max() > 0.05  # the residual branch is active

    grad = torch.randn(out_e.shape, generator=torch.Generator().manual_seed(1))
    out_e.backward(grad)
    out_c.backward(grad)
    close_grad(x_c.grad, x_e.grad)
    for (name, p_e), (_, p_c) in zip(eager.named_parameters(),
                                     module.named_parameters()):
        assert p_c.grad is not None, name
        close_grad(p_c.grad, p_e.grad)
    for (name, b_e), (_, b_c) in zip(eager.named_buffers(),
                                     module.named_buffers()):
        close(b_c, b_e)


def test_compile_glore2d():
    unit = randomize(GloRe2d(C, 4, normalize=True), 0)
    x = torch.randn(2, C, 6, 5, generator=torch.Generator().manual_seed(0))
    check_compiled_matches_eager(unit, x, training=True)


def test_compile_latentgnn2d():
    unit = randomize(LatentGNN2d(C, [4], graph_conv=True), 1)
    x = torch.randn(2, C, 6, 5, generator=torch.Generator().manual_seed(1))
    check_compiled_matches_eager(unit, x, training=True)


def test_compile_latentgnn_conv_unequal_batch():
    unit = randomize(LatentGNNConv(C, [3], mode='symmetric'), 3)
    sizes = [7, 12, 5]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    x = torch.randn(sum(sizes), C, generator=torch.Generator().manual_seed(3))
    check_compiled_matches_eager(unit, x, training=True, batch=batch)


# -- compile once for any batch (issue 23) -------------------------------------
def _clouds(counts, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(counts[0], counts[1], (seed % 5 + 2, ), generator=g)
    batch = torch.arange(sizes.numel()).repeat_interleave(sizes)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    x = torch.randn(int(sizes.sum()), C, generator=g)
    return x, batch, ptr, sizes.numel()


def _compiles_per_batch(fn, inputs, backend='eager'):
    """Frames compiled (dynamo's ``frames.total`` counter: every compilation
    of every frame, the graph breaks' resumptions included) by each call of
    ``torch.compile(fn)`` over ``inputs`` (``(args, kwargs)`` pairs); each
    output checked against eager."""
    from torch._dynamo.utils import counters
    counters.clear()
    compiled = torch.compile(fn, backend=backend)
    seen = []
    for args, kwargs in inputs:
        before = counters['frames']['total']
        out = compiled(*args, **kwargs)
        ref = fn(*args, **kwargs)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        seen.append(counters['frames']['total'] - before)
    return seen


def _assert_compiles_at_most_twice(seen):
    """The first call compiles its frames (static shapes), the first change
    of sizes compiles them once more (symbolic sizes), then nothing: each
    frame at most twice, and no fallback to eager."""
    first, second, rest = seen[0], seen[1], seen[2:]
    assert first > 0
    assert second <= first, seen
    assert sum(rest) == 0, seen


UNITS_FOR_BATCHES = {
    'glore': lambda: GloReConv(C, 4, normalize=True),
    'latentgnn': lambda: LatentGNNConv(C, [4, 3], graph_conv=True),
    'nonlocal': lambda: NonLocalConv(C),
}


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('how', ['batch', 'ptr', 'batch_size'])
@pytest.mark.parametrize('name', list(UNITS_FOR_BATCHES))
def test_compile_once_for_any_number_of_clouds(name, how, training):
    """Regression: ``torch.compile(unit)`` recompiled for every new number
    of clouds in a batch (the guard was on the Python list of sample
    sizes) and fell back to eager after 8.  Ten batches of 2 to 6 clouds of
    different sizes (equal sizes with ``batch_size``), forward and
    backward."""
    unit = randomize(UNITS_FOR_BATCHES[name](), 0).train(training)

    def step(x, **layout):
        x = x.clone().requires_grad_()
        out = unit(x, **layout)
        (grad, ) = torch.autograd.grad(out.square().sum(), x)
        return torch.cat([out, grad])

    inputs = []
    for seed in range(10):
        x, batch, ptr, count = _clouds((3, 40), seed)
        if how == 'batch_size':
            x = x[:count * 7]
            inputs.append(((x, ), dict(batch_size=count)))
        else:
            inputs.append(((x, ), {how: batch if how == 'batch' else ptr}))
    with torch.no_grad():  # the running statistics stay as they are
        state = {k: v.clone() for k, v in unit.state_dict().items()}
    seen = _compiles_per_batch(step, inputs)
    unit.load_state_dict(state)
    _assert_compiles_at_most_twice(seen)


@pytest.mark.parametrize('cls', [GloRe2d, LatentGNN2d, NonLocal2d])
def test_compile_once_for_any_map_size(cls):
    """Grid adapters under ``torch.compile``: changing B, H and W compile
    at most twice, contiguous and channels_last maps.  (A size of 1, such
    as a batch of one map, is a shape class of its own to PyTorch, which
    specialises sizes 0 and 1: one more compilation, not tested here.)"""
    unit = randomize(cls(C, 4) if cls is GloRe2d else
                     cls(C, [4]) if cls is LatentGNN2d else cls(C), 0).eval()
    shapes = [(2, 6, 5), (3, 7, 4), (2, 5, 9), (4, 3, 3), (2, 8, 8), (5, 4, 6)]
    inputs = []
    for i, (b, h, w) in enumerate(shapes * 2):
        x = torch.randn(b, C, h, w, generator=torch.Generator().manual_seed(i))
        if i >= len(shapes):
            x = x.contiguous(memory_format=torch.channels_last)
        inputs.append(((x, ), {}))
    seen = _compiles_per_batch(unit, inputs)
    # the memory format is a property of the input: the second half may
    # compile once more for channels_last, then never again
    _assert_compiles_at_most_twice(seen[:len(shapes)])
    assert sum(seen[len(shapes) + 2:]) == 0, seen


def test_compile_once_with_inductor():
    """The same with the default backend (inductor), for batches of 257 to
    4,096 points: on the CPU, inductor's reduction code adds guards of its
    own size classes (up to 256 rows, up to 4,096, more), each at most one
    further compilation when a batch crosses into it."""
    unit = randomize(LatentGNNConv(C, [4]), 0).eval()
    inputs = []
    for seed in range(6):
        x, batch, _, _ = _clouds((130, 400), seed)
        assert 257 <= x.size(0) <= 4096
        inputs.append(((x, batch), {}))
    with torch.no_grad():
        seen = _compiles_per_batch(unit, inputs, backend='inductor')
    _assert_compiles_at_most_twice(seen)

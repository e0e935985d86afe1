"""torch.compile runs the units and matches eager, forward and backward
(train mode: BatchNorm batch statistics and running-statistics updates).

Compilation on CPU is slow (about 10 s of one-off start-up, then a C++
build per kernel): the shapes are small, one kernel per LatentGNN, and each
case compiles once for the forward and once for the backward graph(s)."""
import copy

import pytest
import torch

from glore_pyg.nn import GloRe2d, LatentGNN2d, LatentGNNConv
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

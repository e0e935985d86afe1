"""Residual: x's gradient from the residual sum and from the branch's first
product share one buffer; the values are those of plain autograd."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from glore_pyg.functional import Segments
from glore_pyg.functional.residual import Residual

DT = torch.float64


def layouts():
    x_rows = torch.randn(12, 5, dtype=DT)
    yield Segments.from_batch(x_rows, batch_size=3), x_rows
    x_cf = torch.randn(3, 5, 4, dtype=DT)
    yield Segments.grid(x_cf), x_cf


def unit(x, seg, w, b, v, use_residual=True):
    """out = x + relu(x W^T + b) V^T (a residual branch starting with a
    product of x), with Residual or with plain autograd."""
    if use_residual:
        res = Residual(x, seg)
        h = res.linear(w, b)
    else:
        h = seg.linear(x, w, b)
    branch = seg.linear(torch.relu(h), v) * 1  # a temporary
    return res.add(branch) if use_residual else x + branch


class CountAdds(TorchDispatchMode):
    def __init__(self, shape):
        super().__init__()
        self.shape, self.count = shape, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if (func._overloadpacket.__name__ in ('add', 'add_')
                and isinstance(out, torch.Tensor)
                and tuple(out.shape) == self.shape):
            self.count += 1
        return out


@pytest.mark.parametrize('loss', ['sum', 'dense'])
@pytest.mark.parametrize('layout', [0, 1])
def test_residual_gradients_equal_plain_autograd(loss, layout):
    seg, x0 = list(layouts())[layout]
    C = 5
    torch.manual_seed(0)
    w = torch.randn(7, C, dtype=DT, requires_grad=True)
    b = torch.randn(7, dtype=DT, requires_grad=True)
    v = torch.randn(C, 7, dtype=DT, requires_grad=True)
    grads = []
    for use in (True, False):
        x = x0.clone().requires_grad_()
        out = unit(x, seg, w, b, v, use)
        if loss == 'sum':  # an expanded gradient: the shared-buffer path
            out.sum().backward()
        else:
            out.backward(torch.ones_like(out).cumsum(0))
        grads.append([t.grad.clone() for t in (x, w, b, v)])
        for t in (w, b, v):
            t.grad = None
    for a, r in zip(*grads):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


def test_sum_loss_accumulates_into_one_buffer():
    # out.sum(): the branch needs a contiguous copy of the gradient; x's
    # gradient is accumulated into it (addmm_), with no separate N x C sum
    seg, x0 = list(layouts())[0]
    x = x0.clone().requires_grad_()
    w = torch.randn(7, 5, dtype=DT, requires_grad=True)
    v = torch.randn(5, 7, dtype=DT, requires_grad=True)
    out = unit(x, seg, w, None, v)
    with CountAdds(tuple(x.shape)) as mode:
        out.sum().backward()
    assert mode.count == 0
    expected = x.grad.clone()
    x.grad = None
    ref = unit(x, seg, w, None, v, use_residual=False)
    with CountAdds(tuple(x.shape)) as mode:
        ref.sum().backward()
    assert mode.count == 1  # what plain autograd does
    torch.testing.assert_close(expected, x.grad)


def test_x_without_grad_retain_graph_and_double_backward():
    seg, x0 = list(layouts())[0]
    w = torch.randn(7, 5, dtype=DT, requires_grad=True)
    v = torch.randn(5, 7, dtype=DT, requires_grad=True)
    # x not requiring grad: only the weights get gradients
    out = unit(x0, seg, w, None, v)
    gw, = torch.autograd.grad(out.sum(), w)
    ref, = torch.autograd.grad(unit(x0, seg, w, None, v, False).sum(), w)
    torch.testing.assert_close(gw, ref)
    # a second backward through a retained graph gives the same gradient
    x = x0.clone().requires_grad_()
    out = unit(x, seg, w, None, v)
    g1, = torch.autograd.grad(out.sum(), x, retain_graph=True)
    g2, = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g1, g2)
    # create_graph: plain differentiable path
    small = x0[:6].clone().requires_grad_()
    seg6 = Segments.from_batch(small, batch_size=2)
    assert torch.autograd.gradgradcheck(
        lambda t, a, c: unit(t, seg6, a, None, c), (small, w, v))

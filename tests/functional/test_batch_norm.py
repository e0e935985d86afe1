"""BatchNorm helpers of the units: several BatchNorms side by side in one
pass, and BatchNorm folded into its Linear from the input's covariance.
Both must give what ``Linear`` then ``BatchNorm1d`` give: values, all
gradients, running statistics."""
import copy

import pytest
import torch
from torch.nn import BatchNorm1d, Linear, ReLU, Sequential

from glore_pyg.functional import Segments
from glore_pyg.functional.batch_norm import (batch_norm_side_by_side,
                                             linear_batch_norm)
from glore_pyg.nn.units.base import apply_heads

DT = torch.float64


def layout(cf: bool, C: int):
    if cf:
        x = torch.randn(3, C, 7, dtype=DT)
        return Segments.grid(x), x
    x = torch.randn(21, C, dtype=DT)
    return Segments.from_batch(x, batch_size=3), x


def rows(seg, t):
    return seg.rows(t)


def reference(seg, x, lin, bn, scale=None):
    """Linear then BatchNorm1d on the rows layout."""
    out = bn(torch.nn.functional.linear(seg.rows(x), lin.weight, lin.bias))
    return out if scale is None else scale * out


def randomized_bn(F, momentum=0.1, affine=True, track=True):
    bn = BatchNorm1d(F, momentum=momentum, affine=affine,
                     track_running_stats=track).double()
    with torch.no_grad():
        if affine:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_()
        if track:
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
    return bn


def check_same(params_a, params_b, out_a, out_b, seg):
    torch.testing.assert_close(rows(seg, out_a), out_b, rtol=1e-10,
                               atol=1e-10)
    g = torch.randn_like(out_b)
    ga = torch.autograd.grad(rows(seg, out_a), params_a, g)
    gb = torch.autograd.grad(out_b, params_b, g)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('cf', [False, True])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('scale', [None, 0.7])
def test_linear_batch_norm_equals_linear_then_batch_norm(cf, training, bias,
                                                         scale):
    torch.manual_seed(0)
    seg, x = layout(cf, 4)
    lin = Linear(4, 9, bias=bias).double()
    bn = randomized_bn(9).train(training)
    bn_ref = copy.deepcopy(bn)
    x = x.requires_grad_()
    s = None if scale is None else torch.tensor(scale, dtype=DT,
                                                requires_grad=True)
    out = linear_batch_norm(seg, x, lin.weight, lin.bias, bn, s)
    ref = reference(seg, x, lin, bn_ref, s)
    params = [x, lin.weight, bn.weight, bn.bias] + (
        [] if s is None else [s])
    params_ref = [x, lin.weight, bn_ref.weight, bn_ref.bias] + (
        [] if s is None else [s])
    if bias and not training:  # the bias cancels under batch statistics
        params, params_ref = params + [lin.bias], params_ref + [lin.bias]
    check_same(params, params_ref, out, ref, seg)
    for name in ('running_mean', 'running_var', 'num_batches_tracked'):
        torch.testing.assert_close(getattr(bn, name), getattr(bn_ref, name),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('momentum, affine, track',
                         [(None, True, True), (0.1, False, True),
                          (0.1, True, False)])
def test_linear_batch_norm_module_options(momentum, affine, track):
    seg, x = layout(False, 3)
    lin = Linear(3, 6, bias=False).double()
    bn = randomized_bn(6, momentum, affine, track)
    bn_ref = copy.deepcopy(bn)
    for _ in range(2):  # the cumulative average counts batches
        out = linear_batch_norm(seg, x, lin.weight, None, bn)
        ref = reference(seg, x, lin, bn_ref)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for name in ('running_mean', 'running_var', 'num_batches_tracked'):
        a, b = getattr(bn, name), getattr(bn_ref, name)
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_linear_batch_norm_double_backward_and_errors():
    x = torch.randn(6, 3, dtype=DT, requires_grad=True)
    w = torch.randn(5, 3, dtype=DT, requires_grad=True)
    bn = randomized_bn(5)
    seg = Segments.from_batch(x, batch_size=2)
    fn = lambda a, b: linear_batch_norm(seg, a, b, None, bn)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))
    one = torch.randn(1, 3, dtype=DT)
    with pytest.raises(ValueError, match='more than one visible node'):
        linear_batch_norm(Segments.from_batch(one), one, w, None, bn)


@pytest.mark.parametrize('cf', [False, True])
@pytest.mark.parametrize('training', [True, False])
def test_batch_norm_side_by_side_equals_each(cf, training):
    torch.manual_seed(1)
    seg, h = layout(cf, 7)
    bns = [randomized_bn(3).train(training), randomized_bn(4).train(training)]
    refs = copy.deepcopy(bns)
    h = h.requires_grad_()
    scale = torch.tensor(0.6, dtype=DT, requires_grad=True)
    out = batch_norm_side_by_side(h, bns, scale)
    hr = seg.rows(h)
    ref = torch.cat([scale * refs[0](hr[:, :3]), scale * refs[1](hr[:, 3:])],
                    1)
    params = [h, scale] + [p for bn in bns for p in (bn.weight, bn.bias)]
    params_ref = [h, scale] + [p for bn in refs
                               for p in (bn.weight, bn.bias)]
    check_same(params, params_ref, out, ref, seg)
    for bn, bn_ref in zip(bns, refs):
        for name in ('running_mean', 'running_var', 'num_batches_tracked'):
            torch.testing.assert_close(getattr(bn, name),
                                       getattr(bn_ref, name))


def test_batch_norm_side_by_side_refuses_different_modules():
    bns = [BatchNorm1d(3), BatchNorm1d(4, momentum=0.3)]
    with pytest.raises(ValueError, match='must share eps, momentum'):
        batch_norm_side_by_side(torch.randn(5, 7), bns)


def head(i, o, relu=False, momentum=0.1):
    seq = [Linear(i, o, bias=False), BatchNorm1d(o, momentum=momentum)]
    return Sequential(*(seq + [ReLU(inplace=True)] if relu else seq)).double()


@pytest.mark.parametrize('momenta', [(0.1, 0.1), (0.1, 0.3)])
def test_apply_heads_equals_each_head(momenta):
    # shared product and BatchNorm pass; a fallback when the BatchNorms
    # cannot run side by side (a different momentum)
    seg, x = layout(False, 8)
    heads = [head(8, 3, momentum=momenta[0]), head(8, 5, momentum=momenta[1])]
    refs = copy.deepcopy(heads)
    x = x.requires_grad_()
    out = apply_heads(seg, x, heads)
    ref = torch.cat([h(x) for h in refs], 1)
    params = [x] + [p for h in heads for p in h.parameters()]
    params_ref = [x] + [p for h in refs for p in h.parameters()]
    check_same(params, params_ref, out, ref, seg)
    for h, r in zip(heads, refs):
        torch.testing.assert_close(h[1].running_var, r[1].running_var)


@pytest.mark.parametrize('training', [True, False])
def test_apply_heads_folds_widening_relu_head(training):
    seg, x = layout(True, 4)
    h = head(4, 8, relu=True).train(training)
    ref = copy.deepcopy(h)
    x = x.requires_grad_()
    out = apply_heads(seg, x, [h])
    check_same([x] + list(h.parameters()), [x] + list(ref.parameters()), out,
               ref(seg.rows(x)), seg)
    with pytest.raises(ValueError, match='all end in ReLU or none'):
        apply_heads(seg, x, [h, head(4, 2)])


@pytest.mark.parametrize('cf', [False, True])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('relu', [False, True])
@pytest.mark.parametrize('affine', [True, False])
def test_buffered_batch_norm_equals_functional(cf, training, relu, affine):
    from glore_pyg.functional.batch_norm import batch_norm
    torch.manual_seed(0)
    h = torch.randn(3, 5, 7, dtype=DT) if cf else torch.randn(21, 5,
                                                              dtype=DT)
    w = torch.rand(5, dtype=DT) + 0.5 if affine else None
    b = torch.randn(5, dtype=DT) if affine else None
    g = torch.randn_like(h)
    stats = [torch.randn(5, dtype=DT), torch.rand(5, dtype=DT) + 0.5]
    results = []
    for fn in ('ours', 'torch'):
        hh = h.clone().requires_grad_()
        ps = [None if t is None else t.clone().requires_grad_()
              for t in (w, b)]
        rm, rv = [s.clone() for s in stats]
        if fn == 'ours':
            y = batch_norm(hh, rm, rv, *ps, training, 0.3, 1e-5, relu)
        else:
            y = torch.nn.functional.batch_norm(hh, rm, rv, *ps, training,
                                               0.3, 1e-5)
            y = torch.relu(y) if relu else y
        y.backward(g)
        results.append([y.detach(), hh.grad, rm, rv] +
                       [p.grad for p in ps if p is not None])
    assert (results[0][0] == 0).any() == relu  # the ReLU did cut
    for a, r in zip(*results):
        torch.testing.assert_close(a, r)


def test_buffered_batch_norm_double_backward_and_expanded_grad():
    from glore_pyg.functional.batch_norm import batch_norm
    torch.manual_seed(0)
    h = torch.randn(12, 4, dtype=DT, requires_grad=True)
    w = (torch.rand(4, dtype=DT) + 0.5).requires_grad_()
    b = torch.randn(4, dtype=DT, requires_grad=True)
    for training in (True, False):
        stats = [torch.randn(4, dtype=DT), torch.rand(4, dtype=DT) + 0.5]
        assert torch.autograd.gradgradcheck(
            lambda h, w, b: batch_norm(h, *[s.clone() for s in stats], w, b,
                                       training, 0.1, 1e-5, True),
            (h, w, b))
    # out.sum() sends an expanded gradient
    batch_norm(h, None, None, w, b, True, 0.1, 1e-5).sum().backward()
    expected = torch.autograd.grad(
        torch.nn.functional.batch_norm(h, None, None, w, b, True).sum(), h)
    torch.testing.assert_close(h.grad, expected[0])

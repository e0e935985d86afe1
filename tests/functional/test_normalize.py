"""``functional.normalize``: the projection normalisations against
:func:`torch.nn.functional.normalize`, twice differentiable, and safe in half
precision."""
import pytest
import torch
import torch.nn.functional as F

from glore_pyg.functional import Segments
from glore_pyg.functional.normalize import (l2_normalize,
                                            normalize_projection)

DT = torch.float64


@pytest.mark.parametrize('shape, dim', [((7, 5), 1), ((7, 5), -1),
                                        ((3, 4, 6), 1), ((3, 4, 6), 0)])
def test_l2_normalize_equals_torch(shape, dim):
    x = torch.randn(*shape, dtype=DT)
    # rows of zeros and rows below eps: the clamped branch
    x.select(dim, 0).zero_()
    x.select(dim, 1).mul_(1e-14)
    x.requires_grad_()
    out = l2_normalize(x, dim=dim, eps=1e-12)
    ref = F.normalize(x, dim=dim, eps=1e-12)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0],
                               torch.autograd.grad(ref, x, g)[0])


def test_l2_normalize_gradcheck_and_double_backward():
    x = torch.randn(4, 3, dtype=DT, requires_grad=True)
    fn = lambda t: l2_normalize(t, dim=1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, ))
    assert torch.autograd.gradgradcheck(fn, (x, ))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_zero_rows_stay_zero_in_half_precision(dtype):
    # eps = 1e-12 rounds to 0 in float16: F.normalize gives 0 / 0 there
    x = torch.randn(5, 4).to(dtype)
    x[2] = 0
    out = l2_normalize(x, dim=1)
    assert out.dtype == dtype
    assert torch.equal(out[2], torch.zeros(4, dtype=dtype))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), F.normalize(x.float(), dim=1),
                               atol=1e-2, rtol=1e-2)
    # the dense projection over the visible nodes of each sample, and over
    # edges: an all-zero latent column stays zero
    seg = Segments.from_batch(x, ptr=torch.tensor([0, 2, 5]))
    w = x.clone()
    w[:, 1] = 0
    for out in (normalize_projection(w, 'l2_visible', seg),
                normalize_projection(w.reshape(-1), 'l2_visible',
                                     latent_index=torch.arange(4).repeat(5),
                                     visible_index=torch.arange(
                                         5).repeat_interleave(4),
                                     num_latent=4, num_visible=5).view(5, 4)):
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert torch.equal(out[:, 1], torch.zeros(5, dtype=dtype))


def test_double_backward_at_a_zero_row_is_finite():
    # F.normalize's second derivative at a zero row is 0 / 0 (NaN)
    x = torch.randn(4, 3, dtype=DT)
    x[1] = 0
    x.requires_grad_()
    g, = torch.autograd.grad(l2_normalize(x, dim=1).sin().sum(), x,
                             create_graph=True)
    gg, = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(gg).all()
    assert torch.autograd.gradgradcheck(lambda t: l2_normalize(t, dim=1),
                                        (x, ))


def test_dense_l2_visible_against_per_sample_reference():
    w = torch.randn(7, 3, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(w, ptr=torch.tensor([0, 3, 7]))
    out = normalize_projection(w, 'l2_visible', seg)
    ref = torch.cat([F.normalize(p, dim=0) for p in w.split([3, 4])])
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradgradcheck(
        lambda t: normalize_projection(t, 'l2_visible', seg), (w, ))


def test_dense_l2_visible_needs_segments():
    with pytest.raises(ValueError, match="'segments' is required"):
        normalize_projection(torch.randn(3, 2), 'l2_visible')


def test_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match="'normalize' must be one of"):
        normalize_projection(torch.randn(3, 2), 'l1')

"""The hand-written autograd pieces of ``functional``: the same values and
gradients as the torch composites they replace, and double backward."""
import pytest
import torch
import torch.nn.functional as F

from glore_pyg.functional.residual import add_residual
from glore_pyg.functional.normalize import l2_normalize

DT = torch.float64


@pytest.mark.parametrize('shape, dim', [((7, 5), 1), ((7, 5), -1),
                                        ((3, 4, 6), 1), ((3, 4, 6), -1),
                                        ((3, 4, 6), 0)])
def test_l2_normalize_equals_torch(shape, dim):
    x = torch.randn(*shape, dtype=DT)
    # rows of zeros and rows below eps: the clamped branch
    x.select(dim, 0).zero_()
    x.select(dim, 1).mul_(1e-14)
    x.requires_grad_()
    eps = 1e-12
    out = l2_normalize(x, dim=dim, eps=eps)
    ref = F.normalize(x, dim=dim, eps=eps)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0],
                               torch.autograd.grad(ref, x, g)[0])


def test_l2_normalize_gradcheck_and_double_backward():
    x = torch.randn(4, 3, dtype=DT, requires_grad=True)
    fn = lambda t: l2_normalize(t, dim=1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, ))
    assert torch.autograd.gradgradcheck(fn, (x, ))


def test_add_residual_in_place_with_contiguous_branch_gradient():
    x = torch.randn(6, 4, dtype=DT, requires_grad=True)
    h = torch.randn(6, 4, dtype=DT, requires_grad=True)
    branch = h * 2  # a temporary
    seen = []
    branch.register_hook(seen.append)
    out = add_residual(x, branch)
    assert out.data_ptr() == branch.data_ptr()
    torch.testing.assert_close(out, x + 2 * h)
    out.sum().backward()  # the gradient of sum() is an expanded tensor
    assert seen[0].is_contiguous() and seen[0].stride() == (4, 1)
    assert torch.equal(x.grad, torch.ones_like(x))
    assert torch.equal(h.grad, 2 * torch.ones_like(h))
    fn = lambda a, b: add_residual(a, b * 1)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, h))


def test_l2_normalize_inplace():
    x = torch.randn(6, 5, dtype=DT)
    x[0] = 0
    leaf = x.clone().requires_grad_()
    ref = F.normalize(leaf, dim=1)
    work = leaf * 1  # a temporary, as a BatchNorm output is
    out = l2_normalize(work, dim=1, inplace=True)
    assert out.data_ptr() == work.data_ptr()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, leaf, g)[0],
                               torch.autograd.grad(ref, leaf, g)[0])
    # double backward, including through the norms kept for backward
    fn = lambda t: l2_normalize(t * 1, dim=1, inplace=True)  # noqa: E731
    x = torch.randn(4, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, ))
    assert torch.autograd.gradgradcheck(fn, (x, ))


@pytest.mark.parametrize('inplace', [False, True])
@pytest.mark.parametrize('shape, dim', [((7, 6), 1), ((2, 6, 5), 1),
                                        ((5, 2, 6), -1)])
def test_l2_normalize_groups(shape, dim, inplace):
    # each of the 3 consecutive slices of `dim` normalised on its own
    x = torch.randn(*shape, dtype=DT)
    x.narrow(dim, 2, 2).select(0, 0).zero_()  # a zero group
    leaf = x.clone().requires_grad_()
    ref = torch.cat([F.normalize(p, dim=dim) for p in leaf.chunk(3, dim)],
                    dim)
    out = l2_normalize(leaf * 1, dim=dim, inplace=inplace, groups=3)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, leaf, g)[0],
                               torch.autograd.grad(ref, leaf, g)[0])
    small = torch.randn(3, 4, dtype=DT, requires_grad=True)
    fn = lambda t: l2_normalize(t * 1, dim=1, inplace=inplace,  # noqa: E731
                                groups=2)
    assert torch.autograd.gradgradcheck(fn, (small, ))


def test_l2_normalize_groups_must_divide():
    with pytest.raises(ValueError, match="'groups' \\(4\\) must divide"):
        l2_normalize(torch.randn(3, 6), dim=1, groups=4)

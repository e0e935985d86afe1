"""A residual unit ``x + branch(x)`` whose branch starts with a product of
``x``, with one gradient buffer for ``x``.

Autograd sums the two gradients of ``x`` (the residual's and the first
product's) itself: the product's backward writes a new ``N x C`` tensor,
which is then added to the other.  On CPU a new tensor of more than 32 MB
is fresh memory from the kernel (glibc maps it and returns it on free), so
that sum costs a page-faulted allocation plus a pass; measured here for
``[72000, 128]``: 22 ms, against 8 ms for accumulating the product into an
existing buffer with ``addmm_``.

:class:`Residual` does the latter when it can do so safely: when the
gradient reaching the residual sum is not contiguous (a loss such as
``out.sum()`` or ``out.mean()`` sends an expanded one), the branch needs a
contiguous copy anyway; that copy belongs to the unit, so the first
product's backward accumulates into it and hands it on as ``x``'s gradient.
In every other case (a contiguous gradient, which may be the caller's
tensor; ``create_graph``; ``torch.compile``; the product's backward running
first) both functions fall back to the plain sum by autograd.  The values
are the same either way (tested).
"""
from typing import Optional

import torch
from torch import Tensor
from torch.compiler import is_exporting

from . import memory
from .segments import Segments, row_product


class Residual:
    """``x + branch(x)``: call :meth:`linear` for the branch's first product
    of ``x`` and :meth:`add` for the residual sum (once each, in that order;
    the branch must depend on the product)."""

    def __init__(self, x: Tensor, seg: Segments):
        self.x, self.seg = x, seg
        self.grad: Optional[Tensor] = None  # x's gradient buffer, if owned
        self.entered = False  # the product went through _EntryLinear
        self.done = False  # _EntryLinear's backward has run

    def linear(self, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """``seg.linear(x, weight, bias)``, the branch's first product."""
        if (not torch.is_grad_enabled() or torch.compiler.is_compiling()
                or is_exporting()):
            return self.seg.linear(self.x, weight, bias)
        self.entered = True
        return _EntryLinear.apply(self.x, weight, bias, self)

    def add(self, branch: Tensor) -> Tensor:
        """``x + branch``, written into ``branch`` (a temporary that nothing
        saved for backward, such as a BatchNorm's output)."""
        return _AddResidual.apply(self.x, branch,
                                  self if self.entered else None)


class _EntryLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                link: Residual) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.link, ctx.has_bias = link, bias is not None
        return link.seg.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        link, seg = ctx.link, ctx.link.seg
        link.done = True
        buffer, link.grad = link.grad, None
        cf = seg.channels_first
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            if cf:  # [S, C, O] @ [S, O, n]
                w_t = weight.t().expand(grad.size(0), *weight.t().shape)
                dx = torch.bmm(w_t, grad) if buffer is None else \
                    buffer.baddbmm_(w_t, grad)
            else:
                dx = row_product(grad, weight) if buffer is None else \
                    buffer.addmm_(grad, weight)
        if ctx.needs_input_grad[1]:
            dw = torch.bmm(grad, x.transpose(1, 2)).sum(0) if cf else \
                torch.mm(grad.t(), x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad.sum((0, 2)) if cf else grad.sum(0)
        return dx, dw, db, None


class _AddResidual(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, branch: Tensor,
                link: Optional[Residual]) -> Tensor:
        branch.add_(x)
        ctx.mark_dirty(branch)
        ctx.link = link
        return branch

    @staticmethod
    def backward(ctx, grad: Tensor):
        # BatchNorm and matmul backward want a contiguous gradient: an
        # expanded one (from ``out.sum()``) made torch's CPU BatchNorm
        # backward take 1.0 s instead of 0.11 s on [1e6, 64].
        dense = grad if grad.is_contiguous() else memory.empty(
            grad.shape, grad).copy_(grad)
        link = ctx.link
        if (link is not None and dense is not grad and not link.done
                and not torch.is_grad_enabled() and ctx.needs_input_grad[0]):
            link.grad = dense  # our copy: x's gradient accumulates into it
            return None, dense, None
        # The same tensor to both: once the branch is done with it,
        # autograd adds x's other gradients into it in place (it reuses
        # the buffer that arrived first, and not an expanded one).
        return dense, dense, None


def add_residual(x: Tensor, branch: Tensor) -> Tensor:
    """``x + branch`` for a residual branch that ends in a BatchNorm: written
    into ``branch`` (a temporary that BatchNorm's backward does not need), so
    no new ``N x C`` tensor, and with a contiguous gradient into the
    branch."""
    return _AddResidual.apply(x, branch, None)

"""BatchNorm over visible nodes, as the units need it.

* The chunked path cannot hand all ``N`` rows to
  :class:`torch.nn.BatchNorm1d` at once.  It sums the moments of each chunk
  (in float64, so that ``E[a^2] - E[a]^2`` keeps its precision over
  millions of rows, :func:`moments`), turns them into the batch statistics
  (:func:`batch_statistics`) and normalises each chunk with them
  (:func:`batch_norm_rows`).
* :func:`batch_norm_side_by_side`: several BatchNorms on consecutive channel
  groups of one tensor in one pass (heads that share their input).
* :func:`linear_batch_norm`: ``BN(x W^T + b)`` folded into one product from
  the input's mean and covariance, without the ``N x O`` linear output.
* :func:`batch_norm`: ``F.batch_norm`` (+ ReLU) with its ``N x C`` output
  and input gradient in :func:`~glore_pyg.functional.memory.empty` buffers.

Every path updates the modules' running statistics exactly as
``BatchNorm1d`` does (:func:`update_running_stats`).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.compiler import is_exporting
from torch.nn.modules.batchnorm import _BatchNorm

from . import memory
from .segments import Segments, relu_backward


def moments(a: Tensor) -> Tensor:
    """``[2, F]`` float64: the column sums of ``a`` and of ``a**2``."""
    a = a.double()
    return torch.stack([a.sum(0), (a * a).sum(0)])


def uses_batch_stats(bn: _BatchNorm) -> bool:
    return bn.training or not bn.track_running_stats


def batch_statistics(bn: _BatchNorm, sums: Tensor, n: int,
                     dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """(mean, biased variance) from the summed :func:`moments` of ``n`` rows;
    updates ``bn``'s running statistics like ``BatchNorm1d`` in training."""
    check_rows(n)
    mean = sums[0] / n
    var = sums[1] / n - mean * mean
    update_running_stats(bn, mean, var, n)
    return mean.to(dtype), var.to(dtype)


def check_rows(n: int):
    if n < 2:
        raise ValueError(f"BatchNorm in training mode needs more than one "
                         f"visible node, got {n}")


def running_factor(bn: _BatchNorm) -> float:
    """Counts one more batch in ``bn`` and returns the weight of the new
    statistics in its running averages (``BatchNorm1d.forward``'s
    ``exponential_average_factor``); 0 when it does not track them."""
    if not (bn.training and bn.track_running_stats):
        return 0.0
    bn.num_batches_tracked.add_(1)
    if bn.momentum is None:  # cumulative moving average
        return 1.0 / float(bn.num_batches_tracked)
    return bn.momentum


def update_running_stats(bn: _BatchNorm, mean: Tensor, var: Tensor, n: int):
    """The running-statistics update of ``BatchNorm1d`` in training, from
    the batch ``mean`` and biased ``var`` of ``n`` rows."""
    factor = running_factor(bn)
    if factor:
        with torch.no_grad():
            dtype = bn.running_mean.dtype
            bn.running_mean.mul_(1 - factor).add_(factor * mean.to(dtype))
            bn.running_var.mul_(1 - factor).add_(
                factor * (var * n / (n - 1)).to(dtype))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """``torch.cat`` that returns a single tensor as is (no copy)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors), dim)


def side_by_side(bns: Sequence[_BatchNorm]) -> bool:
    """Whether :func:`batch_norm_side_by_side` can run ``bns`` as one."""
    def key(bn):
        count = None  # only the cumulative average reads the count
        if bn.momentum is None and bn.num_batches_tracked is not None:
            count = int(bn.num_batches_tracked)
        return (type(bn), bn.eps, bn.momentum, bn.affine, bn.training,
                bn.track_running_stats, count)
    return all(key(bn) == key(bns[0]) for bn in bns)


def batch_norm_side_by_side(h: Tensor, bns: Sequence[_BatchNorm],
                            scale: Optional[Tensor] = None,
                            relu: bool = False) -> Tensor:
    """The BatchNorms ``bns`` applied to consecutive channel groups of ``h``
    (channels on axis 1) in one pass: the same outputs and running
    statistics as applying each to its own group (BatchNorm treats every
    channel on its own).  ``scale`` multiplies the output (folded into the
    affine parameters)."""
    if not side_by_side(bns):
        raise ValueError("BatchNorms applied side by side must share eps, "
                         "momentum, affine, training, track_running_stats "
                         "and the number of batches seen")
    first = bns[0]
    tracked = first.track_running_stats
    factor = [running_factor(bn) for bn in bns][0]
    weight = bias = None
    if first.affine:
        weight, bias = cat([bn.weight for bn in bns]), cat(
            [bn.bias for bn in bns])
    if scale is not None:
        weight = scale if weight is None else scale * weight
        bias = None if bias is None else scale * bias
    mean = var = None
    if tracked:
        mean = cat([bn.running_mean for bn in bns])
        var = cat([bn.running_var for bn in bns])
        if len(bns) == 1:  # updated in place by F.batch_norm itself
            mean, var = first.running_mean, first.running_var
        else:
            mean, var = mean.clone(), var.clone()
    out = batch_norm(h, mean, var, weight, bias, uses_batch_stats(first),
                     factor, first.eps, relu)
    if tracked and len(bns) > 1 and first.training:
        with torch.no_grad():
            for bn, m, v in zip(bns, mean.split([b.num_features
                                                 for b in bns]),
                                var.split([b.num_features for b in bns])):
                bn.running_mean.copy_(m)
                bn.running_var.copy_(v)
    return out


def batch_norm(h: Tensor, running_mean: Optional[Tensor],
               running_var: Optional[Tensor], weight: Optional[Tensor],
               bias: Optional[Tensor], training: bool, momentum: float,
               eps: float, relu: bool = False) -> Tensor:
    """:func:`torch.nn.functional.batch_norm` (then ReLU with ``relu``, in
    place) with its output and input gradient in
    :func:`~glore_pyg.functional.memory.empty` buffers: on CPU, the two
    ``N x C`` tensors per BatchNorm that would otherwise be fresh memory on
    every step.  The same kernels (``native_batch_norm`` and its backward),
    so the same values, gradients and running statistics."""
    if (h.device.type != 'cpu' or torch.compiler.is_compiling()
            or is_exporting() or not h.is_contiguous()):
        out = F.batch_norm(h, running_mean, running_var, weight, bias,
                           training, momentum, eps)
        return torch.relu_(out) if relu else out
    return _BufferedBatchNorm.apply(h, weight, bias, running_mean,
                                    running_var, training, momentum, eps,
                                    relu)


class _BufferedBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, weight: Optional[Tensor],
                bias: Optional[Tensor], running_mean: Optional[Tensor],
                running_var: Optional[Tensor], training: bool,
                momentum: float, eps: float, relu: bool) -> Tensor:
        out = memory.empty(h.shape, h)
        save_mean, save_invstd = h.new_empty(0), h.new_empty(0)
        torch.ops.aten.native_batch_norm.out(
            h, weight, bias, running_mean, running_var, training, momentum,
            eps, out=out, save_mean=save_mean, save_invstd=save_invstd)
        if relu:
            out.relu_()
        ctx.save_for_backward(h, weight, bias, running_mean, running_var,
                              save_mean, save_invstd, out if relu else None)
        ctx.training, ctx.eps = training, eps
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (h, weight, bias, running_mean, running_var, save_mean, save_invstd,
         out) = ctx.saved_tensors
        need = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # double backward: differentiable ops
            stats = (None, None) if ctx.training else (running_mean,
                                                       running_var)
            y = F.batch_norm(h, *stats, weight, bias, ctx.training, 0.0,
                             ctx.eps)
            if out is not None:
                y = torch.relu(y)
            wrt = [t for t, n in zip((h, weight, bias), need) if n]
            grads = iter(torch.autograd.grad(y, wrt, grad, create_graph=True))
            return (*[next(grads) if n else None for n in need],
                    None, None, None, None, None, None)
        g = grad
        if out is not None:
            g = relu_backward(grad, out)
        elif not grad.is_contiguous():  # an expanded one is slow here
            g = memory.empty(grad.shape, grad).copy_(grad)
        # all three outputs: the out= variant cannot leave one undefined
        # (the parameters' gradients are C-sized sums of the same pass)
        dh, dw, db = memory.empty(h.shape, h), h.new_empty(0), h.new_empty(0)
        torch.ops.aten.native_batch_norm_backward.out(
            g, h, torch.ones_like(save_invstd if ctx.training else
                                  running_var) if weight is None else weight,
            running_mean, running_var, save_mean, save_invstd, ctx.training,
            ctx.eps, [True, True, True], out0=dh, out1=dw, out2=db)
        return (dh if need[0] else None,
                dw if need[1] else None,
                db if need[2] else None,
                None, None, None, None, None, None)


class _CenteredGram(torch.autograd.Function):
    # x -> (x - mean, covariance, mean) over all visible nodes.  Backward
    # in three passes over N x I memory, against about ten for autograd of
    # `x - x.mean()` and `xc.T @ xc` (two products, their sum, the mean's
    # expand and the sum into x): with h = g_xc + xc (G + G^T) / n, the
    # gradient is h - mean(h) = g_xc + xc (G + G^T) / n - mean(g_xc), as
    # the rows of xc sum to zero.
    @staticmethod
    def forward(ctx, x: Tensor, seg: Segments):
        mean = seg.channel_mean(x)
        xc = torch.sub(x, seg.channels(mean),
                       out=memory.out_buffer(x.shape, x))
        cov = seg.gram(xc) / seg.num_nodes
        ctx.save_for_backward(xc)
        ctx.seg = seg
        ctx.mark_non_differentiable(mean)
        ctx.set_materialize_grads(False)
        return xc, cov, mean

    @staticmethod
    def backward(ctx, g_xc: Optional[Tensor], g_cov: Optional[Tensor], _):
        xc, = ctx.saved_tensors
        seg = ctx.seg
        if g_cov is None:
            dx = torch.zeros_like(xc) if g_xc is None else g_xc.clone()
        else:
            g = (g_cov + g_cov.t()) / seg.num_nodes
            if g_xc is None:
                dx = seg.linear(xc, g)
            elif seg.channels_first:  # g symmetric: g @ xc_s per sample
                dx = torch.baddbmm(g_xc, g.expand(xc.size(0), *g.shape), xc)
            else:
                dx = torch.addmm(g_xc, xc, g,
                                 out=memory.out_buffer(xc.shape, xc))
        if g_xc is not None:
            dx = dx.sub_(seg.channels(seg.channel_mean(g_xc)))
        return dx, None


def linear_batch_norm(seg: Segments, x: Tensor, weight: Tensor,
                      bias: Optional[Tensor], bn: _BatchNorm,
                      scale: Optional[Tensor] = None,
                      relu: bool = False) -> Tensor:
    r"""``scale * BN(x W^T + b)`` (then ReLU with ``relu``) computed as one
    affine map of ``x``, never materialising ``x W^T + b``:

    .. math::
        \mathrm{BN}(\mathbf{x}\mathbf{W}^\top + \mathbf{b}) =
        (\mathbf{x} - \boldsymbol{\mu}_x)(\mathbf{W}\,
        \mathrm{diag}(\mathbf{s}))^\top + \boldsymbol{\beta},
        \qquad s_o = \frac{\gamma_o}{\sqrt{\mathbf{w}_o^\top
        \boldsymbol{\Sigma}_x \mathbf{w}_o + \epsilon}}

    with the batch mean :math:`\boldsymbol{\mu}_x` and covariance
    :math:`\boldsymbol{\Sigma}_x` of the input over all visible nodes
    (training), or the running statistics (evaluation: the usual folding of
    BatchNorm into the preceding layer).  The same values, gradients and
    running statistics as ``Linear`` then ``BatchNorm``, with one
    ``N x O`` tensor (the output) instead of three (the linear output, the
    BatchNorm output and, in backward, its gradient); it pays an
    ``I x I`` covariance and the centred copy of the input, so it suits
    heads that widen their input (the units fold where ``2I <= O``)."""
    n = seg.num_nodes
    gamma = bn.weight if bn.affine else None
    beta = bn.bias if bn.affine else None
    if uses_batch_stats(bn):
        check_rows(n)
        # centred: an exact covariance
        x, cov, mean_x = _CenteredGram.apply(x, seg)
        var = ((weight @ cov) * weight).sum(1).clamp_min(0)  # biased
        if bn.training and bn.track_running_stats:
            mean = weight.detach() @ mean_x.detach()
            if bias is not None:
                mean = mean + bias.detach()
            update_running_stats(bn, mean, var.detach(), n)
        shift = None
    else:
        var = bn.running_var
        shift = -bn.running_mean if bias is None else (
            bias - bn.running_mean)
    s = torch.rsqrt(var + bn.eps)
    if gamma is not None:
        s = s * gamma
    if scale is not None:
        s = s * scale
    if shift is not None:
        shift = shift * s
    if beta is not None:
        beta = beta if scale is None else beta * scale
        shift = beta if shift is None else shift + beta
    return seg.linear(x, weight * s.unsqueeze(1), shift, relu)


def batch_norm_rows(a: Tensor, mean: Tensor, var: Tensor, bn: _BatchNorm,
                    weight: Tensor, bias: Tensor) -> Tensor:
    """``(a - mean) / sqrt(var + eps) * weight + bias`` (``weight``, ``bias``:
    the module's affine parameters, passed in so gradients reach them)."""
    return (a - mean) * torch.rsqrt(var + bn.eps) * weight + bias

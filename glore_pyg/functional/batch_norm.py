"""BatchNorm over visible nodes from moments, for the chunked path.

The chunked path cannot hand all ``N`` rows to :class:`torch.nn.BatchNorm1d`
at once.  It sums the moments of each chunk (in float64, so that
``E[a^2] - E[a]^2`` keeps its precision over millions of rows), turns them
into the batch statistics, updates the module's running statistics exactly
as ``BatchNorm1d`` does, and normalises each chunk with those statistics."""
from typing import Tuple

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


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
    if n < 2:
        raise ValueError(f"BatchNorm in training mode needs more than one "
                         f"visible node, got {n}")
    mean = sums[0] / n
    var = sums[1] / n - mean * mean
    if bn.training and bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = (1.0 / float(bn.num_batches_tracked)
                      if bn.momentum is None else bn.momentum)
            bn.running_mean.mul_(1 - factor).add_(factor * mean.to(dtype))
            bn.running_var.mul_(1 - factor).add_(
                factor * (var * n / (n - 1)).to(dtype))
    return mean.to(dtype), var.to(dtype)


def batch_norm_rows(a: Tensor, mean: Tensor, var: Tensor, bn: _BatchNorm,
                    weight: Tensor, bias: Tensor) -> Tensor:
    """``(a - mean) / sqrt(var + eps) * weight + bias`` (``weight``, ``bias``:
    the module's affine parameters, passed in so gradients reach them)."""
    return (a - mean) * torch.rsqrt(var + bn.eps) * weight + bias


class _AddResidual(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, branch: Tensor) -> Tensor:
        branch.add_(x)
        ctx.mark_dirty(branch)
        return branch

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, grad.contiguous()


def add_residual(x: Tensor, branch: Tensor) -> Tensor:
    """``x + branch`` for a residual branch that ends in a BatchNorm: written
    into ``branch`` (a temporary that BatchNorm's backward does not need), so
    no new ``N x C`` tensor, and with a contiguous gradient into the branch:
    a loss such as ``out.sum()`` sends back an expanded (stride-0) gradient,
    on which torch's CPU BatchNorm backward takes about ten times as long as
    on a contiguous one (measured: 1.0 s against 0.11 s on ``[1e6, 64]``).
    Copying it costs one pass, only then."""
    return _AddResidual.apply(x, branch)

r"""Batch normalisation with its moments all-reduced over processes, on any
device (``torch.nn.SyncBatchNorm`` runs on GPUs only: on CPU tensors it
raises).  The sharded units and training on several CPU processes rely on
it."""
from typing import Optional

import torch
from torch import Tensor, nn

from ..functional.shard import all_reduce

__all__ = ['DistributedBatchNorm', 'convert_distributed_batchnorm']


def _distributed() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


class DistributedBatchNorm(nn.BatchNorm1d):
    r"""Batch normalisation over the batch of every process of a group
    (`"Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift" <https://arxiv.org/abs/1502.03167>`_), on CPU
    and GPU tensors alike:

    .. math::
        \mu_c = \frac{1}{n} \sum_{p} \sum_{i \in p} x_{ic}, \qquad
        \sigma^2_c = \frac{1}{n} \sum_{p} \sum_{i \in p}
        (x_{ic} - \mu_c)^2, \qquad
        y_{ic} = \gamma_c \frac{x_{ic} - \mu_c}{\sqrt{\sigma^2_c +
        \epsilon}} + \beta_c

    where :math:`p` runs over the processes and :math:`n` counts the rows
    (and positions of a map) of all of them.  The per-channel sums and the
    count are all-reduced with the autograd-aware
    :func:`torch.distributed.nn.functional.all_reduce` (two collectives of
    :math:`C + 1` and :math:`C` numbers: the mean first, then the centred
    squares, which keeps the variance accurate), so the backward pass
    all-reduces the gradient terms too: outputs, input and parameter
    gradients and running statistics equal those of a
    :class:`~torch.nn.BatchNorm1d` / ``2d`` / ``3d`` on the concatenation
    of the processes' batches, whatever their sizes (a process may hold no
    row).  Without an initialised process group, and in evaluation mode
    with running statistics, it is an ordinary BatchNorm.  A subclass of :class:`torch.nn.SyncBatchNorm` with the same
    arguments, state and checkpoint keys; only :meth:`forward` differs.

    Args:
        num_features (int): channels :math:`C`.
        eps (float, optional): added to the variance. (default: ``1e-5``)
        momentum (float, optional): of the running statistics; :obj:`None`
            for a cumulative average. (default: ``0.1``)
        affine (bool, optional): learn :math:`\gamma, \beta`.
            (default: :obj:`True`)
        track_running_stats (bool, optional): keep running statistics.
            (default: :obj:`True`)
        process_group (ProcessGroup, optional): the processes whose batches
            are one batch. (default: :obj:`None`: the default group)

    Shapes:
        - **input:** :math:`(N, C)`, :math:`(N, C, L)`, :math:`(N, C, H,
          W)` or :math:`(N, C, D, H, W)`; :math:`N` may differ between
          processes and be 0 on some
        - **output:** the input's shape

    Raises:
        ValueError: an input with fewer than 2 dimensions, or (training)
            a single value per channel over all processes.
    """

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine,
                         track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"'input' must be [N, C, *], got "
                             f"{input.dim()}-D input")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        use_batch = self.training or not self.track_running_stats
        group = self.process_group
        if not use_batch or not _distributed():
            # PyTorch's own BatchNorm (any dimension: see _check_input_dim)
            return super().forward(input)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        # [N, C, *] -> per-channel sums over every dimension but C
        dims = [0] + list(range(2, input.dim()))
        x = input.float() if input.dtype in (torch.float16,
                                             torch.bfloat16) else input
        count = torch.tensor([x.numel() / max(x.size(1), 1)],
                             dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dims), count]), group)
        n = stats[-1]
        if float(n.detach()) <= 1:
            raise ValueError(f"Expected more than 1 value per channel over "
                             f"all processes when training, got input size "
                             f"{list(input.shape)} here and {int(n)} values "
                             f"in all")
        mean = stats[:-1] / n
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims), group) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n)
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor,
                              n: Tensor) -> None:
        momentum = (1.0 / float(self.num_batches_tracked)
                    if self.momentum is None else self.momentum)
        unbiased = var * (n / (n - 1))
        self.running_mean.mul_(1 - momentum).add_(
            mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(
            unbiased.to(self.running_var.dtype), alpha=momentum)


def convert_distributed_batchnorm(module: nn.Module,
                                  process_group=None) -> nn.Module:
    r"""Replaces every BatchNorm of ``module`` (``BatchNorm1d`` / ``2d`` /
    ``3d`` and ``SyncBatchNorm``, those inside the global-reasoning units
    included) by a :class:`DistributedBatchNorm` with the same parameters,
    buffers and mode, as :meth:`torch.nn.SyncBatchNorm
    .convert_sync_batchnorm` does for GPUs.

    Args:
        module (torch.nn.Module): a network, or a single BatchNorm.
        process_group (ProcessGroup, optional): the group whose batches
            are one batch. (default: :obj:`None`: the default group)

    Returns:
        torch.nn.Module: ``module`` with its BatchNorms replaced (a new
        module when ``module`` itself is a BatchNorm).

    Raises:
        TypeError: ``module`` is not a :class:`torch.nn.Module`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"'module' must be a torch.nn.Module, got "
                        f"{type(module).__name__}")
    out = module
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                           nn.SyncBatchNorm)) and not isinstance(
                               module, DistributedBatchNorm):
        out = DistributedBatchNorm(module.num_features, module.eps,
                                   module.momentum, module.affine,
                                   module.track_running_stats, process_group)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_distributed_batchnorm(child,
                                                           process_group))
    return out

"""Random weights for the unit tests, shared by every test module."""
import torch
from torch.nn.modules.batchnorm import _BatchNorm


def randomize(module: torch.nn.Module, seed: int = 0,
              dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """Random weights everywhere, BatchNorm affine parameters and running
    statistics included, and a non-zero LatentGNN ``gamma``, so that the
    residual branch is far from zero and eval differs from train."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=dtype)

    def uniform(shape, bound):
        return (torch.rand(shape, generator=g, dtype=dtype) * 2 - 1) * bound

    module.to(dtype)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Linear):
                bound = m.in_features**-0.5
                m.weight.copy_(uniform(m.weight.shape, bound))
                if m.bias is not None:
                    m.bias.copy_(uniform(m.bias.shape, bound))
            elif isinstance(m, _BatchNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g,
                                                dtype=dtype))
                m.bias.copy_(0.2 * randn(m.bias.shape))
                m.running_mean.copy_(0.3 * randn(m.running_mean.shape))
                m.running_var.copy_(0.5 + torch.rand(
                    m.running_var.shape, generator=g, dtype=dtype))
        for name, p in module.named_parameters():
            last = name.rsplit('.', 1)[-1]
            if last == 'gamma':
                p.fill_(0.7)
            elif last in ('adjacency', 'node_bias'):
                p.copy_(0.3 * randn(p.shape))
    return module


def lift_projections(module: torch.nn.Module, shift: float = 1.0
                     ) -> torch.nn.Module:
    """Shifts up the BatchNorm biases of every LatentGNN projection head
    (``psi_v2l`` / ``psi_l2v``) in ``module``.

    ``Psi = ReLU(BN(.))`` may be an all-zero or tiny row or column, and its
    L2 normalisation is discontinuous there (zero stays zero, 1e-3 becomes a
    unit vector): any rounding (float16, bfloat16, int8) that flips such an
    entry changes the output by O(1) (measured up to 0.15 of the branch in
    float16 with plain :func:`randomize`).  The shift keeps the entries away
    from zero, so that precision comparisons measure precision, not that
    discontinuity of the method."""
    with torch.no_grad():
        for name, m in module.named_modules():
            last = name.rsplit('.', 3)
            if any(p.startswith('psi_') for p in last) and isinstance(
                    m, _BatchNorm):
                m.bias.add_(shift)
    return module

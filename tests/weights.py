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

"""Helpers shared by the unit tests, handed out through the ``h`` fixture
(so that no test module has to import this file by name).

Layout conventions used by the references:

* a *grid* is a dense tensor ``[B, C, *spatial]`` as in the published code;
* its *nodes* are ``[B * L, C]``, image after image, positions in row-major
  order (``x.flatten(2).transpose(1, 2)``);
* a batch of samples of different sizes is a list of grids, one per sample.
"""
import types
from typing import List, Sequence

import pytest
import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from tests.weights import randomize

DTYPE = torch.float64


def ref_bn(ts: Sequence[Tensor], bn: _BatchNorm, training: bool,
           eps: float = 1e-5) -> List[Tensor]:
    """BatchNorm written out by hand over a list of ``[B_i, C, ...]``
    tensors: in training mode the (biased) statistics pool every position
    of every tensor, as one BatchNorm2d call over the whole batch would.
    Only the affine parameters and running statistics come from ``bn``; the
    ``eps`` is the published one (not read from the module)."""
    C = ts[0].size(1)
    if training:
        cat = torch.cat([t.transpose(0, 1).reshape(C, -1) for t in ts], 1)
        mean = cat.mean(1)
        var = ((cat - mean.view(C, 1))**2).mean(1)
    else:
        mean, var = bn.running_mean, bn.running_var
    out = []
    for t in ts:
        shape = (1, C) + (1, ) * (t.dim() - 2)
        out.append((t - mean.view(shape)) / torch.sqrt(var.view(shape) +
                                                       eps) *
                   bn.weight.view(shape) + bn.bias.view(shape))
    return out


def conv1x1(t: Tensor, weight: Tensor, bias=None) -> Tensor:
    """A 1x1 convolution of a grid ``[B, C, H, W]`` with ``Linear`` weights
    ``[out, in]`` (the published ``nn.Conv2d(kernel_size=1)``)."""
    return torch.nn.functional.conv2d(t, weight[:, :, None, None], bias)


def grid_to_nodes(t: Tensor) -> Tensor:
    """``[B, C, *spatial] -> [B * L, C]``."""
    return t.flatten(2).transpose(1, 2).reshape(-1, t.size(1))


def samples_to_nodes(ts: Sequence[Tensor]) -> Tensor:
    return torch.cat([grid_to_nodes(t) for t in ts])


def batch_of(sizes: Sequence[int]) -> Tensor:
    return torch.repeat_interleave(torch.arange(len(sizes)),
                                   torch.tensor(sizes))


def ptr_of(sizes: Sequence[int]) -> Tensor:
    return torch.tensor([0] + list(sizes)).cumsum(0)


def permutation_within(sizes: Sequence[int], seed: int = 0) -> Tensor:
    """A random permutation of the nodes that keeps each node in its
    sample (and the samples sorted)."""
    g = torch.Generator().manual_seed(seed)
    parts, offset = [], 0
    for n in sizes:
        parts.append(offset + torch.randperm(n, generator=g))
        offset += n
    perm = torch.cat(parts)
    assert not torch.equal(perm, torch.arange(perm.numel()))
    return perm


def random_grids(shapes, channels: int, seed: int = 0) -> List[Tensor]:
    """One ``[1, C, h, w]`` grid per spatial shape."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((1, channels) + tuple(s), generator=g, dtype=DTYPE)
            for s in shapes]


def randn(*shape, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DTYPE)


def assert_close(a: Tensor, b: Tensor, atol: float = 1e-10,
                 rtol: float = 1e-8):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


@pytest.fixture
def h():
    return types.SimpleNamespace(
        DTYPE=DTYPE,
        randomize=randomize,
        ref_bn=ref_bn,
        conv1x1=conv1x1,
        grid_to_nodes=grid_to_nodes,
        samples_to_nodes=samples_to_nodes,
        batch_of=batch_of,
        ptr_of=ptr_of,
        permutation_within=permutation_within,
        random_grids=random_grids,
        randn=randn,
        assert_close=assert_close,
    )

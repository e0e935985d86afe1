"""Pieces shared by the units: projection heads and the inspection record."""
from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, ReLU, Sequential

from ...functional.segments import Segments


def linear_bn(in_channels: int, out_channels: int, relu: bool = False,
              bias: bool = False, eps: float = 1e-5) -> Sequential:
    """A 1x1 convolution of the papers on node matrices: ``Linear`` then
    ``BatchNorm1d`` (statistics over all visible nodes of the batch, as
    ``BatchNorm2d`` over ``B*H*W``), optionally ``ReLU``."""
    layers = [Linear(in_channels, out_channels, bias=bias),
              BatchNorm1d(out_channels, eps=eps)]
    if relu:
        layers.append(ReLU(inplace=True))  # BN does not need its output
    return Sequential(*layers)


def node_layout(x: Tensor, in_channels: int, batch: Optional[Tensor],
                ptr: Optional[Tensor], batch_size: Optional[int]) -> Segments:
    """Checks a unit's input ``x [N, in_channels]`` and reads its sample
    layout."""
    if x.dim() != 2 or x.size(1) != in_channels:
        raise ValueError(f"'x' must be [N, {in_channels}], got "
                         f"{tuple(x.shape)}")
    return Segments.from_batch(x, batch, ptr, batch_size)


def reset_module(module: torch.nn.Module):
    for m in module.modules():
        if m is not module and hasattr(m, 'reset_parameters'):
            m.reset_parameters()


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{name}' must be a positive int, got {value!r}")
    return value


class Projection(NamedTuple):
    r"""What a unit did with one input, for plots and inspection.

    Attributes:
        visible_to_latent (Tensor): weights of the visible-to-latent edges
            ``[N, d]``: LatentGNN's :math:`\Psi_{v2l}` after its L2
            normalisation, as used; GloRe's :math:`B` (before the
            :math:`1/L` of ``normalize=True``).
        latent_to_visible (Tensor): weights of the latent-to-visible edges
            ``[N, d]`` (LatentGNN: normalised, as used; GloRe: :math:`B`).
        latent_graph (Tensor): the weighted latent graph: ``[d, d]`` when it
            is shared by all samples (GloRe's :math:`I - A_g`), ``[S, d, d]``
            when it depends on the sample (LatentGNN's :math:`F_X`); entry
            ``[k, j]`` weighs the message ``j -> k``.
        batch (Tensor): sample index of each visible node ``[N]``.
    """
    visible_to_latent: Tensor
    latent_to_visible: Tensor
    latent_graph: Tensor
    batch: Tensor



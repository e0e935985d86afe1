"""Pieces shared by the units: projection heads and the inspection record."""
from typing import Callable, List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module, ReLU, Sequential

from ...functional.batch_norm import (batch_norm_side_by_side, cat,
                                      linear_batch_norm, side_by_side,
                                      uses_batch_stats)
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


def apply_heads(seg: Segments, x: Tensor, heads: Sequence[Sequence[Module]],
                scale: Optional[Tensor] = None,
                product: Optional[Callable[..., Tensor]] = None) -> Tensor:
    """``scale * head(x)`` for the heads ``heads`` (``Linear``,
    ``BatchNorm1d`` and optionally ``ReLU``, as built by :func:`linear_bn`),
    all on the same input, outputs concatenated along the channel axis
    (axis 1).

    The fewest passes over ``N x F`` memory that give the modules' exact
    values, gradients and BatchNorm updates: several heads share one matrix
    product and one BatchNorm pass (so ``x`` is read once forward and its
    gradient is one product backward, without a sum of several); a single
    head that widens its input enough (:func:`fold_pays`), or any single
    head in evaluation, never materialises its linear output
    (:func:`~glore_pyg.functional.batch_norm.linear_batch_norm`).  ReLU,
    where the heads have it, runs in place.
    ``product(weight, bias)``, if given, computes ``x``'s linear map in
    place of ``seg.linear`` (:meth:`~glore_pyg.functional.residual.Residual
    .linear`)."""
    lins: List[Linear] = [h[0] for h in heads]
    bns: List[BatchNorm1d] = [h[1] for h in heads]
    relu = {len(h) == 3 for h in heads}
    if len(relu) != 1:
        raise ValueError("Heads applied together must all end in ReLU or "
                         "none")
    lin, bn = lins[0], bns[0]
    relu = relu.pop()
    if len(heads) == 1 and (fold_pays(lin.in_features, lin.out_features)
                            or not uses_batch_stats(bn)):
        return linear_batch_norm(seg, x, lin.weight, lin.bias, bn, scale,
                                 relu)
    if not side_by_side(bns):  # e.g. a different momentum set on one
        return torch.cat([apply_heads(seg, x, [h], scale) for h in heads], 1)
    bias = None
    if any(m.bias is not None for m in lins):
        bias = cat([m.weight.new_zeros(m.out_features) if m.bias is None
                    else m.bias for m in lins])
    weight = cat([m.weight for m in lins])
    lin = seg.linear(x, weight, bias) if product is None else product(
        weight, bias)
    return batch_norm_side_by_side(lin, bns, scale, relu)


def fold_pays(in_features: int, out_features: int) -> bool:
    """Whether folding a training-mode BatchNorm into its ``Linear``
    (:func:`~glore_pyg.functional.batch_norm.linear_batch_norm`) saves time:
    it trades BatchNorm's passes over the ``N x O`` output (forward and
    backward) for about as many over the ``N x I`` input (centring, the
    covariance and its gradient).  Measured on CPU: faster at ``I = 32,
    O = 64`` and ``O = 128``, slower at ``I = O = 64``."""
    return 2 * in_features <= out_features


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



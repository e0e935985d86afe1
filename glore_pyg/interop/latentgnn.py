"""LatentGNN: the published ``LatentGNNV1`` <-> :class:`LatentGNN2d` (any
:class:`LatentGNNConv`).  The keys map to the :class:`LatentGNNConv`'s own;
a grid adapter holds it as ``unit``."""
from typing import Dict, List, Sequence, Union

from torch import Tensor

from ..nn import GridUnit, LatentGNN2d, LatentGNNConv, node_unit
from .checkpoint import (Entry, Source, check, conv_bn_entries, export,
                         load_into, read_state_dict, same)

KERNEL = 'LatentGNN_Kernel_{}'


def latentgnn_entries(in_channels: int, inter_channels: int,
                      latent_dims: Sequence[int], mode: str,
                      graph_conv: bool) -> List[Entry]:
    """Published key <-> our key for ``LatentGNNV1`` with these
    hyper-parameters."""
    C, c, sym = in_channels, inter_channels, mode == 'symmetric'
    # the published order: the module's own gamma, then its children
    entries = [Entry('gamma', 'gamma', (1, ), same, same)]
    if sym:
        entries += conv_bn_entries('down_channel', 'down_v2l', c, C)
    else:
        entries += (conv_bn_entries('down_channel_v2l', 'down_v2l', c, C) +
                    conv_bn_entries('down_channel_l2v', 'down_l2v', c, C))
    for i, d in enumerate(latent_dims):
        k = KERNEL.format(i)
        if sym:
            entries += conv_bn_entries(f'{k}.psi', f'psi_v2l.{i}', d, c)
        else:
            entries += conv_bn_entries(f'{k}.psi_v2l', f'psi_v2l.{i}', d, c)
            entries += conv_bn_entries(f'{k}.psi_l2v', f'psi_l2v.{i}', d, c)
        if graph_conv:
            entries += conv_bn_entries(f'{k}.GraphConvWeight',
                                       f'graph_weight.{i}', c, c)
    entries += conv_bn_entries('up_channel', 'up', C, c * len(latent_dims))
    return entries


def infer_latentgnn(state, prefix=''):
    """``(in_channels, channel_stride, latent_dims, mode, graph_conv)`` from
    the keys and shapes of a ``LatentGNNV1`` state dict."""
    if 'down_channel_v2l.0.weight' in state:
        mode, down = 'asymmetric', 'down_channel_v2l.0.weight'
    elif 'down_channel.0.weight' in state:
        mode, down = 'symmetric', 'down_channel.0.weight'
    else:
        raise ValueError(
            f"Missing key {prefix + 'down_channel_v2l.0.weight'!r} "
            f"(asymmetric LatentGNNV1) or {prefix + 'down_channel.0.weight'!r}"
            f" (symmetric) in the state dict")
    w = state[down]
    if w.dim() != 4:
        raise ValueError(f"{prefix + down!r} has shape {tuple(w.shape)}, "
                         f"expected a 1x1 Conv2d kernel [c, C, 1, 1]")
    c, C = w.shape[:2]
    if c < 1 or c > C:
        raise ValueError(f"{prefix + down!r} has shape {tuple(w.shape)}: "
                         f"{c} reduced channels for {C} input channels "
                         f"(needs 1 <= c <= C)")
    stride = C // c
    if C // stride != c:  # no stride reproduces c = C // stride
        raise ValueError(f"{prefix + down!r} has shape {tuple(w.shape)}: no "
                         f"channel_stride gives {C} // channel_stride == {c}")
    psi = 'psi' if mode == 'symmetric' else 'psi_v2l'
    latent_dims = []
    while any(k.startswith(KERNEL.format(len(latent_dims)) + '.')
              for k in state):
        key = f'{KERNEL.format(len(latent_dims))}.{psi}.0.weight'
        if key not in state:
            raise ValueError(f"Missing key {prefix + key!r} in the state "
                             f"dict")
        latent_dims.append(int(state[key].shape[0]))
    if not latent_dims:
        raise ValueError(f"Missing key {prefix + KERNEL.format(0)}.{psi}"
                         f".0.weight' (the first kernel) in the state dict")
    graph_conv = any('.GraphConvWeight.' in k for k in state)
    return C, stride, latent_dims, mode, graph_conv


def load_official_latentgnn(state_dict: Source,
                            without_residual: bool = False,
                            prefix: str = '') -> LatentGNN2d:
    r"""A :class:`~glore_pyg.nn.LatentGNN2d` computing what the published
    ``LatentGNNV1`` (the code of `"Learning Efficient Non-local Relations
    for Visual Recognition" <https://arxiv.org/abs/1905.11634>`_,
    latentgnn/LatentGNN-V1-PyTorch) computes with the weights of
    ``state_dict``.

    Read from the keys and shapes: ``in_channels``, ``channel_stride``,
    ``latent_dims`` (one per ``LatentGNN_Kernel_{i}``), ``mode``
    (``down_channel_v2l``/``down_channel_l2v``: asymmetric; one
    ``down_channel``: symmetric) and ``graph_conv_flag``
    (``GraphConvWeight``).  ``without_residual`` is not stored and must be
    given.

    Args:
        state_dict (dict or path): the module's state dict, or a file saved
            with :func:`torch.save` (read with ``weights_only=True``).
        without_residual (bool): the published flag.
            (default: :obj:`False`)
        prefix (str): take the entries under this prefix of a larger
            checkpoint. (default: :obj:`''`)

    Returns:
        the :class:`~glore_pyg.nn.LatentGNN2d` (its
        :class:`~glore_pyg.nn.LatentGNNConv` under ``.unit``), in training
        mode like any new module, with the checkpoint's dtype and device.

    Raises:
        ValueError: naming every missing or unexpected key and every shape
            that does not fit (also a reduced width that no
            ``channel_stride`` gives); no entry under ``prefix``; a file
            that holds no state dict, or an entry that is not a tensor.
        TypeError: ``state_dict`` neither a mapping nor a path.
    """
    state = read_state_dict(state_dict, prefix)
    C, stride, latent_dims, mode, graph_conv = infer_latentgnn(state, prefix)
    entries = latentgnn_entries(C, C // stride, latent_dims, mode,
                                graph_conv)
    check(state, entries, f'LatentGNNV1(in_channels={C}, latent_dims='
          f'{latent_dims}, channel_stride={stride}, mode={mode!r}, '
          f'graph_conv_flag={graph_conv})', prefix)
    module = LatentGNN2d(C, latent_dims, channel_stride=stride, mode=mode,
                         graph_conv=graph_conv,
                         without_residual=without_residual)
    load_into(module.unit, state, entries)
    return module


def export_official_latentgnn(module: Union[LatentGNNConv, GridUnit]
                              ) -> Dict[str, Tensor]:
    """The state dict of the published ``LatentGNNV1`` (the code of
    `"Learning Efficient Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_, latentgnn/LatentGNN-V1-PyTorch)
    with the weights of ``module``; it loads with ``strict=True`` into
    ``LatentGNNV1`` built with the module's hyper-parameters.

    Args:
        module (LatentGNNConv or GridUnit): a
            :class:`~glore_pyg.nn.LatentGNNConv` or a grid adapter around
            one (:class:`~glore_pyg.nn.LatentGNN1d` / ``2d`` / ``3d``, a
            :class:`~glore_pyg.nn.GridUnit`).  ``without_residual`` is not
            stored; the published module takes it as an argument.

    Returns:
        dict: the published keys (``gamma``, ``down_channel*``,
        ``LatentGNN_Kernel_{i}.*``, ``up_channel``) in the published order,
        tensors detached copies in the module's dtype and device, 1x1
        kernels as ``Conv2d`` weights ``[O, I, 1, 1]`` whatever the
        module's ``dims`` (the published module is 2D).

    Raises:
        TypeError: ``module`` neither a
            :class:`~glore_pyg.nn.LatentGNNConv` nor a grid adapter around
            one.
    """
    unit = node_unit(module)
    if not isinstance(unit, LatentGNNConv):
        raise TypeError(f"'module' must be a LatentGNNConv or LatentGNN1d/2d/"
                        f"3d, got {type(module).__name__}")
    return export(unit, latentgnn_entries(
        unit.in_channels, unit.inter_channels, unit.latent_dims, unit.mode,
        unit.graph_conv))

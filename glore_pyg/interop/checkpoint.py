"""Strict translation between a published module's ``state_dict`` and ours.

A translation is a list of :class:`Entry`: one published key, the key of
our module that holds the same numbers, the published shape, and how the
tensor changes between the two (a 1x1 convolution kernel is our ``Linear``
weight with trailing unit dimensions; GloRe's ``gcn.conv1`` stores
:math:`-A_g`).  Loading checks every key and shape before anything is
copied; exporting produces exactly the published keys.
"""
import os
from typing import Callable, Dict, List, Mapping, NamedTuple, Sequence, Union

import torch
from torch import Tensor

StateDict = Mapping[str, Tensor]
Source = Union[StateDict, str, os.PathLike]

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var',
           'num_batches_tracked')


class Entry(NamedTuple):
    official: str
    ours: str
    shape: Sequence[int]
    to_ours: Callable[[Tensor], Tensor]
    to_official: Callable[[Tensor], Tensor]


def same(t: Tensor) -> Tensor:
    return t


def read_state_dict(source: Source, prefix: str = '') -> Dict[str, Tensor]:
    """A state dict, or the path of one saved with :func:`torch.save`
    (loaded with ``weights_only=True`` onto the CPU); with ``prefix``, the
    entries under it (e.g. ``'module.layer3.0.glore.'`` in a whole network's
    checkpoint), with the prefix removed."""
    if isinstance(source, (str, os.PathLike)):
        source = torch.load(source, map_location='cpu', weights_only=True)
        if not isinstance(source, Mapping):
            raise ValueError(f"The file holds a {type(source).__name__}, not "
                             f"a state dict")
    if not isinstance(source, Mapping):
        raise TypeError(f"'state_dict' must be a mapping of names to "
                        f"tensors or a path, got {type(source).__name__}")
    out = {k[len(prefix):]: v for k, v in source.items()
           if k.startswith(prefix)}
    if not out:
        raise ValueError(f"The state dict has no entry under the prefix "
                         f"{prefix!r}")
    for k, v in out.items():
        if not isinstance(v, Tensor):
            raise ValueError(f"State dict entry {prefix + k!r} is a "
                             f"{type(v).__name__}, not a tensor")
    return out


def require(state: StateDict, key: str, what: str, prefix: str = ''):
    """The tensor at ``key``, or an error naming it."""
    if key not in state:
        raise ValueError(f"Missing key {prefix + key!r} ({what}) in the "
                         f"state dict")
    return state[key]


def check(state: StateDict, entries: List[Entry], model: str,
          prefix: str = '') -> None:
    """Refuses a state dict whose keys or shapes differ from ``entries``,
    naming every offending key.  ``num_batches_tracked`` may be missing (old
    checkpoints; torch's BatchNorm accepts that too)."""
    expected = {e.official: e for e in entries}
    missing = [k for k in expected if k not in state
               and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append('missing keys: ' +
                        ', '.join(repr(prefix + k) for k in missing))
    if unexpected:
        problems.append('unexpected keys: ' +
                        ', '.join(repr(prefix + k) for k in unexpected))
    for k, e in expected.items():
        if k in state and tuple(state[k].shape) != tuple(e.shape):
            problems.append(f'{prefix + k!r} has shape '
                            f'{tuple(state[k].shape)}, expected '
                            f'{tuple(e.shape)}')
    if problems:
        raise ValueError(f"The state dict does not match {model}: " +
                         '; '.join(problems))


def load_into(module: torch.nn.Module, state: StateDict,
              entries: List[Entry]) -> torch.nn.Module:
    """Copies the checked published tensors into ``module`` (made the dtype
    and device of the checkpoint's floating-point weights)."""
    floats = [v for v in state.values() if v.is_floating_point()]
    if floats:
        module.to(device=floats[0].device, dtype=floats[0].dtype)
    ours = module.state_dict()
    new = {e.ours: e.to_ours(state[e.official]) for e in entries
           if e.official in state}
    for key in ours:
        if key not in new and key.endswith('num_batches_tracked'):
            new[key] = torch.zeros_like(ours[key])
    module.load_state_dict(new, strict=True)
    return module


def export(module: torch.nn.Module, entries: List[Entry]) -> Dict[str, Tensor]:
    """Our module's tensors under the published keys, in published order."""
    ours = module.state_dict()
    return {e.official: e.to_official(ours[e.ours].detach().clone())
            for e in entries}


def conv_entry(official: str, ours: str, out_channels: int,
               in_channels: int, dims: int) -> Entry:
    """A 1x1 ``Conv{dims}d`` kernel ``[O, I, 1, ...]`` <-> ``Linear.weight
    [O, I]``."""
    kernel = (1, ) * dims
    return Entry(official, ours, (out_channels, in_channels, *kernel),
                 lambda t: t.reshape(out_channels, in_channels),
                 lambda t: t.reshape(out_channels, in_channels, *kernel))


def bn_entries(official: str, ours: str, channels: int) -> List[Entry]:
    return [Entry(f'{official}.{k}', f'{ours}.{k}',
                  () if k == 'num_batches_tracked' else (channels, ), same,
                  same) for k in BN_KEYS]


def conv_bn_entries(official: str, ours: str, out_channels: int,
                    in_channels: int) -> List[Entry]:
    """The published ``Sequential(Conv2d(1x1, bias=False), BatchNorm2d[,
    ReLU])`` <-> our ``Sequential(Linear(bias=False), BatchNorm1d[,
    ReLU])``."""
    return [conv_entry(f'{official}.0.weight', f'{ours}.0.weight',
                       out_channels, in_channels, 2)] + bn_entries(
                           f'{official}.1', f'{ours}.1', out_channels)

"""Inserting global-reasoning units into a CNN after named sub-modules.

    from glore_pyg.apps.classification import insert_units, unit_overhead
    model = torchvision.models.resnet50(weights='IMAGENET1K_V2')
    insert_units(model, {'layer3.1': 'glore', 'layer3.3': 'glore',
                         'layer3.5': 'glore'})      # GloRe's ResNet-50 setup
    print(unit_overhead(model, (1, 3, 224, 224)).table())

A unit goes *after* the module it is inserted at: that module is wrapped in
:class:`InsertedUnit` (``unit(module(x))``).  Units start as the identity,
so a pretrained model computes exactly what it computed before, in training
and in evaluation mode, until the units are trained.
"""
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ...functional.checks import check_ints, is_symbolic
from ...nn.factory import create_unit, parse_unit_spec
from ...nn.grid import GridUnit
from ...nn.modes import eval_mode

Points = Union[str, Sequence[str], Mapping[str, str]]


class InsertedUnit(nn.Module):
    r"""A module followed by a global-reasoning unit:
    :math:`\mathrm{unit}(\mathrm{module}(\cdot))`, what :func:`insert_units`
    puts in place of the module.

    The wrapped module keeps its own parameters under ``module.``, the unit
    under ``unit.``.  Loading a state dict saved *before* insertion works:
    its keys are moved under ``module.``, and when it holds no ``unit.``
    keys at all, the unit keeps its current parameters (a pretrained
    backbone's checkpoint loads with ``strict=True`` into the model with
    units).  Indexing and ``len`` are passed to the module, so
    ``model.layer4[0]`` still works after inserting after ``layer4``.

    Args:
        module (torch.nn.Module): the module whose output the unit reads.
        unit (GridUnit): a grid adapter (``GloRe2d``, ``LatentGNN2d``,
            ``NonLocal2d``, a :class:`~glore_pyg.nn.GridUnit`, ... ) with
            ``in_channels`` equal to the module's output channels.

    Shapes:
        - **input:** whatever ``module`` takes
        - **output:** ``module``'s output :math:`(B, C, *spatial)`, the
          unit applied

    Raises:
        TypeError: ``module`` or ``unit`` not a module; from
            :meth:`forward`, a module output that is not a tensor.
    """

    def __init__(self, module: nn.Module, unit: GridUnit):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"'module' must be a torch.nn.Module, got "
                            f"{type(module).__name__}")
        if not isinstance(unit, GridUnit):
            raise TypeError(f"'unit' must be a grid adapter (GridUnit, "
                            f"e.g. GloRe2d), got {type(unit).__name__}")
        self.module = module
        self.unit = unit
        self.register_load_state_dict_pre_hook(_keys_before_insertion)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        out = self.module(*args, **kwargs)
        if not isinstance(out, Tensor) and not is_symbolic(out):
            raise TypeError(f"{type(self.module).__name__} returned "
                            f"{type(out).__name__}; a unit needs a feature "
                            f"map tensor [B, C, *spatial]")
        return self.unit(out)

    def __getitem__(self, index):
        return self.module[index]

    def __len__(self) -> int:
        return len(self.module)


def _keys_before_insertion(module, state_dict, prefix, local_metadata,
                           strict, missing_keys, unexpected_keys,
                           error_msgs) -> None:
    """A state dict of the model before insertion: move the wrapped
    module's keys under ``module.``; with no ``unit.`` key at all, keep the
    unit's parameters."""
    inner, unit = prefix + 'module.', prefix + 'unit.'
    old = [k for k in state_dict if k.startswith(prefix)
           and not k.startswith(inner) and not k.startswith(unit)]
    if not old:
        return
    for key in old:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)
    if not any(k.startswith(unit) for k in state_dict):
        for key, value in module.unit.state_dict().items():
            state_dict[unit + key] = value


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
          nn.ConvTranspose2d, nn.ConvTranspose3d)  # Lazy* subclass these
# channel-preserving layers skipped when reading a Sequential's output
_NEUTRAL = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
            nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
            nn.AvgPool2d, nn.AvgPool3d, nn.ReLU, nn.ReLU6, nn.LeakyReLU,
            nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
            nn.Tanh, nn.ELU, nn.PReLU, nn.Mish)
_NORMS = {nn.BatchNorm1d: 1, nn.BatchNorm2d: 2, nn.BatchNorm3d: 3,
          nn.InstanceNorm1d: 1, nn.InstanceNorm2d: 2, nn.InstanceNorm3d: 3,
          nn.SyncBatchNorm: None}


def read_output_shape(module: nn.Module) -> Optional[Tuple[int, int]]:
    """``(channels, spatial dims)`` of a module's output read from its
    layers, or :obj:`None` when they cannot be read without running it.

    Read: convolutions (``out_channels``, the kernel's dims), batch and
    instance norms (``num_features``; 1-D for ``*Norm1d``), a
    :class:`~torch.nn.Sequential` (its last layer that changes channels;
    activations, dropout, pooling and ``Identity`` are skipped),
    torchvision-style residual blocks (the main path's last norm ``bn3`` of
    a Bottleneck, ``bn2`` of a BasicBlock), an :class:`InsertedUnit`
    (its module), and any module with an integer ``out_channels``
    attribute whose first convolution gives the dims.

    Args:
        module (torch.nn.Module): the module.

    Returns:
        ``(C, dims)`` with ``dims`` in 1..3, or :obj:`None`.
    """
    if isinstance(module, InsertedUnit):
        return read_output_shape(module.module)
    if isinstance(module, _CONVS):
        return module.out_channels, len(module.kernel_size)
    for cls, dims in _NORMS.items():
        if type(module) is cls:
            return (module.num_features, dims) if dims else None
    if isinstance(module, nn.Sequential):
        for child in reversed(list(module)):
            if not isinstance(child, _NEUTRAL):
                return read_output_shape(child)
        return None
    for last in ('bn3', 'bn2'):  # torchvision's Bottleneck / BasicBlock
        norm = getattr(module, last, None)
        if isinstance(norm, nn.Module) and type(norm) in _NORMS:
            return read_output_shape(norm)
    channels = getattr(module, 'out_channels', None)
    if isinstance(channels, int) and not isinstance(channels, bool):
        conv = next((m for m in module.modules()
                     if isinstance(m, _CONVS)), None)
        if conv is not None:
            return channels, len(conv.kernel_size)
    return None


def _normalise_points(points: Points, spec: str) -> Dict[str, str]:
    if isinstance(points, str):
        points = [points]
    if isinstance(points, Mapping):
        out = dict(points)
    elif isinstance(points, Sequence):
        out = {p: spec for p in points}
    else:
        raise TypeError(f"'points' must be a module name, a list of names or "
                        f"a dict name -> unit spec, got "
                        f"{type(points).__name__}")
    if not out:
        raise ValueError("'points' is empty: name at least one sub-module, "
                         "e.g. 'layer3.1'")
    for name, s in out.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"'points' holds {name!r}: insertion points are "
                             f"dotted sub-module names such as 'layer4'")
        parse_unit_spec(s)  # ValueError naming the spec
    return out


def _dry_run(model: nn.Module, names: Sequence[str],
             example_input) -> Dict[str, Tuple[int, int]]:
    shapes: Dict[str, Any] = {}
    hooks = []
    for name in names:
        def record(module, args, out, name=name):
            shapes[name] = out
        hooks.append(model.get_submodule(name).register_forward_hook(record))
    try:
        with eval_mode(model), torch.no_grad():
            if isinstance(example_input, (tuple, list)):
                model(*example_input)
            else:
                model(example_input)
    finally:
        for h in hooks:
            h.remove()
    result = {}
    for name in names:
        if name not in shapes:
            raise ValueError(f"Insertion point {name!r} was not called in "
                             f"the dry run on 'example_input'")
        out = shapes[name]
        if not isinstance(out, Tensor) or not 3 <= out.dim() <= 5:
            what = (f'a tensor of shape {tuple(out.shape)}'
                    if isinstance(out, Tensor) else type(out).__name__)
            raise ValueError(f"Insertion point {name!r} returns {what}; a "
                             f"unit needs a feature map [B, C, *spatial] "
                             f"with 1 to 3 spatial dims")
        result[name] = (out.size(1), out.dim() - 2)
    return result


def insert_units(model: nn.Module, points: Points, spec: str = 'glore',
                 example_input: Optional[Union[Tensor, Sequence]] = None
                 ) -> nn.Module:
    r"""Inserts GloRe, LatentGNN or non-local units into ``model`` after
    the named sub-modules, in place, and returns ``model``.

    The channel count (and 1-D/2-D/3-D layout) of each insertion point is
    read from the module (see :func:`read_output_shape`) or, when
    ``example_input`` is given, measured by one forward pass on it (in
    evaluation mode, without gradients; every module's mode is restored,
    see :func:`~glore_pyg.nn.eval_mode`).
    Each unit is made by :func:`~glore_pyg.nn.create_unit` on the module's
    device and dtype and in the model's training mode.  A fresh unit is the
    identity, so the model's outputs are unchanged until the units train.

    Sources: GloRe (`"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_, Sec. 4: units after residual
    blocks of Res4, e.g. ResNet-50 with 3 units), LatentGNN (`"Learning
    Efficient Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_, Sec. 5) and the non-local block
    (`"Non-local Neural Networks" <https://arxiv.org/abs/1711.07971>`_,
    Sec. 4); the spec language follows timm's ``create_attn``.

    Args:
        model (torch.nn.Module): the network (a torchvision ResNet,
            :class:`~glore_pyg.apps.classification.ResNet`, or any module).
        points (str, list of str or dict): dotted names of sub-modules as
            in ``model.named_modules()`` (``'layer4'``, ``'layer3.1'``),
            or a dict name -> unit spec to mix kinds.
        spec (str, optional): the unit spec of the points given as names,
            e.g. ``'glore'``, ``'latentgnn:d=32,kernels=2'``,
            ``'nonlocal'`` (see :func:`~glore_pyg.nn.create_unit`).
            (default: ``'glore'``)
        example_input (Tensor or tuple, optional): an input of ``model``
            (a tuple is unpacked into positional arguments) for the dry run
            that measures the insertion points' outputs.
            (default: :obj:`None`: read them from the modules)

    Returns:
        ``model``, with each insertion point replaced by an
        :class:`InsertedUnit`: the point's own sub-modules and state-dict
        keys move under ``module.`` (``layer3.1.conv1`` becomes
        ``layer3.1.module.conv1``; after inserting at ``layer3``,
        ``layer3.1`` is ``layer3.module.1``), so insert all points in one
        call, or name them as ``model.named_modules()`` shows them now.
        :func:`remove_units` undoes it.  A module that ``forward`` calls
        twice gets its unit applied twice.

    Raises:
        TypeError: ``model`` not a module; ``points`` of another type.
        ValueError: an empty ``points``, an unknown sub-module name (the
            close names are listed), the root or an already inserted point,
            an invalid unit spec, a point whose channels cannot be read
            without ``example_input``, or whose output is not a feature map
            with 1 to 3 spatial dims (in the dry run), or that the dry run
            did not reach.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    wanted = _normalise_points(points, spec)
    modules = dict(model.named_modules())
    for name in wanted:
        if name not in modules:
            close = difflib.get_close_matches(name, list(modules), n=5)
            raise ValueError(f"'points': {type(model).__name__} has no "
                             f"sub-module {name!r}"
                             + (f"; close names: {close}" if close else ''))
        if isinstance(modules[name], InsertedUnit):
            raise ValueError(f"'points': {name!r} already has a unit "
                             f"inserted after it")
    if example_input is not None:
        shapes = _dry_run(model, list(wanted), example_input)
    else:
        shapes = {}
        for name in wanted:
            shape = read_output_shape(modules[name])
            if shape is None:
                raise ValueError(
                    f"Cannot read the output channels of {name!r} "
                    f"({type(modules[name]).__name__}) from its layers: pass "
                    f"'example_input' to measure them with one forward "
                    f"pass")
            shapes[name] = shape
    # deepest first, so that a point inside another one is still found
    for name in sorted(wanted, key=lambda n: -n.count('.')):
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name)
        module = getattr(parent, child)
        channels, dims = shapes[name]
        unit = create_unit(wanted[name], channels, dims)
        ref = next(module.parameters(), None)
        if ref is None:
            ref = next(model.parameters(), None)
        if ref is not None:
            unit = unit.to(device=ref.device, dtype=ref.dtype)
        unit.train(model.training)
        setattr(parent, child, InsertedUnit(module, unit))
    return model


def remove_units(model: nn.Module) -> Dict[str, GridUnit]:
    """Undoes :func:`insert_units`, in place: every :class:`InsertedUnit`
    of ``model`` is replaced by the module it wraps, so the model has its
    original structure, names and state-dict keys again (e.g. to save a
    checkpoint that a model without units loads).

    Args:
        model (torch.nn.Module): a network with inserted units.

    Returns:
        dict: the removed units by the name their :class:`InsertedUnit`
        had (empty if there were none).

    Raises:
        TypeError: ``model`` not a module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    removed = inserted_units(model)
    # deepest first, so that the names of outer points stay valid
    for name in sorted(removed, key=lambda n: -n.count('.')):
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name)
        setattr(parent, child, getattr(parent, child).module)
    return removed


def inserted_units(model: nn.Module) -> Dict[str, GridUnit]:
    """The units :func:`insert_units` put into ``model``: the name of each
    :class:`InsertedUnit` (as in ``model.named_modules()``) -> its unit.

    Args:
        model (torch.nn.Module): the network.

    Returns:
        dict: name -> unit, in module order (empty if none).
    """
    return {name: m.unit for name, m in model.named_modules()
            if isinstance(m, InsertedUnit)}


def _filled_in(model: nn.Module, key: str, local_metadata: Mapping) -> bool:
    """Whether a strict ``load_state_dict`` accepts a source without
    ``key``: a BatchNorm's ``num_batches_tracked``, which its
    ``_load_from_state_dict`` fills in when the source's metadata for the
    module has no version or one below 2 (checkpoints older than the
    buffer, or saved as a plain dict)."""
    path, _, name = key.rpartition('.')
    if name != 'num_batches_tracked':
        return False
    module = model.get_submodule(path)
    version = local_metadata.get('version')
    return (isinstance(module, nn.modules.batchnorm._NormBase)
            and module.track_running_stats
            and (version is None or version < 2))


def load_backbone_weights(model: torch.nn.Module, source) -> Dict:
    """Loads pretrained backbone weights (e.g. a torchvision ResNet
    checkpoint, or a state dict of :class:`~glore_pyg.apps.classification.ResNet`) into
    ``model``, before or after units were inserted: the inserted units keep
    their fresh state (see :class:`~glore_pyg.apps.classification.InsertedUnit`), and
    tensors whose shape differs (the classifier of another number of
    classes) are left out and reported.  The source must hold the keys a
    strict ``load_state_dict`` of the model without units needs: BatchNorm
    ``num_batches_tracked`` buffers may be missing where PyTorch's own
    strict load fills them in (a plain dict saved without them); the
    modules keep their current count then.

    Args:
        model (torch.nn.Module): the network.
        source (str, Path or dict): a file saved with :func:`torch.save`
            holding a state dict (or a dict with a ``'state_dict'`` or
            ``'model'`` entry; read with ``weights_only=True``), or a state
            dict.

    Returns:
        dict: ``skipped``, the keys left out for their shape.

    Raises:
        FileNotFoundError: a missing file.
        ValueError: a file that holds no state dict, or keys that match no
            parameter of ``model`` / parameters of the backbone that the
            source lacks (named), e.g. weights of another architecture.
    """
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise FileNotFoundError(f"Pretrained weights {source} not found")
        source = torch.load(source, map_location='cpu', weights_only=True)
    if isinstance(source, Mapping):
        for key in ('state_dict', 'model'):
            if isinstance(source.get(key), Mapping):
                source = source[key]
    if not isinstance(source, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in source.values()):
        raise ValueError("Pretrained weights must be a state dict (name -> "
                         "tensor)")
    own = model.state_dict()
    # the keys the source would have for the model without units
    plain = {k.replace('.module.', '.'): k for k in own
             if '.unit.' not in k}
    metadata = getattr(source, '_metadata', None) or {}
    state, skipped = {}, []
    for key, value in source.items():
        target = plain.get(key)
        if target is None:
            continue
        if own[target].shape != value.shape:
            skipped.append(key)
            continue
        state[target] = value
    unknown = [k for k in source if k not in plain]
    lacking = [k for k in plain if k not in source and not _filled_in(
        model, plain[k], metadata.get(k.rpartition('.')[0], {}))]
    if unknown or lacking:
        raise ValueError(
            f"The pretrained weights do not fit {type(model).__name__}: "
            + (f"{len(unknown)} unknown key(s) such as {unknown[:3]}"
               if unknown else '')
            + ('; ' if unknown and lacking else '')
            + (f"{len(lacking)} missing key(s) such as {lacking[:3]}"
               if lacking else ''))
    model.load_state_dict(state, strict=False)
    return dict(skipped=skipped)


@dataclass(repr=False)
class Overhead:
    """What the inserted units add, counted by :func:`unit_overhead`.

    Two counts of the same work: ``flops`` as
    :class:`~torch.utils.flop_counter.FlopCounterMode` counts them (a
    multiply-add is 2 FLOPs), ``macs`` the multiply-adds, half of it: the
    unit the papers' "FLOPs" / "GFLOPs" columns use (ResNet-50: 4.1 G), and
    the one every table of the applications shows.

    Attributes:
        input_shape (tuple): the input the work was counted on.
        rows (list of dict): one per unit: ``name``, ``unit`` (class name),
            ``channels``, ``params``, ``flops`` and ``macs`` (of the unit
            alone).
        total_params (int): parameters of the model with its units.
        total_flops (int): FLOPs of one forward pass of the model with its
            units (a multiply-add counts 2).
    """
    input_shape: Tuple[int, ...]
    rows: List[Dict[str, Any]] = field(default_factory=list)
    total_params: int = 0
    total_flops: int = 0

    @property
    def base_params(self) -> int:
        """Parameters without the units."""
        return self.total_params - sum(r['params'] for r in self.rows)

    @property
    def base_flops(self) -> int:
        """FLOPs without the units."""
        return self.total_flops - sum(r['flops'] for r in self.rows)

    @property
    def total_macs(self) -> int:
        """Multiply-adds of the model with its units."""
        return self.total_flops // 2

    @property
    def base_macs(self) -> int:
        """Multiply-adds without the units."""
        return self.base_flops // 2

    def table(self) -> str:
        """A markdown table in the papers' form: per unit "+Params" and
        "+GMACs" (multiply-adds, the papers' "+GFLOPs"), then the network
        without and with the units."""
        lines = ['| insertion point | unit | channels | +Params | +GMACs |',
                 '|---|---|---|---|---|']
        for r in self.rows:
            lines.append(f"| {r['name']} | {r['unit']} | {r['channels']} | "
                         f"{r['params'] / 1e6:.3f}M | {r['macs'] / 1e9:.4f} |")
        lines.append(f'| network without units | | | '
                     f'{self.base_params / 1e6:.3f}M | '
                     f'{self.base_macs / 1e9:.4f} |')
        lines.append(f'| network with units | | | '
                     f'{self.total_params / 1e6:.3f}M | '
                     f'{self.total_macs / 1e9:.4f} |')
        return '\n'.join(lines)

    def __str__(self) -> str:
        return (f'input {tuple(self.input_shape)}; MACs: multiply-adds (the '
                f'papers\' "FLOPs")\n' + self.table())

    __repr__ = __str__


def unit_overhead(model: nn.Module,
                  example_input: Union[Tensor, Sequence[int]]) -> Overhead:
    """Parameters and work each inserted unit adds (the papers' "+Params"
    and "+GFLOPs" columns, which count multiply-adds), counted with
    :class:`torch.utils.flop_counter.FlopCounterMode` on one forward pass
    in evaluation mode without gradients (every module's mode is restored,
    see :func:`~glore_pyg.nn.eval_mode`).

    The work is that of matrix products and convolutions, as FLOPs (a
    multiply-add counted as 2) and as multiply-adds (``macs``, the papers'
    unit); normalisation and element-wise operations add none.

    Args:
        model (torch.nn.Module): a network with units from
            :func:`insert_units` (with none, only the totals are filled).
        example_input (Tensor or tuple of int): an input, or its shape (a
            standard normal tensor of that shape is made, seeded, on the
            model's device and dtype), e.g. ``(1, 3, 224, 224)``.

    Returns:
        Overhead: per unit and total counts; ``str()`` of it is a markdown
        table.

    Raises:
        TypeError: ``model`` not a module, ``example_input`` neither a
            tensor nor a sequence, or a shape entry not an int.
        ValueError: an empty shape, or a shape entry below 1.
    """
    from torch.utils.flop_counter import FlopCounterMode
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    if not isinstance(example_input, Tensor):
        shape = check_ints(example_input, 'example_input', 1,
                           'a shape, or give a tensor')
        ref = next(model.parameters(), None)
        g = torch.Generator().manual_seed(0)
        example_input = torch.randn(*shape, generator=g)
        if ref is not None:
            example_input = example_input.to(ref.device, ref.dtype)
    with eval_mode(model), torch.no_grad(), \
            FlopCounterMode(display=False) as counter:
        model(example_input)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    report = Overhead(tuple(example_input.shape),
                      total_params=sum(p.numel() for p in model.parameters()),
                      total_flops=counter.get_total_flops())
    for name, unit in inserted_units(model).items():
        flops = sum(counts.get(f'{root}.{name}.unit', {}).values())
        report.rows.append(dict(
            name=name, unit=type(unit).__name__,
            channels=unit.in_channels,
            params=sum(p.numel() for p in unit.parameters()),
            flops=int(flops), macs=int(flops) // 2))
    return report


__all__ = ['InsertedUnit', 'insert_units', 'inserted_units', 'remove_units',
           'load_backbone_weights', 'read_output_shape', 'unit_overhead',
           'Overhead']

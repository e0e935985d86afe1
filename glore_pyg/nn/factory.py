"""One word (and options) to one unit, like timm's ``create_attn``: the
configuration language of the applications (segmentation levels, CNN
insertion points).

    create_unit('latentgnn', 128)                 # LatentGNNConv(128, [64])
    create_unit('latentgnn:kernels=3,d=32', 128)  # three kernels of 32
    create_unit('glore:num_mid=16', 256, dims=2)  # GloRe2d(256, 16)
    create_unit('nonlocal', 64, dims=1)           # NonLocal1d(64)
"""
from typing import Any, Dict, Tuple, Union

from ..functional.checks import check_int
from .grid import (GloRe1d, GloRe2d, GloRe3d, GridUnit, LatentGNN1d,
                   LatentGNN2d, LatentGNN3d, NonLocal1d, NonLocal2d,
                   NonLocal3d)
from .units import GloReConv, GlobalReasoningUnit, LatentGNNConv, NonLocalConv

UNITS = {  # kind -> classes by number of spatial dims (0: node level)
    'glore': (GloReConv, GloRe1d, GloRe2d, GloRe3d),
    'latentgnn': (LatentGNNConv, LatentGNN1d, LatentGNN2d, LatentGNN3d),
    'nonlocal': (NonLocalConv, NonLocal1d, NonLocal2d, NonLocal3d),
}
OPTIONS = {  # kind -> option -> type
    'glore': {'num_mid': int, 'normalize': bool},
    'latentgnn': {'d': int, 'kernels': int, 'channel_stride': int,
                  'mode': str, 'graph_conv': bool, 'chunk_size': int},
    'nonlocal': {'inter_channels': int},
}


def parse_unit_spec(spec: str) -> Tuple[str, Dict[str, Any]]:
    """``'kind:key=value,...'`` -> ``(kind, options)``, options converted to
    their types.

    Args:
        spec (str): ``kind`` or ``kind:key=value,...``; ``kind`` is
            ``'glore'``, ``'latentgnn'`` or ``'nonlocal'`` (case, ``-`` and
            ``_`` ignored: ``'Non-Local'`` is ``'nonlocal'``); the options
            of each kind are listed in :func:`create_unit`.  Booleans are
            written ``1``/``true``/``yes`` or ``0``/``false``/``no``.

    Returns:
        ``(kind, options)``: the normalised kind and a dict of the options
        given, converted to ``int``, ``bool`` or ``str`` (defaults are not
        filled in).

    Raises:
        ValueError: an empty or non-string spec, an unknown kind or option,
            an option without ``=`` or given twice, or a value of the wrong
            type, naming the choices.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"A unit spec is a string such as 'latentgnn' or "
                         f"'glore:num_mid=16', got {spec!r}")
    raw, _, rest = spec.strip().partition(':')
    kind = raw.strip().lower().replace('-', '').replace('_', '')
    if kind not in UNITS:
        raise ValueError(f"Unknown unit {raw.strip()!r} in {spec!r}: choose "
                         f"one of {sorted(UNITS)} (options follow a ':', "
                         f"e.g. 'glore:num_mid=16')")
    options: Dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(','))):
        key, eq, value = item.partition('=')
        key = key.strip()
        if not eq or key not in OPTIONS[kind]:
            raise ValueError(
                f"Unknown option {item!r} for unit {kind!r} in {spec!r}: "
                f"options are {sorted(OPTIONS[kind])} as key=value")
        if key in options:
            raise ValueError(f"Option {key!r} is given twice in {spec!r}")
        options[key] = _convert(OPTIONS[kind][key], value.strip(), key, spec)
    return kind, options


def _convert(kind: type, value: str, key: str, spec: str):
    if kind is bool:
        if value.lower() in ('1', 'true', 'yes'):
            return True
        if value.lower() in ('0', 'false', 'no'):
            return False
    elif kind is int:
        try:
            return int(value)
        except ValueError:
            pass
    else:
        return value
    raise ValueError(f"Option {key!r} of {spec!r} must be "
                     f"{kind.__name__}, got {value!r}")


def create_unit(spec: str, channels: int, dims: int = 0
                ) -> Union[GlobalReasoningUnit, GridUnit]:
    r"""Builds a unit from a spec string.

    Args:
        spec (str): ``kind`` or ``kind:key=value,...`` with ``kind`` one of
            ``'glore'`` (options ``num_mid`` (default ``channels // 4``),
            ``normalize`` (default ``True`` at node level, where sample sizes
            vary, ``False`` on grids as published)), ``'latentgnn'``
            (``d`` latent nodes per kernel (default 64), ``kernels``
            (default 1), ``channel_stride``, ``mode``, ``graph_conv``,
            ``chunk_size``) or ``'nonlocal'`` (``inter_channels``).
        channels (int): input (and output) channels :math:`C`.
        dims (int, optional): 0 for the node-level layer (point clouds),
            1, 2 or 3 for the grid adapter of that many spatial axes.
            (default: :obj:`0`)

    Returns:
        A fresh node-level :class:`~glore_pyg.nn.GlobalReasoningUnit`
        (``dims=0``) or grid adapter (a :class:`~glore_pyg.nn.GridUnit`
        such as :class:`~glore_pyg.nn.GloRe2d`, its unit under ``.unit``),
        the identity at initialisation.

    Raises:
        ValueError: a malformed spec, an unknown kind or option, a number
            out of range (``channels`` or an option such as ``d``,
            ``kernels``, ``num_mid`` below 1, ``dims`` not in 0..3), or
            invalid unit arguments.
        TypeError: ``channels`` or ``dims`` not an int.
    """
    kind, options = parse_unit_spec(spec)
    channels = check_int(channels, 'channels', minimum=1)
    dims = check_int(dims, 'dims', 0, 3)
    cls = UNITS[kind][dims]
    if kind == 'glore':
        return cls(channels, options.get('num_mid', max(channels // 4, 1)),
                   normalize=options.get('normalize', dims == 0))
    if kind == 'latentgnn':
        # the spec's own names: the unit takes the list [d] * kernels
        d = check_int(options.pop('d', 64), 'd', minimum=1)
        k = check_int(options.pop('kernels', 1), 'kernels', minimum=1)
        return cls(channels, [d] * k, **options)
    return cls(channels, **options)

"""Reading what a unit inside a network sees."""
from typing import Any, Callable, Dict, Tuple

import torch
from torch import nn

from ..nn.modes import eval_mode


@torch.no_grad()
def unit_inputs(unit: nn.Module, run: Callable[[], Any]
                ) -> Tuple[tuple, Dict[str, Any]]:
    """The positional and keyword arguments ``unit`` is called with the
    first time while ``run()`` runs (e.g. ``lambda: model(image)``), read
    with a forward pre-hook that is removed afterwards; ``run`` runs under
    :func:`torch.no_grad`.  Use it to rerun a unit that sits inside a
    network with ``return_projection=True``.

    Args:
        unit (torch.nn.Module): a module of the network ``run`` calls.
        run (callable): runs the network once; its result is discarded.

    Returns:
        ``(args, kwargs)`` of the unit's first call.

    Raises:
        TypeError: ``unit`` not a module or ``run`` not callable.
        ValueError: ``run`` did not call ``unit``.
    """
    if not isinstance(unit, nn.Module):
        raise TypeError(f"'unit' must be a torch.nn.Module, got "
                        f"{type(unit).__name__}")
    if not callable(run):
        raise TypeError(f"'run' must be callable, got {type(run).__name__}")
    seen = []

    def keep(module, args, kwargs):
        if not seen:
            seen.append((args, dict(kwargs)))
    handle = unit.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"'run' did not call the unit "
                         f"{type(unit).__name__}")
    return seen[0]


def unit_projections(model: nn.Module, unit: nn.Module,
                     run: Callable[[], Any]) -> Tuple[tuple, list]:
    """What ``unit``, a module inside ``model``, does with the input
    ``run()`` feeds the network: the network runs once in evaluation mode
    without gradients (every module's mode is restored, see
    :func:`~glore_pyg.nn.eval_mode`), the unit's arguments are read
    with :func:`unit_inputs`, and the unit is run again on them with
    ``return_projection=True``.

    Args:
        model (torch.nn.Module): the network (put in evaluation mode for
            the run).
        unit (torch.nn.Module): a global-reasoning unit of ``model``.
        run (callable): runs ``model`` once.

    Returns:
        ``(args, projections)``: the unit's positional arguments and the
        list of :class:`~glore_pyg.nn.Projection` it returns.

    Raises:
        TypeError: ``model`` or ``unit`` not a module, ``run`` not
            callable.
        ValueError: ``run`` did not call ``unit``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    with eval_mode(model):
        args, kwargs = unit_inputs(unit, run)
        with torch.no_grad():
            _, projections = unit(*args, return_projection=True, **kwargs)
    return args, projections


__all__ = ['unit_inputs', 'unit_projections']

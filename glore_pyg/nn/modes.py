"""Running a network in evaluation mode for a moment (a dry run, a FLOP
count, reading a unit's projection) without changing its modes.

    with eval_mode(model):
        model(x)          # BatchNorm uses its running statistics
    # every sub-module is back in its own mode
"""
from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Puts ``module`` in evaluation mode (:meth:`torch.nn.Module.eval`)
    inside the ``with`` block and gives every sub-module back its *own*
    ``training`` flag on exit, also when the block raises.

    ``module.train(previous)`` would not do: it sets one flag on every
    sub-module, so a BatchNorm the user froze in evaluation mode inside a
    training model would come back in training mode.

    Args:
        module (torch.nn.Module): the network.

    Yields:
        torch.nn.Module: ``module``, in evaluation mode.

    Raises:
        TypeError: ``module`` not a :class:`torch.nn.Module`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"'module' must be a torch.nn.Module, got "
                        f"{type(module).__name__}")
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


__all__ = ['eval_mode']

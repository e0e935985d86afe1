"""``torch.fx`` symbolic tracing of models with global reasoning units.

Units, grid adapters and models that call them on feature maps or on equal
samples (``batch_size``) trace straight through with
:func:`torch.fx.symbolic_trace`: their graph holds the units' ``Linear`` /
``BatchNorm1d`` / ``ReLU`` modules and products, which is what
``torch.ao.quantization``'s FX mode and torchvision's
``create_feature_extractor`` need.  A unit that receives PyG's ``batch`` or
``ptr`` cannot be traced through (the sample sizes are data); trace such a
model with :class:`UnitTracer`, which keeps every unit a leaf, one
``call_module`` node.
"""
import torch.fx
from torch.nn import Module

from .grid import GridUnit
from .units.base import GlobalReasoningUnit


class UnitTracer(torch.fx.Tracer):
    r"""A :class:`torch.fx.Tracer` that does not trace into the units
    (:class:`~glore_pyg.nn.GlobalReasoningUnit`) nor the grid adapters
    (:class:`~glore_pyg.nn.GridUnit`): each is one ``call_module`` node,
    run as itself by the traced :class:`torch.fx.GraphModule`, so its
    data-dependent parts (the sample sizes of ``batch`` / ``ptr``, empty
    inputs, input checks) keep working.
    Every other module is traced as by :class:`torch.fx.Tracer`.

    .. code-block:: python

        graph = UnitTracer().trace(model)
        traced = torch.fx.GraphModule(model, graph)

    Args:
        **kwargs: those of :class:`torch.fx.Tracer`.
    """

    def is_leaf_module(self, m: Module, module_qualified_name: str) -> bool:
        """Units and grid adapters are leaves, then
        :class:`torch.fx.Tracer`'s rule."""
        return isinstance(m, (GlobalReasoningUnit, GridUnit)) or \
            super().is_leaf_module(m, module_qualified_name)


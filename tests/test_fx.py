"""``torch.fx`` symbolic tracing (issue 23): units, grid adapters, inserted
models and the bundled backbones trace straight through; a unit fed PyG's
``batch`` says how to trace it (as a leaf, with ``UnitTracer``); FX-mode
quantization runs on a network with units.  Traced graphs are compared with
the modules they came from, on random (trained-looking) weights."""
import warnings

import pytest
import torch
import torch.fx

from glore_pyg.apps.classification.task import build_model
from glore_pyg.nn import (GloRe1d, GloRe2d, GloRe3d, GloReConv, LatentGNN1d,
                          LatentGNN2d, LatentGNN3d, LatentGNNConv, NonLocal1d,
                          NonLocal2d, NonLocal3d, NonLocalConv, UnitTracer)
from glore_pyg.nn.units import GlobalReasoningUnit
from tests.weights import randomize

C = 8
GRIDS = {
    GloRe1d: (2, C, 7), GloRe2d: (2, C, 3, 4), GloRe3d: (2, C, 2, 3, 2),
    LatentGNN1d: (2, C, 7), LatentGNN2d: (2, C, 3, 4),
    LatentGNN3d: (2, C, 2, 3, 2),
    NonLocal1d: (2, C, 7), NonLocal2d: (2, C, 3, 4),
    NonLocal3d: (2, C, 2, 3, 2),
}


def _grid(cls):
    unit = cls(C, 4) if 'GloRe' in cls.__name__ else cls(
        C, [4, 3], graph_conv=True) if 'Latent' in cls.__name__ else cls(C)
    return randomize(unit, 0, torch.float32)


def _x(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _has_linear_nodes(gm):
    """Traced through: the unit's Linear modules are nodes of the graph."""
    modules = dict(gm.named_modules())
    return any(n.op == 'call_module' and
               isinstance(modules[n.target], torch.nn.Linear)
               for n in gm.graph.nodes)


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('cls', list(GRIDS), ids=lambda c: c.__name__)
def test_grid_adapters_trace_through(cls, training):
    unit = _grid(cls).train(training)
    traced = torch.fx.symbolic_trace(
        unit, concrete_args={'return_projection': False})
    assert _has_linear_nodes(traced)
    x = _x(GRIDS[cls])
    ref = unit(x)
    assert (ref - x).abs().max() > 0.05  # the branch is active
    torch.testing.assert_close(traced(x), ref, rtol=0, atol=0)
    # channels_last input keeps its memory format through the graph
    x_cl = x.contiguous(memory_format=torch.channels_last) \
        if x.dim() == 4 else x
    torch.testing.assert_close(traced(x_cl), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('make', [lambda: GloReConv(C, 4, normalize=True),
                                  lambda: LatentGNNConv(C, [4]),
                                  lambda: NonLocalConv(C)],
                         ids=['glore', 'latentgnn', 'nonlocal'])
def test_node_units_trace_with_equal_samples(make):
    """With ``batch_size`` concrete (equal samples), a node-level unit
    traces through; with PyG's ``batch`` it raises a ValueError that says
    how to trace it, and :class:`UnitTracer` keeps it a leaf."""
    unit = randomize(make(), 0, torch.float32).eval()
    traced = torch.fx.symbolic_trace(unit, concrete_args={
        'batch': None, 'ptr': None, 'batch_size': 3,
        'return_projection': False})
    assert _has_linear_nodes(traced)
    x = _x((12, C))
    torch.testing.assert_close(traced(x, None, None, 3),  # FX renames them
                               unit(x, batch_size=3), rtol=0, atol=0)

    with pytest.raises(ValueError, match=r"torch\.fx.*'batch' / 'ptr'.*"
                                         r"UnitTracer"):
        torch.fx.symbolic_trace(unit, concrete_args={
            'ptr': None, 'batch_size': None, 'return_projection': False})


class _CloudModel(torch.nn.Module):
    """A point-cloud model: a Linear, a unit on PyG's ``batch``, a Linear."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, C)
        self.unit = LatentGNNConv(C, [4])
        self.head = torch.nn.Linear(C, 2)

    def forward(self, x, batch):
        return self.head(self.unit(self.lin(x).relu(), batch))


def test_unit_tracer_keeps_units_as_leaves():
    model = randomize(_CloudModel(), 0, torch.float32).eval()
    graph = UnitTracer().trace(model)
    traced = torch.fx.GraphModule(model, graph)
    calls = [n.target for n in graph.nodes if n.op == 'call_module']
    assert calls == ['lin', 'unit', 'head']
    x = _x((10, 3))
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    torch.testing.assert_close(traced(x, batch), model(x, batch))
    # the leaf keeps its checks: a bad batch is still refused
    with pytest.raises(ValueError, match='sorted'):
        traced(x, batch.flip(0))
    assert UnitTracer().is_leaf_module(model.unit, 'unit')
    assert isinstance(model.unit, GlobalReasoningUnit)


@pytest.mark.parametrize('arch,units', [
    ('digits', {}),
    ('digits', {'layer1': 'nonlocal', 'layer2': 'glore',
                'layer3': 'latentgnn:d=16,graph_conv=1'}),
    ('resnet18', {}),
    ('resnet18', {'layer3.1': 'glore'}),
], ids=['digits', 'digits+units', 'resnet18', 'resnet18+glore'])
def test_backbones_with_inserted_units_trace(arch, units):
    """Regression: after ``insert_units`` tracing failed with "BatchNorm2d
    returned Proxy; a unit needs a feature map tensor", and the bundled
    ResNet could not be traced even without units."""
    in_channels = 1 if arch == 'digits' else 3
    torch.manual_seed(0)
    model = randomize(build_model(arch, in_channels, 5, units=units), 0,
                      torch.float32).eval()
    traced = torch.fx.symbolic_trace(model)
    x = _x((2, in_channels, 32, 32))
    torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


def test_fx_quantization_of_a_network_with_units():
    """FX-mode post-training quantization (int8, x86 backend) of the digits
    network with a GloRe and a LatentGNN unit: it prepares, calibrates,
    converts and runs; the logits stay within 10 % of float32's largest
    (measured 2.7 %)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.manual_seed(0)
    model = randomize(build_model('digits', 1, 2, units={
        'layer2': 'glore', 'layer3': 'latentgnn:d=16,graph_conv=1'}), 0,
        torch.float32).eval()
    x = _x((8, 1, 32, 32))
    ref = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # FX quantization's deprecation
        prepared = prepare_fx(model, get_default_qconfig_mapping('x86'),
                              example_inputs=(x, ))
        prepared(x)
        quantized = convert_fx(prepared)
    assert any(n.op == 'call_function' and 'quantize_per_tensor' in str(
        n.target) for n in quantized.graph.nodes)
    out = quantized(x)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max() / ref.abs().max() < 0.1

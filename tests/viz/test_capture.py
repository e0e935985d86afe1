"""glore_pyg.viz.capture: the arguments and projections of a unit inside a
network."""
import pytest
import torch
from torch import nn

from glore_pyg.apps.classification import (ResNet, insert_units,
                                           inserted_units)
from glore_pyg.apps.classification.resnet import BasicBlock
from glore_pyg.viz import unit_inputs, unit_projections


def network():
    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1], num_classes=3, in_channels=1,
                   width=4, stem='small')
    insert_units(model, {'layer2': 'latentgnn:d=4'})
    return model, inserted_units(model)['layer2']


def test_projections_of_the_units_input():
    model, unit = network()
    x = torch.randn(2, 1, 8, 8)
    args, projections = unit_projections(model, unit, lambda: model(x))
    assert args[0].shape == (2, 8, 4, 4)
    assert len(projections) == 1
    assert projections[0].latent_graph.shape == (2, 4, 4)
    (again,), _ = unit_inputs(unit, lambda: model.eval()(x))
    torch.testing.assert_close(again, args[0])


def test_each_modules_own_mode_restored():
    model, unit = network()
    model.train()
    model.bn1.eval()  # a BatchNorm frozen by the user
    modes = [(name, m.training) for name, m in model.named_modules()]
    stats = model.layer1[0].bn1.running_mean.clone()
    unit_projections(model, unit, lambda: model(torch.randn(2, 1, 8, 8)))
    assert [(name, m.training) for name, m in model.named_modules()] == modes
    # the run was in eval mode: no running statistics moved
    torch.testing.assert_close(model.layer1[0].bn1.running_mean, stats,
                               rtol=0, atol=0)


def test_errors():
    model, unit = network()
    with pytest.raises(TypeError, match="'model'"):
        unit_projections('model', unit, lambda: None)
    with pytest.raises(ValueError, match='did not call'):
        unit_projections(model, unit, lambda: None)
    assert model.training
    with pytest.raises(TypeError, match="'run'"):
        unit_inputs(unit, 3)
    with pytest.raises(TypeError, match="'unit'"):
        unit_inputs(nn, lambda: None)

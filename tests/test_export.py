"""``torch.export.export`` works on the grid units and the node-level layers,
and the exported programs compute what the modules compute."""
import copy

import pytest
import torch

from glore_pyg.nn import (GloRe1d, GloRe2d, GloRe3d, GloReConv, LatentGNN1d,
                          LatentGNN2d, LatentGNN3d, LatentGNNConv,
                          NonLocalConv)
from tests.weights import randomize

C = 8
GRID = [
    pytest.param(GloRe1d, dict(num_mid=3), (9, ), id='GloRe1d'),
    pytest.param(GloRe2d, dict(num_mid=3, normalize=True), (5, 7),
                 id='GloRe2d'),
    pytest.param(GloRe3d, dict(num_mid=3), (2, 3, 4), id='GloRe3d'),
    pytest.param(LatentGNN1d, dict(latent_dims=[4]), (9, ), id='LatentGNN1d'),
    pytest.param(LatentGNN2d, dict(latent_dims=[4, 3], graph_conv=True),
                 (5, 7), id='LatentGNN2d'),
    pytest.param(LatentGNN2d, dict(latent_dims=[4], mode='symmetric'),
                 (4, 4), id='LatentGNN2d-sym'),
    pytest.param(LatentGNN3d, dict(latent_dims=[4]), (2, 3, 4),
                 id='LatentGNN3d'),
]


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def unit(cls, kwargs, training):
    return randomize(cls(C, **kwargs), dtype=torch.float32).train(training)


def check(module, program, args, kwargs=None, buffers=True):
    """The exported program computes what (a copy of) the module computes,
    including the BatchNorm statistics it updates in training mode."""
    ref = copy.deepcopy(module)
    exported = program.module()
    torch.testing.assert_close(exported(*args, **(kwargs or {})),
                               ref(*args, **(kwargs or {})))
    if buffers:
        for (name, a), b in zip(exported.named_buffers(), ref.buffers()):
            torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('cls, kwargs, spatial', GRID)
def test_export_grid_units(cls, kwargs, spatial, training):
    module = unit(cls, kwargs, training)
    x = randn(3, C, *spatial)
    program = torch.export.export(copy.deepcopy(module), (x, ))
    check(module, program, (x, ))


@pytest.mark.parametrize('cls, kwargs, spatial', GRID[1:2] + GRID[4:5])
def test_export_grid_units_dynamic_shapes(cls, kwargs, spatial):
    """One program for any batch size and image size."""
    module = unit(cls, kwargs, False)
    batch, height = torch.export.Dim('batch'), torch.export.Dim('height')
    program = torch.export.export(
        copy.deepcopy(module), (randn(3, C, *spatial), ),
        dynamic_shapes={'x': {0: batch, 2: height}})
    for shape in [(2, C, 6, spatial[1]), (5, C, 3, spatial[1])]:
        check(module, program, (randn(*shape, seed=1), ))


NODE = [
    pytest.param(GloReConv, dict(num_mid=3, normalize=True), id='GloReConv'),
    pytest.param(LatentGNNConv, dict(latent_dims=[4, 3]),
                 id='LatentGNNConv'),
    pytest.param(LatentGNNConv, dict(latent_dims=[4], mode='symmetric',
                                     graph_conv=True), id='LatentGNNConv-sym'),
    pytest.param(NonLocalConv, dict(), id='NonLocalConv'),
]


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('cls, kwargs', NODE)
def test_export_node_layers(cls, kwargs, training):
    module = unit(cls, kwargs, training)
    x = randn(24, C)
    # one point cloud
    check(module, torch.export.export(copy.deepcopy(module), (x, )), (x, ))
    # a batch of equally sized clouds
    program = torch.export.export(copy.deepcopy(module), (x, ),
                                  dict(batch_size=3))
    check(module, program, (x, ), dict(batch_size=3))


@pytest.mark.parametrize('cls, kwargs', NODE)
def test_export_node_layers_dynamic_number_of_points(cls, kwargs):
    module = unit(cls, kwargs, False)
    program = torch.export.export(
        copy.deepcopy(module), (randn(24, C), ),
        dynamic_shapes={'x': {0: torch.export.Dim('points', min=2)}})
    for n in (7, 50):
        check(module, program, (randn(n, C, seed=n), ))


@pytest.mark.parametrize('how', ['batch', 'ptr'])
def test_export_with_sample_sizes_from_data_is_refused_clearly(how):
    module = unit(LatentGNNConv, dict(latent_dims=[4]), False)
    x = randn(10, C)
    layout = (dict(batch=torch.tensor([0] * 4 + [1] * 6)) if how == 'batch'
              else dict(ptr=torch.tensor([0, 4, 10])))
    with pytest.raises(ValueError, match=r"torch\.export: the sample sizes "
                       r"in 'batch' / 'ptr' are data"):
        torch.export.export(module, (x, ), layout)
    module(x, **layout)  # eager use is unaffected

import copy

import pytest
import torch
from torch import nn

from glore_pyg.nn import (GloRe2d, GloReConv, GridUnit, LatentGNN1d,
                          LatentGNN2d, LatentGNNConv, NonLocal2d)
from glore_pyg.apps.classification import (InsertedUnit, ResNet, insert_units,
                              inserted_units, load_backbone_weights,
                              read_output_shape, remove_units, resnet18,
                              resnet50, unit_overhead)
from glore_pyg.apps.classification.resnet import BasicBlock
from tests.torchvision_models import torchvision_models


def small_resnet(**kw):
    return ResNet(BasicBlock, [1, 1, 1], num_classes=5, in_channels=1,
                  width=8, stem='small', **kw)


def _perturb(model):
    """Non-trivial BatchNorm statistics and affine parameters, as in a
    trained network."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('spec', ['glore', 'latentgnn:d=4,kernels=2',
                                  'nonlocal'])
def test_outputs_unchanged_right_after_insertion(train, spec):
    model = small_resnet()
    _perturb(model)
    model.train(train)
    reference = copy.deepcopy(model)
    x = torch.randn(3, 1, 16, 16)
    insert_units(model, ['layer1.0', 'layer2', 'layer3.0.bn2'], spec)
    assert len(inserted_units(model)) == 3
    assert all(u.training == train for u in inserted_units(model).values())
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    if train:  # the backbone's BatchNorm statistics moved alike
        torch.testing.assert_close(model.bn1.running_mean,
                                   reference.bn1.running_mean)


def test_units_change_the_output_once_trained():
    model = insert_units(small_resnet().eval(), 'layer3')
    reference = copy.deepcopy(model)
    unit = inserted_units(model)['layer3']
    for p in unit.parameters():  # e.g. a non-zero scale of the last norm
        p.data.add_(0.1)
    x = torch.randn(2, 1, 16, 16)
    assert (model(x) - reference(x)).abs().max() > 1e-4


def test_channels_and_kinds_read_from_the_modules():
    model = resnet18(num_classes=10)
    insert_units(model, {'layer1': 'nonlocal', 'layer2.1': 'latentgnn',
                         'layer3.0.conv1': 'glore', 'layer4.1.bn2': 'glore',
                         'layer4.0.downsample': 'latentgnn:d=8'})
    units = inserted_units(model)
    assert [type(u) for u in units.values()] == [
        NonLocal2d, LatentGNN2d, GloRe2d, LatentGNN2d, GloRe2d]
    assert [u.in_channels for u in units.values()] == [64, 128, 256, 512,
                                                       512]
    assert isinstance(model.layer2[1], InsertedUnit)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_bottleneck_and_torchvision_style_names():
    model = resnet50(num_classes=3)
    assert read_output_shape(model.layer3[2]) == (1024, 2)  # its bn3
    assert read_output_shape(model.layer4) == (2048, 2)
    assert read_output_shape(model.relu) is None
    assert read_output_shape(nn.Sequential(nn.Conv1d(2, 7, 3), nn.ReLU(),
                                           nn.Dropout())) == (7, 1)


class Opaque(nn.Module):
    """A module whose output channels cannot be read from its layers."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(4, 6, 3, padding=1)
        self.b = nn.Conv1d(4, 6, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def test_dry_run_measures_what_cannot_be_read():
    model = nn.Sequential(Opaque(), nn.ReLU(), nn.Conv1d(12, 2, 1))
    with pytest.raises(ValueError, match="pass 'example_input'"):
        insert_units(model, '0')
    model.train()
    insert_units(model, '0', 'latentgnn:d=4',
                 example_input=torch.randn(2, 4, 9))
    unit = inserted_units(model)['0']
    assert isinstance(unit, LatentGNN1d) and unit.in_channels == 12
    assert model.training  # the dry run restored the mode
    assert model(torch.randn(2, 4, 9)).shape == (2, 2, 9)


def test_pretrained_state_dict_loads_strictly_after_insertion():
    trained = small_resnet()
    _perturb(trained)
    state = trained.state_dict()
    model = insert_units(small_resnet(), {'layer2': 'glore',
                                          'layer3.0': 'latentgnn:d=4'})
    before = {k: v.clone() for k, v in inserted_units(model)['layer2']
              .state_dict().items()}
    model.load_state_dict(state)  # strict: the units keep their state
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(model.eval()(x), trained.eval()(x))
    for k, v in inserted_units(model)['layer2'].state_dict().items():
        torch.testing.assert_close(v, before[k])
    # a checkpoint of the model with units round-trips, units included
    with torch.no_grad():
        for p in inserted_units(model)['layer2'].parameters():
            p.add_(1.0)
    again = insert_units(small_resnet(), {'layer2': 'glore',
                                          'layer3.0': 'latentgnn:d=4'})
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.eval()(x), model(x))


UNITS = {'layer2': 'glore', 'layer3.0': 'latentgnn:d=4',
         'layer1.0': 'nonlocal'}


def _trained_units(model):
    """Non-zero units, as after training (BatchNorm scales, gamma)."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for unit in inserted_units(model).values():
            for p in unit.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def _old_layout(state):
    """The keys of a checkpoint saved when the grid adapters were their
    unit: ``layer2.unit.norm.weight``, not ``layer2.unit.unit.norm.weight``.
    """
    return {k.replace('.unit.unit.', '.unit.'): v for k, v in state.items()}


def test_checkpoint_with_units_of_the_old_layout_loads_strictly():
    model = _trained_units(insert_units(small_resnet(), UNITS))
    _perturb(model)
    state = model.state_dict()
    assert any('.unit.unit.' in k for k in state)
    old = _old_layout(state)
    assert not any('.unit.unit.' in k for k in old)
    fresh = insert_units(small_resnet(), UNITS)
    result = fresh.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k
    x = torch.randn(2, 1, 16, 16)
    for train in (False, True):
        torch.testing.assert_close(fresh.train(train)(x),
                                   model.train(train)(x), rtol=0, atol=0)


def test_lightning_checkpoint_of_the_old_layout_loads(tmp_path):
    """A classifier's Lightning checkpoint (``state_dict`` under
    ``model.``) from before the adapters wrapped their unit."""
    lightning = pytest.importorskip('lightning')
    from glore_pyg.apps.classification.task import ClassificationTask
    task = ClassificationTask('digits', units=UNITS, num_classes=3)
    _trained_units(task.model)
    _perturb(task.model)
    path = tmp_path / 'old.ckpt'
    torch.save({'state_dict': _old_layout(task.state_dict()),
                'hyper_parameters': dict(task.hparams),
                'pytorch-lightning_version': lightning.__version__,
                'epoch': 0, 'global_step': 0}, path)
    loaded = ClassificationTask.load_from_checkpoint(path, strict=True,
                                                     weights_only=False)
    assert set(loaded.state_dict()) == set(task.state_dict())
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, task.state_dict()[k]), k
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(loaded.eval()(x), task.eval()(x), rtol=0,
                               atol=0)


def test_inserted_unit_takes_grid_adapters():
    with pytest.raises(TypeError, match="'unit' must be a grid adapter"):
        InsertedUnit(nn.Conv2d(3, 8, 1), GloReConv(8, 2))
    unit = GridUnit(LatentGNNConv(8, [2]), dims=2)
    inserted = InsertedUnit(nn.Conv2d(3, 8, 1), unit)
    assert inserted(torch.randn(2, 3, 4, 4)).shape == (2, 8, 4, 4)


def test_indexing_passes_through_and_dtype_device_follow():
    model = small_resnet().double()
    insert_units(model, 'layer2')
    assert model.layer2[0] is model.layer2.module[0]
    assert len(model.layer2) == 1
    unit = inserted_units(model)['layer2']
    assert next(unit.parameters()).dtype == torch.float64
    assert model(torch.randn(1, 1, 8, 8, dtype=torch.float64)).dtype == \
        torch.float64


def test_nested_points():
    model = small_resnet()
    insert_units(model, ['layer2', 'layer2.0'])
    assert set(inserted_units(model)) == {'layer2', 'layer2.module.0'}
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 5)


def test_errors():
    model = small_resnet()
    with pytest.raises(ValueError, match="close names.*'layer3'"):
        insert_units(model, 'layer33')
    with pytest.raises(ValueError, match="'points' is empty"):
        insert_units(model, [])
    with pytest.raises(TypeError, match="'points'"):
        insert_units(model, 3)
    with pytest.raises(TypeError, match="'model'"):
        insert_units('resnet', 'layer1')
    with pytest.raises(ValueError, match="Unknown unit 'attention'"):
        insert_units(model, 'layer1', 'attention')
    with pytest.raises(ValueError, match='module names'):
        insert_units(model, [''])
    with pytest.raises(ValueError, match='not a feature map|feature map'):
        insert_units(model, 'fc', example_input=torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match='was not called'):
        m = Opaque()  # forward never calls m.unused
        m.unused = nn.Conv1d(6, 6, 1)
        insert_units(m, 'unused', example_input=torch.randn(1, 4, 5))
    insert_units(model, 'layer1')
    with pytest.raises(ValueError, match='already has a unit'):
        insert_units(model, 'layer1')
    # nothing was inserted by the failed calls
    assert list(inserted_units(model)) == ['layer1']


def test_overhead_against_hand_count():
    model = small_resnet()
    insert_units(model, {'layer3': 'glore:num_mid=4'})
    report = unit_overhead(model, (1, 1, 16, 16))
    (row,) = report.rows
    # GloRe on C=32 channels, d=4 nodes, 2d=8 state channels, L=4*4
    # positions: theta (C->d) and phi (C->2d) over L rows, V = B^T phi
    # (d x L x 2d), node conv (d x d over 2d), state conv (2d x 2d over d),
    # back-projection B Z (L x d x 2d), extension (2d -> C over L)
    C, d, s, L = 32, 4, 8, 16
    macs = L * C * d + L * C * s + d * L * s + d * d * s + d * s * s + \
        L * d * s + L * s * C
    assert row['flops'] == 2 * macs and row['macs'] == macs
    assert row['params'] == sum(p.numel() for p in
                                inserted_units(model)['layer3'].parameters())
    base = unit_overhead(small_resnet(), (1, 1, 16, 16))
    assert report.base_flops == base.total_flops
    assert report.base_params == base.total_params
    # the table in the papers' unit: multiply-adds
    assert '| +Params | +GMACs |' in report.table()
    assert f"| layer3 | GloRe2d | 32 | {row['params'] / 1e6:.3f}M | " \
        f"{macs / 1e9:.4f} |" in report.table()
    assert report.total_macs * 2 == report.total_flops
    with pytest.raises(ValueError, match=r"^'example_input\[1\]' must be an "
                       r"int >= 1, got 0$"):
        unit_overhead(model, (1, 0, 3))
    with pytest.raises(TypeError, match=r"^'example_input\[2\]' must be an "
                       r"int >= 1, got float 3\.0$"):
        unit_overhead(model, (1, 1, 3.0, 3))
    with pytest.raises(ValueError, match=r"^'example_input' must be a "
                       r"non-empty sequence of ints >= 1 \(a shape, or give "
                       r"a tensor\), got \(\)$"):
        unit_overhead(model, ())
    with pytest.raises(TypeError, match=r"^'example_input' must be a "
                       r"non-empty sequence .*, got int 4$"):
        unit_overhead(model, 4)


@pytest.mark.torchvision
def test_torchvision_resnet_when_importable():
    tvm = torchvision_models()
    model = tvm.resnet50(num_classes=7).eval()
    _perturb(model)
    reference = copy.deepcopy(model)
    insert_units(model, {'layer3.1': 'glore', 'layer4': 'latentgnn:d=8'})
    assert [u.in_channels for u in inserted_units(model).values()] == [
        1024, 2048]
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    model.load_state_dict(reference.state_dict())  # a torchvision checkpoint


def test_remove_units_restores_the_plain_model():
    plain = small_resnet()
    _perturb(plain)
    keys = list(plain.state_dict())
    model = insert_units(copy.deepcopy(plain), ['layer2', 'layer2.0',
                                                'layer3.0.bn2'])
    removed = remove_units(model)
    assert set(removed) == {'layer2', 'layer2.module.0', 'layer3.0.bn2'}
    assert list(model.state_dict()) == keys and inserted_units(model) == {}
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(model.eval()(x), plain.eval()(x))
    assert remove_units(model) == {}
    assert 'network with units' in repr(unit_overhead(model, (1, 1, 8, 8)))


def _frozen_bn(model):
    """``model`` in training mode with its stem's BatchNorm frozen in eval
    mode, and every module's mode by identity."""
    model.train()
    model.bn1.eval()
    return {m: m.training for m in model.modules()}


def _assert_modes(model, modes):
    for m, training in modes.items():
        assert m.training == training, type(m).__name__
    assert model.training and not model.bn1.training


def test_dry_run_keeps_each_modules_own_mode():
    model = small_resnet()
    modes = _frozen_bn(model)
    insert_units(model, 'layer2', example_input=torch.randn(1, 1, 8, 8))
    _assert_modes(model, modes)
    assert inserted_units(model)['layer2'].training


def test_overhead_keeps_each_modules_own_mode():
    model = insert_units(small_resnet(), 'layer2')
    modes = _frozen_bn(model)
    unit_overhead(model, (1, 1, 8, 8))
    _assert_modes(model, modes)


def _variants(state):
    """State dicts that a strict load of the plain model accepts or not."""
    plain = dict(state)  # a plain dict keeps no metadata (version None)
    without_nbt = {k: v for k, v in plain.items()
                   if not k.endswith('num_batches_tracked')}
    versioned = copy.copy(state)  # keeps _metadata: BatchNorm version 2
    del versioned['bn1.num_batches_tracked']
    return {
        'full': (state, True),
        'no num_batches_tracked, plain dict': (without_nbt, True),
        'no num_batches_tracked, version 2': (versioned, False),
        'no running_mean': ({k: v for k, v in without_nbt.items()
                             if k != 'layer2.0.bn1.running_mean'}, False),
        'unknown key': (dict(plain, **{'head.weight': torch.ones(1)}),
                        False),
    }


@pytest.mark.parametrize('case', list(_variants(small_resnet().state_dict())))
def test_backbone_weights_accepted_as_a_strict_load_accepts(case, tmp_path):
    trained = small_resnet()
    _perturb(trained)
    trained.layer1[0].bn1.num_batches_tracked.fill_(7)
    state, accepted = _variants(trained.state_dict())[case]
    strict = small_resnet()
    try:
        strict.load_state_dict(state, strict=True)
    except RuntimeError:
        assert not accepted
    else:
        assert accepted
    model = insert_units(small_resnet(), {'layer2': 'glore',
                                          'layer3.0': 'latentgnn:d=4'})
    units = {k: v.clone() for k, v in model.state_dict().items()
             if '.unit.' in k}
    if not accepted:
        missing = ('layer2.0.bn1.running_mean' if 'running' in case else
                   'bn1.num_batches_tracked')
        match = 'head.weight' if 'unknown' in case else missing
        with pytest.raises(ValueError, match=match):
            load_backbone_weights(model, state)
        return
    torch.save(state, tmp_path / 'w.pt')
    assert load_backbone_weights(model, tmp_path / 'w.pt') == dict(
        skipped=[])
    # the same weights as the strict load, buffers included; units untouched
    plain = {k.replace('.module.', '.'): v
             for k, v in model.state_dict().items() if '.unit.' not in k}
    assert plain.keys() == strict.state_dict().keys()
    for k, v in strict.state_dict().items():
        torch.testing.assert_close(plain[k], v, rtol=0, atol=0)
    for k, v in units.items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(model.eval()(x), strict.eval()(x))

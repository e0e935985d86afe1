"""Units in torchvision's own ResNets (``weights=None``: nothing is
downloaded).  Run by ``.ci/run``'s second stage (``pytest -m torchvision``
in a venv with torchvision); skipped where torchvision does not load."""
import copy

import pytest
import torch
from torch import nn

from glore_pyg.apps.classification import (insert_units, inserted_units,
                                           load_backbone_weights,
                                           remove_units, resnet18, resnet50,
                                           unit_overhead)
from tests.torchvision_models import torchvision_models

pytestmark = pytest.mark.torchvision

# GloRe's ResNet-50 setup (3 units in Res4) plus one of each other kind
POINTS = {
    'resnet18': {'layer2.0': 'nonlocal', 'layer3.1': 'glore',
                 'layer4': 'latentgnn:d=8,kernels=2'},
    'resnet50': {'layer3.1': 'glore', 'layer3.3': 'glore',
                 'layer3.5': 'glore', 'layer4.0.bn3': 'latentgnn:d=8'},
}
CHANNELS = {'resnet18': [128, 256, 512], 'resnet50': [1024, 1024, 1024, 2048]}
OURS = {'resnet18': resnet18, 'resnet50': resnet50}


def trained(name, num_classes=1000, seed=0):
    """A torchvision ResNet with the BatchNorm statistics and affine
    parameters of a trained network (random, seeded)."""
    torch.manual_seed(seed)
    model = getattr(torchvision_models(), name)(weights=None,
                                                num_classes=num_classes)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.num_batches_tracked.fill_(100)
    return model


def image(batch=2, size=64, seed=2):
    return torch.randn(batch, 3, size, size,
                       generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('name', ['resnet18', 'resnet50'])
def test_identity_at_insertion(name, train):
    model = trained(name).train(train)
    reference = copy.deepcopy(model)
    insert_units(model, POINTS[name])
    units = inserted_units(model)
    assert list(units) == list(POINTS[name])
    assert [u.in_channels for u in units.values()] == CHANNELS[name]
    assert all(u.training == train for u in units.values())
    x = image()
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    if train:  # the backbone's BatchNorm statistics moved alike
        torch.testing.assert_close(model.layer3[1].module.bn1.running_mean,
                                   reference.layer3[1].bn1.running_mean,
                                   rtol=0, atol=0)


@pytest.mark.parametrize('name', ['resnet18', 'resnet50'])
def test_checkpoint_saved_before_insertion_loads_strictly(name, tmp_path):
    source = trained(name, seed=5)
    torch.save(source.state_dict(), tmp_path / f'{name}.pt')
    model = insert_units(trained(name, seed=7), POINTS[name])
    units = {k: v.clone() for k, v in model.state_dict().items()
             if '.unit.' in k}
    result = model.load_state_dict(torch.load(tmp_path / f'{name}.pt',
                                              weights_only=True),
                                   strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in units.items():  # the units keep their (identity) state
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    x = image()
    torch.testing.assert_close(model.eval()(x), source.eval()(x), rtol=0,
                               atol=0)


@pytest.mark.parametrize('name', ['resnet18', 'resnet50'])
def test_remove_units_gives_back_the_original(name):
    model = trained(name).eval()
    reference = copy.deepcopy(model)
    structure = [(n, type(m)) for n, m in model.named_modules()]
    insert_units(model, POINTS[name])
    with torch.no_grad():  # trained units change the output ...
        for unit in inserted_units(model).values():
            for p in unit.parameters():
                p.add_(0.05)
    x = image()
    assert not torch.allclose(model(x), reference(x))
    removed = remove_units(model)  # ... and go away with remove_units
    assert list(removed) == list(POINTS[name])
    assert [(n, type(m)) for n, m in model.named_modules()] == structure
    assert repr(model) == repr(reference)
    assert list(model.state_dict()) == list(reference.state_dict())
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    # a torchvision model without units loads the checkpoint strictly
    fresh = getattr(torchvision_models(), name)(weights=None)
    fresh.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize('name', ['resnet18', 'resnet50'])
def test_backbone_weights_into_glore_pyg_resnet(name):
    theirs = trained(name, seed=3).eval()
    x = image()
    # same classes: every tensor is loaded, the outputs are torchvision's
    ours = insert_units(OURS[name](num_classes=1000), POINTS[name]).eval()
    assert load_backbone_weights(ours, theirs.state_dict()) == dict(
        skipped=[])
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    # another number of classes: the classifier is left out and reported
    ours = insert_units(OURS[name](num_classes=10), POINTS[name]).eval()
    fc = ours.fc.weight.clone()
    report = load_backbone_weights(ours, theirs.state_dict())
    assert report == dict(skipped=['fc.weight', 'fc.bias'])
    assert torch.equal(ours.fc.weight, fc)
    torch.testing.assert_close(ours.layer4[-1].conv1.weight,
                               theirs.layer4[-1].conv1.weight)
    # a checkpoint without num_batches_tracked (as torchvision's older
    # ImageNet weights): accepted, as by a strict load
    old = {k: v for k, v in theirs.state_dict().items()
           if not k.endswith('num_batches_tracked')}
    plain = OURS[name](num_classes=1000)
    plain.load_state_dict(old, strict=True)
    ours = insert_units(OURS[name](num_classes=1000), POINTS[name]).eval()
    assert load_backbone_weights(ours, old) == dict(skipped=[])
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_unit_overhead_of_glores_resnet50_setup():
    model = insert_units(trained('resnet50'), POINTS['resnet50'])
    model.train()
    model.bn1.eval()  # a frozen BatchNorm stays frozen
    report = unit_overhead(model, (1, 3, 224, 224))
    assert model.training and not model.bn1.training
    assert [r['name'] for r in report.rows] == list(POINTS['resnet50'])
    # torchvision lists ResNet-50 at 4.09 GFLOPS (multiply-adds) and
    # 25.56M parameters; a multiply-add counts 2 here
    assert report.base_flops / 2 / 1e9 == pytest.approx(4.09, rel=0.01)
    assert report.base_macs / 1e9 == pytest.approx(4.09, rel=0.01)
    assert report.base_params == 25_557_032
    assert all(r['flops'] > 0 and r['params'] > 0 for r in report.rows)


@pytest.mark.parametrize('name', ['resnet18', 'resnet50'])
def test_create_feature_extractor_with_units(name):
    """torchvision's ``create_feature_extractor`` (torch.fx) on its own
    ResNet with units inserted (issue 23): the extracted stage outputs are
    the units' outputs, equal to the model's own forward hooks' values."""
    model = trained(name, num_classes=10).eval()  # skips without one
    from torchvision.models.feature_extraction import (
        create_feature_extractor)
    insert_units(model, POINTS[name])
    x = image()
    with torch.no_grad():
        for unit in inserted_units(model).values():
            for p in unit.parameters():  # open the zero-initialised scales
                if not p.any():
                    p.fill_(0.5)
            # the units' BatchNorm statistics of these activations, as
            # training would leave them (GloRe's branch is cubic in the
            # input's scale: with fresh statistics it overflows)
            for m in unit.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 1.0
            unit.train()
            model(x)
            unit.eval()
    seen = {}
    hooks = [getattr(model, stage).register_forward_hook(
        lambda m, i, o, stage=stage: seen.__setitem__(stage, o))
        for stage in ('layer2', 'layer3', 'layer4')]
    logits = model(x)
    for h in hooks:
        h.remove()
    extractor = create_feature_extractor(
        model, return_nodes={'layer2': 'layer2', 'layer3': 'layer3',
                             'layer4': 'layer4', 'fc': 'logits'})
    out = extractor(x)
    assert torch.isfinite(logits).all()
    plain = copy.deepcopy(model)
    remove_units(plain)
    assert not torch.allclose(plain(x), logits)  # the units are active
    torch.testing.assert_close(out['logits'], logits)
    for stage in ('layer2', 'layer3', 'layer4'):
        torch.testing.assert_close(out[stage], seen[stage])

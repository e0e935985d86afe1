"""PointNet++ segmentation with units inserted after chosen levels."""
import pytest
import torch

from glore_pyg.nn import GloReConv, LatentGNNConv
from glore_pyg.apps.segmentation.pointnet2 import (PointNet2Segmentation,
                                            SetAbstractionSpec, complexity)

SA = [SetAbstractionSpec(0.5, 0.5, (8, 16), 8),
      SetAbstractionSpec(0.5, 1.0, (16, 16), 8)]
FP = [(2, (16, )), (2, (8, 8))]


def clouds(sizes=(40, 30), features=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(sum(sizes), 3, generator=g)
    x = torch.rand(sum(sizes), features, generator=g) if features else None
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    return pos, x, batch


def model(units=None, features=2, seed=0):
    torch.manual_seed(seed)
    return PointNet2Segmentation(features, 5, sa=SA, fp=FP, units=units)


def test_shapes_and_backward():
    net = model({'sa2': 'latentgnn:d=4', 'fp1': 'glore:num_mid=2'})
    pos, x, batch = clouds()
    out = net(pos, x, batch)
    assert out.shape == (70, 5)
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters()
               if p.requires_grad and p.dim() > 1)
    assert isinstance(net.units['sa2'], LatentGNNConv)
    assert isinstance(net.units['fp1'], GloReConv)
    assert net.level_channels == {'sa1': 16, 'sa2': 16, 'fp2': 16, 'fp1': 8}
    # positions only
    net = model(features=0)
    assert net(*clouds(features=0)[:1], batch=None).shape == (70, 5)


def test_units_start_as_the_identity():
    base = model().eval()
    for units in ({'sa1': 'nonlocal'}, {'sa2': 'latentgnn:kernels=2,d=3',
                                        'fp2': 'glore:num_mid=2'}):
        net = model(units).eval()
        missing, unexpected = net.load_state_dict(base.state_dict(),
                                                  strict=False)
        assert not unexpected and all(k.startswith('units.') for k in
                                      missing)
        pos, x, batch = clouds()
        torch.testing.assert_close(net(pos, x, batch), base(pos, x, batch))


def test_clouds_do_not_mix_in_eval():
    net = model({'sa1': 'latentgnn:d=4', 'sa2': 'nonlocal'}).eval()
    for unit in net.units.values():  # make the units non-trivial
        torch.nn.init.normal_(unit.norm.weight if hasattr(unit, 'norm')
                              else unit.up[1].weight)
        if hasattr(unit, 'gamma'):
            unit.gamma.data.fill_(1.0)
    pos, x, batch = clouds()
    out = net(pos, x, batch)
    pos2, x2 = pos.clone(), x.clone()
    pos2[40:] = torch.rand(30, 3)  # change the second cloud only
    x2[40:] = torch.rand(30, 2)
    out2 = net(pos2, x2, batch)
    torch.testing.assert_close(out2[:40], out[:40])
    assert not torch.allclose(out2[40:], out[40:])


def test_complexity_counts_the_units():
    base = complexity(model(), 64)
    net = model({'sa2': 'latentgnn:d=4'})
    with_unit = complexity(net, 64)
    assert with_unit['params'] - base['params'] == sum(
        p.numel() for p in net.units.parameters())
    assert with_unit['flops'] > base['flops'] > 0
    assert net.training  # mode restored


@pytest.mark.parametrize('kwargs, match', [
    (dict(units={'sa9': 'glore'}), r"Unknown level 'sa9'"),
    (dict(units={'sa1': 'mlp'}), r"Unknown unit 'mlp'"),
    (dict(preset='huge'), r"'preset' must be one of"),
    (dict(sa=SA, fp=FP[:1]), r"'fp' needs one level per 'sa' level"),
])
def test_errors(kwargs, match):
    kw = dict(sa=SA, fp=FP)
    kw.update(kwargs)
    if 'preset' in kwargs:
        kw.pop('sa'), kw.pop('fp')
    with pytest.raises(ValueError, match=match):
        PointNet2Segmentation(2, 5, **kw)


@pytest.mark.parametrize('in_channels, num_classes, error, match', [
    (-1, 5, ValueError, "^'in_channels' must be an int >= 0, got -1$"),
    (2, 0, ValueError, "^'num_classes' must be an int >= 1, got 0$"),
    (2.0, 5, TypeError, r"^'in_channels' must be an int >= 0, got float "
     r"2\.0$"),
    (2, True, TypeError, "^'num_classes' must be an int >= 1, got bool "
     "True$"),
    (2, '5', TypeError, "^'num_classes' must be an int >= 1, got str '5'$"),
])
def test_size_errors(in_channels, num_classes, error, match):
    with pytest.raises(error, match=match):
        PointNet2Segmentation(in_channels, num_classes, sa=SA, fp=FP)


def test_input_errors():
    net = model()
    pos, x, batch = clouds()
    with pytest.raises(ValueError, match=r"'pos' must be \[N, 3\]"):
        net(pos[:, :2], x, batch)
    with pytest.raises(ValueError, match=r"'x' must be \[N, 2\]"):
        net(pos, None, batch)


def test_repr():
    assert repr(model({'sa1': 'glore'})) == (
        "PointNet2Segmentation(2, 5, levels=2, units={sa1='glore'})")


def test_complexity_keeps_each_modules_own_mode():
    net = model({'sa2': 'latentgnn:d=4'}).train()
    frozen = next(m for m in net.modules()
                  if isinstance(m, torch.nn.BatchNorm1d))
    frozen.eval()  # fine-tuning with frozen statistics
    modes = [(m, m.training) for m in net.modules()]
    complexity(net, 64)
    assert [(m, m.training) for m in net.modules()] == modes
    assert net.training and not frozen.training

"""glore_pyg.apps.classification.resnet: torchvision-compatible ResNet backbones."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from glore_pyg.apps.classification.resnet import (BasicBlock, Bottleneck, ResNet,
                                     resnet18, resnet50)
from tests.torchvision_models import torchvision_models

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var',
           'num_batches_tracked')


def _meta(fn, **kwargs):
    """Builds on the meta device: shapes and keys without the init cost."""
    with torch.device('meta'):
        return fn(**kwargs)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def _bn(prefix):
    return {f'{prefix}.{k}' for k in BN_KEYS}


def _expected_keys(layers, bottleneck):
    """The torchvision naming rules, written out independently."""
    keys = {'conv1.weight', 'fc.weight', 'fc.bias'} | _bn('bn1')
    convs = 3 if bottleneck else 2
    for i, blocks in enumerate(layers, start=1):
        for j in range(blocks):
            p = f'layer{i}.{j}'
            for c in range(1, convs + 1):
                keys |= {f'{p}.conv{c}.weight'} | _bn(f'{p}.bn{c}')
            if j == 0 and (i > 1 or bottleneck):
                keys |= {f'{p}.downsample.0.weight'}
                keys |= _bn(f'{p}.downsample.1')
    return keys


def test_parameter_counts_match_torchvision():
    assert _n_params(_meta(resnet18, num_classes=1000)) == 11_689_512
    assert _n_params(_meta(resnet50)) == 25_557_032


def test_state_dict_keys():
    m18 = _meta(resnet18)
    keys = set(m18.state_dict())
    assert keys == _expected_keys([2, 2, 2, 2], bottleneck=False)
    for k in ('conv1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight',
              'layer2.0.downsample.0.weight',
              'layer2.0.downsample.1.num_batches_tracked', 'fc.bias'):
        assert k in keys
    assert 'layer1.0.downsample.0.weight' not in keys
    assert m18.layer1[0].downsample is None
    m50 = _meta(resnet50)
    assert set(m50.state_dict()) == _expected_keys([3, 4, 6, 3], True)
    # torchvision's shapes for a few keys
    sd = m50.state_dict()
    assert sd['conv1.weight'].shape == (64, 3, 7, 7)
    assert sd['layer1.0.downsample.0.weight'].shape == (256, 64, 1, 1)
    assert sd['layer2.0.conv2.weight'].shape == (128, 128, 3, 3)  # v1.5
    assert m50.layer2[0].conv2.stride == (2, 2)
    assert m50.layer2[0].conv1.stride == (1, 1)
    assert sd['fc.weight'].shape == (1000, 2048)


def test_attributes_and_stages():
    m = _meta(resnet50, num_classes=7)
    assert m.stage_channels == [256, 512, 1024, 2048]
    assert m.out_channels == 2048 and m.fc.out_features == 7
    assert isinstance(m.relu, nn.ReLU) and m.relu.inplace
    assert isinstance(m.maxpool, nn.MaxPool2d)
    assert isinstance(m.avgpool, nn.AdaptiveAvgPool2d)
    assert [len(s) for s in m.stages] == [3, 4, 6, 3]
    b = m.layer3[0]
    assert type(b) is Bottleneck and b.stride == 2 and b.out_channels == 1024
    assert Bottleneck.expansion == 4 and BasicBlock.expansion == 1
    m = _meta(ResNet, block=BasicBlock, layers=[1, 1, 1, 1, 1], width=8,
              stem='small')
    assert m.stage_channels == [8, 16, 32, 64, 128]
    assert isinstance(m.maxpool, nn.Identity)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert hasattr(m, 'layer5') and not hasattr(m, 'layer6')


def _randomize_bn(module, gen):
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.weight.data = torch.rand(c, generator=gen) + 0.5
            bn.bias.data = torch.randn(c, generator=gen)
            bn.running_mean.copy_(torch.randn(c, generator=gen))
            bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


def _f_bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight,
                        bn.bias, training=False, eps=bn.eps)


def _f_conv(x, conv, stride=1, padding=0):
    return F.conv2d(x, conv.weight, None, stride, padding)


def test_basic_block_matches_functional_reference():
    gen = torch.Generator().manual_seed(0)
    down = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False),
                         nn.BatchNorm2d(6))
    block = BasicBlock(4, 6, stride=2, downsample=down)
    _randomize_bn(block, gen)
    block.eval()
    assert block.out_channels == 6 and block.stride == 2
    x = torch.randn(2, 4, 9, 9, generator=gen)
    out = F.relu(_f_bn(_f_conv(x, block.conv1, 2, 1), block.bn1))
    out = _f_bn(_f_conv(out, block.conv2, 1, 1), block.bn2)
    identity = _f_bn(_f_conv(x, down[0], 2), down[1])
    ref = F.relu(out + identity)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, 6, 5, 5)
    torch.testing.assert_close(y, ref)
    # without downsample: the identity residual
    block = BasicBlock(6, 6).eval()
    _randomize_bn(block, gen)
    out = F.relu(_f_bn(_f_conv(y, block.conv1, 1, 1), block.bn1))
    ref = F.relu(_f_bn(_f_conv(out, block.conv2, 1, 1), block.bn2) + y)
    with torch.no_grad():
        torch.testing.assert_close(block(y), ref)


def test_bottleneck_matches_functional_reference():
    gen = torch.Generator().manual_seed(1)
    down = nn.Sequential(nn.Conv2d(8, 12, 1, stride=2, bias=False),
                         nn.BatchNorm2d(12))
    block = Bottleneck(8, 3, stride=2, downsample=down)
    _randomize_bn(block, gen)
    block.eval()
    assert block.out_channels == 12
    assert block.conv1.kernel_size == (1, 1) and block.conv1.stride == (1, 1)
    assert block.conv2.kernel_size == (3, 3) and block.conv2.stride == (2, 2)
    x = torch.randn(2, 8, 8, 8, generator=gen)
    out = F.relu(_f_bn(_f_conv(x, block.conv1), block.bn1))
    out = F.relu(_f_bn(_f_conv(out, block.conv2, 2, 1), block.bn2))
    out = _f_bn(_f_conv(out, block.conv3), block.bn3)
    ref = F.relu(out + _f_bn(_f_conv(x, down[0], 2), down[1]))
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, 12, 4, 4)
    torch.testing.assert_close(y, ref)


def test_whole_model_matches_functional_reference():
    """The stem, stage order, pooling and fc of a small model, eval mode."""
    gen = torch.Generator().manual_seed(2)
    m = ResNet(BasicBlock, [1, 1], num_classes=3, width=4, in_channels=2)
    _randomize_bn(m, gen)
    m.eval()
    x = torch.randn(2, 2, 16, 16, generator=gen)
    h = F.relu(_f_bn(_f_conv(x, m.conv1, 2, 3), m.bn1))
    h = F.max_pool2d(h, 3, 2, 1)
    with torch.no_grad():
        h = m.layer2(m.layer1(h))
        ref = F.linear(h.mean((2, 3)), m.fc.weight, m.fc.bias)
        torch.testing.assert_close(m.forward_features(x), h)
        torch.testing.assert_close(m(x), ref)


def test_output_shapes():
    torch.manual_seed(0)
    m = resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert m.forward_features(x).shape == (2, 512, 2, 2)
        assert m(x).shape == (2, 5)
    m = ResNet(BasicBlock, [1, 1, 1], num_classes=10, in_channels=1,
               width=16, stem='small')
    assert m.out_channels == 64 and m.stage_channels == [16, 32, 64]
    x = torch.randn(2, 1, 48, 48)
    assert m.forward_features(x).shape == (2, 64, 12, 12)
    y = m(x)  # train mode: gradients reach the stem
    assert y.shape == (2, 10)
    y.sum().backward()
    assert m.conv1.weight.grad is not None
    assert m.conv1.weight.grad.abs().sum() > 0


def test_reset_parameters_and_zero_init_residual():
    torch.manual_seed(0)
    m = ResNet(Bottleneck, [1, 2], width=16, num_classes=4)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    w = m.layer2[1].conv2.weight  # fan_out = 32 * 9
    assert abs(w.std().item() / math.sqrt(2 / (32 * 9)) - 1) < 0.1
    bound = 1 / math.sqrt(m.fc.in_features)  # PyTorch's Linear default
    assert m.fc.weight.abs().max() <= bound
    assert m.fc.weight.abs().max() > bound / 2
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(0.3)
        m.bn1.running_mean.fill_(2.0)
    m.reset_parameters()
    assert torch.all(m.bn1.weight == 1) and torch.all(m.bn1.running_mean == 0)
    assert m.conv1.weight.std() > 0
    assert all(torch.all(b.bn3.weight == 1) for b in m.modules()
               if isinstance(b, Bottleneck))

    z = ResNet(Bottleneck, [1, 2], width=16, zero_init_residual=True)
    blocks = [b for b in z.modules() if isinstance(b, Bottleneck)]
    assert len(blocks) == 3
    assert all(torch.all(b.bn3.weight == 0) for b in blocks)
    assert all(torch.all(b.bn2.weight == 1) for b in blocks)
    z = ResNet(BasicBlock, [2, 1], width=8, zero_init_residual=True)
    blocks = [b for b in z.modules() if isinstance(b, BasicBlock)]
    assert len(blocks) == 3
    assert all(torch.all(b.bn2.weight == 0) for b in blocks)
    assert all(torch.all(b.bn1.weight == 1) for b in blocks)
    assert torch.all(z.layer2[0].downsample[1].weight == 1)
    # every residual branch is zero: in eval mode a block is relu(identity)
    z.eval()
    x = torch.randn(1, 8, 6, 6).relu()
    with torch.no_grad():
        torch.testing.assert_close(z.layer1[1](x), x)


@pytest.mark.parametrize('kwargs, exc, match', [
    (dict(layers=[]), ValueError,
     r"^'layers' must be a non-empty sequence of ints >= 1 \(blocks per stage\), got \[\]$"),
    (dict(layers=[2, 0]), ValueError,
     r"^'layers\[1\]' must be an int >= 1, got 0$"),
    (dict(layers=[2, -1]), ValueError,
     r"^'layers\[1\]' must be an int >= 1, got -1$"),
    (dict(layers=[2, 1.5]), TypeError,
     r"^'layers\[1\]' must be an int >= 1, got float 1\.5$"),
    (dict(layers=[True, 1]), TypeError,
     r"^'layers\[0\]' must be an int >= 1, got bool True$"),
    (dict(layers=3), TypeError,
     r"^'layers' must be a non-empty sequence of ints >= 1 \(blocks per "
     r"stage\), got int 3$"),
    (dict(width=0), ValueError, "^'width' must be an int >= 1, got 0$"),
    (dict(width=8.0), TypeError,
     r"^'width' must be an int >= 1, got float 8\.0$"),
    (dict(width=True), TypeError,
     "^'width' must be an int >= 1, got bool True$"),
    (dict(num_classes=0), ValueError,
     "^'num_classes' must be an int >= 1, got 0$"),
    (dict(num_classes='10'), TypeError,
     "^'num_classes' must be an int >= 1, got str '10'$"),
    (dict(in_channels=-3), ValueError,
     "^'in_channels' must be an int >= 1, got -3$"),
    (dict(in_channels=True), TypeError,
     "^'in_channels' must be an int >= 1, got bool True$"),
    (dict(stem='cifar'), ValueError, r"stem.*'imagenet', 'small'"),
    (dict(stem=None), ValueError, 'stem'),
    (dict(block=nn.Conv2d), TypeError, 'block'),
    (dict(block=BasicBlock(4, 4)), TypeError, 'block'),
])
def test_invalid_arguments(kwargs, exc, match):
    args = dict(block=BasicBlock, layers=[1, 1], width=4)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ResNet(**args)


def test_invalid_block_arguments():
    with pytest.raises(ValueError, match="^'planes' must be an int >= 1, "
                       "got 0$"):
        BasicBlock(4, 0)
    with pytest.raises(TypeError, match=r"^'in_channels' must be an int >= 1, "
                       r"got float 4\.0$"):
        Bottleneck(4.0, 2)
    with pytest.raises(ValueError, match="^'stride' must be an int >= 1, "
                       "got 0$"):
        Bottleneck(4, 2, stride=0)
    with pytest.raises(TypeError, match='downsample'):
        BasicBlock(4, 8, downsample='conv')
    with pytest.raises(TypeError, match="^'width' must be an int >= 1, "
                       "got str '64'$"):
        resnet18(width='64')
    # numpy ints are ints, stored as Python ints
    block = BasicBlock(np.int64(4), np.int64(4))
    assert type(block.in_channels) is int


def test_invalid_input():
    m = ResNet(BasicBlock, [1], width=4, in_channels=1, stem='small')
    with pytest.raises(ValueError, match=r"'x'.*\[B, 1, H, W\]"):
        m(torch.randn(1, 8, 8))
    with pytest.raises(ValueError, match=r"'x'.*\[B, 1, H, W\]"):
        m(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"'x'.*\[B, 1, H, W\]"):
        m.forward_features(torch.randn(2, 1, 1, 8, 8))
    with pytest.raises(TypeError, match="'x'"):
        m([[1.0]])


@pytest.mark.torchvision
@pytest.mark.parametrize('name', ['resnet18', 'resnet50'])
def test_torchvision_checkpoint_loads_strictly(name):
    tvm = torchvision_models()
    torch.manual_seed(0)
    theirs = getattr(tvm, name)(weights=None, num_classes=10)
    gen = torch.Generator().manual_seed(3)
    _randomize_bn(theirs, gen)
    ours = {'resnet18': resnet18, 'resnet50': resnet50}[name](num_classes=10)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.eval(), ours.eval()
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))

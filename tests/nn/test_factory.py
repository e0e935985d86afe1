"""create_unit: spec strings to units."""
import pytest
import torch

from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNN1d, LatentGNN2d,
                          LatentGNNConv, NonLocal3d, NonLocalConv,
                          create_unit, parse_unit_spec)


def test_kinds_options_and_dims():
    u = create_unit('latentgnn', 32)
    assert type(u) is LatentGNNConv and u.latent_dims == [64]
    u = create_unit('LatentGNN:kernels=3,d=8,mode=symmetric', 32)
    assert u.latent_dims == [8, 8, 8] and u.mode == 'symmetric'
    u = create_unit('latentgnn:channel_stride=2,graph_conv=true', 32, dims=1)
    assert type(u) is LatentGNN1d and u.dims == 1
    assert u.unit.inter_channels == 16 and u.unit.graph_conv
    u = create_unit('glore', 32)
    assert type(u) is GloReConv and u.num_mid == 8 and u.normalize
    u = create_unit('glore:num_mid=4', 32, dims=2)
    assert type(u) is GloRe2d and u.unit.num_mid == 4
    assert not u.unit.normalize
    assert type(create_unit('non_local', 32)) is NonLocalConv
    u = create_unit('nonlocal:inter_channels=5', 32, dims=3)
    assert type(u) is NonLocal3d and u.unit.inter_channels == 5
    x = torch.randn(10, 32)
    assert torch.equal(create_unit('latentgnn:d=4', 32)(x), x)  # identity


def test_parse():
    assert parse_unit_spec(' glore : num_mid=3 , normalize=0') == (
        'glore', {'num_mid': 3, 'normalize': False})


@pytest.mark.parametrize('spec, dims, match', [
    ('transformer', 0, r"Unknown unit 'transformer'.*\['glore', "
     r"'latentgnn', 'nonlocal'\]"),
    ('glore:d=3', 0, r"Unknown option 'd=3' for unit 'glore'"),
    ('latentgnn:d', 0, r"Unknown option 'd'"),
    ('latentgnn:d=x', 0, r"Option 'd' of 'latentgnn:d=x' must be int"),
    ('glore:normalize=maybe', 0, r"must be bool"),
    ('latentgnn:kernels=0', 0, r"^'kernels' must be an int >= 1, got 0$"),
    ('latentgnn:kernels=-2', 0, r"^'kernels' must be an int >= 1, got -2$"),
    ('', 0, r"A unit spec is a string"),
    ('glore', 4, r"^'dims' must be an int in \[0, 3\], got 4$"),
    ('glore', -1, r"^'dims' must be an int in \[0, 3\], got -1$"),
    ('latentgnn:d=0', 0, r"^'d' must be an int >= 1, got 0$"),
    ('glore:num_mid=0', 0, r"^'num_mid' must be an int >= 1, got 0$"),
    ('latentgnn:chunk_size=0', 0,
     r"^'chunk_size' must be an int >= 1, got 0$"),
    ('glore:num_mid=8,num_mid=4', 0, r"Option 'num_mid' is given twice"),
    ('glore num_mid=4', 0, r"Unknown unit 'glore num_mid=4'.*options "
     r"follow a ':'"),
])
def test_errors(spec, dims, match):
    with pytest.raises(ValueError, match=match):
        create_unit(spec, 32, dims=dims)


@pytest.mark.parametrize('channels, dims, error, match', [
    (32, 2.0, TypeError, r"^'dims' must be an int in \[0, 3\], got float "
     r"2\.0$"),
    (32, True, TypeError, r"^'dims' must be an int in \[0, 3\], got bool "
     r"True$"),
    (32, '2', TypeError, r"^'dims' must be an int in \[0, 3\], got str "),
    (0, 0, ValueError, r"^'channels' must be an int >= 1, got 0$"),
    (32.0, 0, TypeError, r"^'channels' must be an int >= 1, got float "
     r"32\.0$"),
    (True, 0, TypeError, r"^'channels' must be an int >= 1, got bool True$"),
])
def test_argument_errors(channels, dims, error, match):
    with pytest.raises(error, match=match):
        create_unit('glore', channels, dims=dims)


def test_numpy_ints_are_ints():
    np = pytest.importorskip('numpy')
    u = create_unit('latentgnn:d=4', np.int64(32), dims=np.int64(2))
    assert type(u) is LatentGNN2d and type(u.in_channels) is int
    assert type(u.dims) is int

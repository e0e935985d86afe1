"""Round trips between glore-pyg and the published modules (re-implemented
independently in ``published.py``): published weights -> our unit, and our
weights -> the published unit, with equal outputs in training and eval
mode; hyper-parameters read from the checkpoint; strict errors."""
import copy

import pytest
import torch

from glore_pyg.interop import (export_official_glore,
                               export_official_latentgnn, load_official_glore,
                               load_official_latentgnn)
from glore_pyg.nn import (GloRe1d, GloRe2d, GloRe3d, GloReConv, GridUnit,
                          LatentGNN1d, LatentGNN2d, LatentGNNConv)
from tests.interop.published import GloReUnit, LatentGNNV1, randomize
from tests.weights import randomize as randomize_ours

GLORE_SHAPES = {1: [(9, ), (4, )], 2: [(5, 7), (6, 3)], 3: [(2, 3, 4)]}


def assert_same_function(ours, published, shapes, C, exporter):
    """Equal outputs in train mode (batch statistics) and eval mode (running
    statistics): to 1e-5 in float32, and with their input gradients to 1e-9
    in float64; in train mode, equally updated running statistics (compared
    through ``exporter``: our state dict under the published keys)."""
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-9)):
        for training in (True, False):
            a = copy.deepcopy(ours).to(dtype).train(training)
            b = copy.deepcopy(published).to(dtype).train(training)
            for i, spatial in enumerate(shapes):
                x = torch.randn(3, C, *spatial, dtype=dtype,
                                generator=torch.Generator().manual_seed(i))
                xa = x.clone().requires_grad_()
                xb = x.clone().requires_grad_()
                out_a, out_b = a(xa), b(xb)
                torch.testing.assert_close(out_a, out_b, atol=tol, rtol=tol)
                assert (out_b - x).abs().max() > 0.1  # the unit does work
                if dtype == torch.float64:
                    g = torch.randn(out_b.shape, dtype=dtype)
                    out_a.backward(g)
                    out_b.backward(g)
                    torch.testing.assert_close(xa.grad, xb.grad, atol=tol,
                                               rtol=tol)
            got = exporter(a)
            for k, v in b.state_dict().items():
                torch.testing.assert_close(got[k], v, atol=tol, rtol=tol)


# -- GloRe ------------------------------------------------------------------
GLORE_CASES = [(dims, normalize) for dims in (1, 2, 3)
               for normalize in (False, True)]


def published_glore(dims, normalize, C=8, m=3, seed=0):
    return randomize(GloReUnit(C, m, dims=dims, normalize=normalize), seed)


@pytest.mark.parametrize('dims, normalize', GLORE_CASES)
def test_load_official_glore(dims, normalize):
    published = published_glore(dims, normalize)
    ours = load_official_glore(published.state_dict(), dims=dims,
                               normalize=normalize)
    assert type(ours) is {1: GloRe1d, 2: GloRe2d, 3: GloRe3d}[dims]
    unit = ours.unit
    assert (unit.in_channels, unit.num_mid, unit.normalize) == (8, 3,
                                                                normalize)
    assert_same_function(ours, published, GLORE_SHAPES[dims], 8,
                         export_official_glore)


@pytest.mark.parametrize('dims, normalize', GLORE_CASES)
def test_export_official_glore(dims, normalize):
    cls = {1: GloRe1d, 2: GloRe2d, 3: GloRe3d}[dims]
    ours = randomize_ours(cls(8, 3, normalize=normalize), seed=dims,
                          dtype=torch.float32)
    published = GloReUnit(8, 3, dims=dims, normalize=normalize)
    published.load_state_dict(export_official_glore(ours), strict=True)
    assert_same_function(ours, published, GLORE_SHAPES[dims], 8,
                         export_official_glore)


def test_export_glore_node_layer_needs_dims():
    unit = GloReConv(8, 3)
    with pytest.raises(ValueError, match="'dims' must be 1, 2 or 3"):
        export_official_glore(unit)
    sd = export_official_glore(unit, dims=3)
    assert sd['conv_state.weight'].shape == (6, 8, 1, 1, 1)
    GloReUnit(8, 3, dims=3).load_state_dict(sd, strict=True)


# -- LatentGNN --------------------------------------------------------------
LATENT_CASES = [
    pytest.param(dict(latent_dims=[4], channel_stride=4), id='asym-1k'),
    pytest.param(dict(latent_dims=[3, 5], channel_stride=2, graph_conv=True),
                 id='asym-2k-gc'),
    pytest.param(dict(latent_dims=[4, 2], channel_stride=4,
                      mode='symmetric'), id='sym-2k'),
    pytest.param(dict(latent_dims=[6], channel_stride=1, mode='symmetric',
                      graph_conv=True), id='sym-1k-gc-stride1'),
    pytest.param(dict(latent_dims=[4], channel_stride=3,
                      without_residual=True), id='asym-noresidual-stride3'),
]
LATENT_SHAPES = [(5, 7), (4, 4), (3, 6)]


def published_latentgnn(cfg, C=12, seed=0):
    return randomize(LatentGNNV1(C, **cfg), seed)


@pytest.mark.parametrize('cfg', LATENT_CASES)
def test_load_official_latentgnn(cfg):
    published = published_latentgnn(cfg)
    ours = load_official_latentgnn(
        published.state_dict(),
        without_residual=cfg.get('without_residual', False))
    assert type(ours) is LatentGNN2d
    unit = ours.unit
    assert ours.in_channels == unit.in_channels == 12
    assert unit.latent_dims == cfg['latent_dims']
    assert unit.channel_stride == cfg['channel_stride']
    assert unit.mode == cfg.get('mode', 'asymmetric')
    assert unit.graph_conv == cfg.get('graph_conv', False)
    assert unit.without_residual == cfg.get('without_residual', False)
    assert_same_function(ours, published, LATENT_SHAPES, 12,
                         export_official_latentgnn)


@pytest.mark.parametrize('cfg', LATENT_CASES)
def test_export_official_latentgnn(cfg):
    ours = randomize_ours(LatentGNN2d(12, **cfg), seed=5,
                          dtype=torch.float32)
    published = LatentGNNV1(12, **cfg)
    published.load_state_dict(export_official_latentgnn(ours), strict=True)
    assert_same_function(ours, published, LATENT_SHAPES, 12,
                         export_official_latentgnn)


def test_export_latentgnn_from_node_layer_and_other_grids():
    for unit in (LatentGNNConv(12, [4, 3]), LatentGNN1d(12, [4, 3]),
                 GridUnit(LatentGNNConv(12, [4, 3]), dims=3)):
        LatentGNNV1(12, [4, 3]).load_state_dict(
            export_official_latentgnn(unit), strict=True)


def test_round_trip_is_exact():
    published = published_latentgnn(dict(latent_dims=[3, 5], graph_conv=True,
                                          channel_stride=2))
    again = export_official_latentgnn(
        load_official_latentgnn(published.state_dict()))
    want = published.state_dict()
    assert list(again) == list(want)
    for k in want:
        assert torch.equal(again[k], want[k]), k
    g = published_glore(2, True)
    again = export_official_glore(load_official_glore(g.state_dict()))
    assert list(again) == list(g.state_dict())
    for k, v in g.state_dict().items():
        assert torch.equal(again[k], v), k


# -- sources, prefixes, dtypes ---------------------------------------------------
def test_load_from_path_and_prefix(tmp_path):
    published = published_latentgnn(dict(latent_dims=[4]))
    path = tmp_path / 'latentgnn.pth'
    torch.save(published.state_dict(), path)
    ours = load_official_latentgnn(path)
    assert_same_function(ours, published, LATENT_SHAPES[:1], 12,
                         export_official_latentgnn)
    ours = load_official_latentgnn(str(path))
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 1), published)
    path = tmp_path / 'net.pth'
    torch.save({'module.' + k: v for k, v in net.state_dict().items()},
               path)
    ours = load_official_latentgnn(path, prefix='module.1.')
    assert_same_function(ours, published, LATENT_SHAPES[:1], 12,
                         export_official_latentgnn)
    g = published_glore(3, False)
    torch.save({'backbone.glore.' + k: v
                for k, v in g.state_dict().items()}, path)
    ours = load_official_glore(path, dims=3, prefix='backbone.glore.')
    assert_same_function(ours, g, GLORE_SHAPES[3], 8, export_official_glore)


def test_dtype_follows_checkpoint():
    published = published_glore(2, False).double()
    ours = load_official_glore(published.state_dict())
    assert ours.unit.state.weight.dtype == torch.float64
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    published.eval()
    ours.eval()
    torch.testing.assert_close(ours(x), published(x), atol=1e-12,
                               rtol=1e-10)


def test_missing_num_batches_tracked_is_accepted():
    published = published_latentgnn(dict(latent_dims=[4]))
    sd = {k: v for k, v in published.state_dict().items()
          if not k.endswith('num_batches_tracked')}
    ours = load_official_latentgnn(sd)
    assert int(ours.unit.up[1].num_batches_tracked) == 0
    published.eval()
    ours.eval()
    x = torch.randn(2, 12, 3, 5)
    torch.testing.assert_close(ours(x), published(x), atol=1e-5, rtol=1e-4)


# -- errors -----------------------------------------------------------------
def glore_sd():
    return dict(published_glore(2, False).state_dict())


def latent_sd(**cfg):
    return dict(published_latentgnn(dict(dict(latent_dims=[4, 3]),
                                         **cfg)).state_dict())


def test_glore_errors():
    sd = glore_sd()
    del sd['gcn.conv2.weight']
    with pytest.raises(ValueError, match=r"missing keys: 'gcn\.conv2\.weight'"):
        load_official_glore(sd)
    sd = glore_sd()
    sd['gcn.conv2.bias'] = torch.zeros(6)
    with pytest.raises(ValueError, match=r"unexpected keys: 'gcn\.conv2\.bias'"):
        load_official_glore(sd)
    sd = glore_sd()
    sd['conv_state.weight'] = torch.zeros(7, 8, 1, 1)
    with pytest.raises(ValueError, match=r"'conv_state\.weight' has shape "
                       r"\(7, 8, 1, 1\), expected \(6, 8, 1, 1\)"):
        load_official_glore(sd)
    with pytest.raises(ValueError, match=r"GloRe_Unit_2D checkpoint, but "
                       r"dims=3"):
        load_official_glore(glore_sd(), dims=3)
    sd = glore_sd()
    del sd['conv_proj.weight']
    with pytest.raises(ValueError, match=r"Missing key 'conv_proj\.weight'"):
        load_official_glore(sd)
    with pytest.raises(ValueError, match="'dims' must be 1, 2 or 3"):
        load_official_glore(glore_sd(), dims=4)
    with pytest.raises(ValueError, match=r"no entry under the prefix 'x\.'"):
        load_official_glore(glore_sd(), prefix='x.')
    with pytest.raises(TypeError, match="'state_dict' must be a mapping"):
        load_official_glore([1, 2])
    with pytest.raises(TypeError, match="must be a GloReConv"):
        export_official_glore(LatentGNN2d(8, [2]))
    with pytest.raises(ValueError, match="eps=0.0001"):
        export_official_glore(GloRe2d(8, 3, bn_eps=1e-5))


def test_latentgnn_errors():
    sd = latent_sd()
    del sd['LatentGNN_Kernel_1.psi_l2v.1.running_var']
    with pytest.raises(ValueError, match=r"missing keys: 'LatentGNN_Kernel_1"
                       r"\.psi_l2v\.1\.running_var'"):
        load_official_latentgnn(sd)
    sd = latent_sd(graph_conv=True)
    for k in list(sd):
        if k.startswith('LatentGNN_Kernel_1.GraphConvWeight'):
            del sd[k]
    with pytest.raises(ValueError, match=r"missing keys: 'LatentGNN_Kernel_1"
                       r"\.GraphConvWeight\.0\.weight'"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    sd['down_channel.0.weight'] = sd['down_channel_v2l.0.weight']
    with pytest.raises(ValueError, match=r"unexpected keys: "
                       r"'down_channel\.0\.weight'"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    sd['up_channel.0.weight'] = torch.zeros(12, 5, 1, 1)
    with pytest.raises(ValueError, match=r"'up_channel\.0\.weight' has shape "
                       r"\(12, 5, 1, 1\), expected \(12, 6, 1, 1\)"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    del sd['down_channel_v2l.0.weight']
    with pytest.raises(ValueError, match=r"Missing key 'down_channel_v2l\.0"
                       r"\.weight' \(asymmetric LatentGNNV1\) or "
                       r"'down_channel\.0\.weight'"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    del sd['LatentGNN_Kernel_0.psi_v2l.0.weight']
    with pytest.raises(ValueError, match=r"Missing key 'LatentGNN_Kernel_0"
                       r"\.psi_v2l\.0\.weight'"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    sd = {k: v for k, v in sd.items() if 'Kernel' not in k}
    with pytest.raises(ValueError, match=r"the first kernel"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    sd['down_channel_v2l.0.weight'] = torch.zeros(3, 12, 3, 3)
    with pytest.raises(ValueError, match=r"'down_channel_v2l\.0\.weight' has "
                       r"shape \(3, 12, 3, 3\), expected \(3, 12, 1, 1\)"):
        load_official_latentgnn(sd)
    sd['down_channel_v2l.0.weight'] = torch.zeros(3, 12)
    with pytest.raises(ValueError, match=r"1x1 Conv2d kernel"):
        load_official_latentgnn(sd)
    sd = latent_sd()
    sd['down_channel_v2l.0.weight'] = torch.zeros(13, 12, 1, 1)
    with pytest.raises(ValueError, match=r"13 reduced channels for 12 input"):
        load_official_latentgnn(sd)
    with pytest.raises(TypeError, match="must be a LatentGNNConv"):
        export_official_latentgnn(GloRe2d(8, 3))
    sd = latent_sd()
    sd['gamma'] = 1.0
    with pytest.raises(ValueError, match=r"'gamma' is a float, not a tensor"):
        load_official_latentgnn(sd)


def test_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_official_latentgnn(path)

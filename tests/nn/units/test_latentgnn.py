"""LatentGNNConv against an independent dense re-implementation of the
published ``LatentGNNV1`` / ``LatentGNN_Kernel`` (latentgnn/LatentGNN-V1),
asymmetric and symmetric, with and without the graph-convolution weight,
plus the node-level contracts."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.func import functional_call

from glore_pyg.nn import LatentGNNConv, Projection

C = 16
DIMS = [4, 6]
STRIDE = 4

CONFIGS = [
    pytest.param(dict(mode='asymmetric', graph_conv=False), id='asym'),
    pytest.param(dict(mode='asymmetric', graph_conv=True), id='asym-gc'),
    pytest.param(dict(mode='symmetric', graph_conv=False), id='sym'),
    pytest.param(dict(mode='symmetric', graph_conv=True), id='sym-gc'),
]


def ref_latentgnn(h, unit, xs, training):
    r"""The published forward pass on dense grids ``[B_i, C, H_i, W_i]`` (one
    list entry per group of equally sized images; every BatchNorm pools all
    of them, as one BatchNorm2d over the batch would).  Weights from
    ``unit``: down_channel_v2l/l2v = unit.down_v2l/down_l2v (symmetric:
    down_channel = down_v2l), kernel i: psi_v2l/psi_l2v = unit.psi_v2l[i] /
    unit.psi_l2v[i] (symmetric: psi = psi_v2l[i]), GraphConvWeight =
    unit.graph_weight[i], up_channel = unit.up, gamma = unit.gamma.

    Returns the outputs and, per kernel, per list entry, the tuple
    ``(a_v2l [B, d, L], a_l2v [B, d, L], F_X [B, d, d])``."""
    sym = unit.mode == 'symmetric'

    def conv_bn(ts, seq, relu):  # Conv2d(bias=False) + BN2d (+ ReLU)
        ys = h.ref_bn([h.conv1x1(t, seq[0].weight) for t in ts], seq[1],
                      training)
        return [F.relu(y) for y in ys] if relu else ys

    f1 = [F.normalize(t, dim=1) for t in conv_bn(xs, unit.down_v2l, False)]
    if sym:
        f2 = None
    else:
        f2 = [F.normalize(t, dim=1)
              for t in conv_bn(xs, unit.down_l2v, False)]

    kernel_outs, inspect = [], []
    for i, d in enumerate(unit.latent_dims):
        if sym:
            a = [F.normalize(t.reshape(t.size(0), d, -1), dim=1)
                 for t in conv_bn(f1, unit.psi_v2l[i], True)]
            a_v2l, a_l2v = a, a
        else:
            a_v2l = [F.normalize(t.reshape(t.size(0), d, -1), dim=2)
                     for t in conv_bn(f1, unit.psi_v2l[i], True)]
            a_l2v = [F.normalize(t.reshape(t.size(0), d, -1), dim=1)
                     for t in conv_bn(f2, unit.psi_l2v[i], True)]
        outs, fxs = [], []
        for av, al, f in zip(a_v2l, a_l2v, f1):
            B, c = f.shape[:2]
            # step 1: visible -> latent
            z = torch.bmm(av, f.reshape(B, c, -1).permute(0, 2, 1))  # [B,d,c]
            # step 2: latent -> latent
            zn = F.normalize(z, dim=-1)
            fx = F.softmax(torch.bmm(zn, zn.permute(0, 2, 1)), dim=-1)
            z = torch.bmm(fx, z)
            # step 3: latent -> visible
            o = torch.bmm(z.permute(0, 2, 1), al).view(B, c, *f.shape[2:])
            outs.append(o)
            fxs.append(fx)
        if unit.graph_conv:  # Conv1d(bias=False) + BN1d + ReLU on [B, c, L]
            gw = unit.graph_weight[i]
            flat = [F.conv1d(o.reshape(o.size(0), o.size(1), -1),
                             gw[0].weight[:, :, None]) for o in outs]
            flat = h.ref_bn(flat, gw[1], training)
            outs = [F.relu(t).view_as(o) for t, o in zip(flat, outs)]
        kernel_outs.append(outs)
        inspect.append(list(zip(a_v2l, a_l2v, fxs)))

    cat = [torch.cat([k[s] for k in kernel_outs], dim=1)
           for s in range(len(xs))]
    up = h.ref_bn([h.conv1x1(t, unit.up[0].weight) for t in cat], unit.up[1],
                  training)
    if unit.without_residual:
        return up, inspect
    return [x + unit.gamma * u for x, u in zip(xs, up)], inspect


def make(h, seed=0, channels=C, dims=DIMS, stride=STRIDE, **kwargs):
    return h.randomize(LatentGNNConv(channels, dims, channel_stride=stride,
                                     **kwargs), seed)


# ---------------------------------------------------------------------------
# 1. Independent reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('config', CONFIGS)
def test_matches_published_forward_on_grid(h, config, training):
    unit = make(h, **config).train(training)
    xg = h.randn(3, C, 5, 7)
    (ref, ), _ = ref_latentgnn(h, unit, [xg], training)
    out = unit(h.grid_to_nodes(xg), batch_size=3)
    h.assert_close(out, h.grid_to_nodes(ref))
    assert (out - h.grid_to_nodes(xg)).abs().max() > 0.1


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('config', CONFIGS)
def test_matches_published_forward_unequal_sizes(h, config, training):
    unit = make(h, seed=1, **config).train(training)
    xs = h.random_grids([(3, 4), (2, 5), (1, 7)], C, seed=1)
    sizes = [12, 10, 7]
    ref, _ = ref_latentgnn(h, unit, xs, training)
    out = unit(h.samples_to_nodes(xs), batch=h.batch_of(sizes))
    h.assert_close(out, h.samples_to_nodes(ref))


@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
def test_without_residual_and_single_kernel(h, mode):
    unit = make(h, seed=2, dims=[5], mode=mode,
                without_residual=True).eval()
    xg = h.randn(2, C, 3, 5, seed=2)
    (ref, ), _ = ref_latentgnn(h, unit, [xg], False)
    h.assert_close(unit(h.grid_to_nodes(xg), batch_size=2),
                   h.grid_to_nodes(ref))


def test_channel_stride(h):
    unit = make(h, seed=3, dims=[3, 2, 4], stride=2).train()
    assert unit.inter_channels == 8
    xg = h.randn(2, C, 4, 3, seed=3)
    (ref, ), _ = ref_latentgnn(h, unit, [xg], True)
    h.assert_close(unit(h.grid_to_nodes(xg), batch_size=2),
                   h.grid_to_nodes(ref))


@pytest.mark.parametrize('config', [CONFIGS[1], CONFIGS[3]])
def test_gradients_match_reference(h, config):
    unit = make(h, seed=4, **config).train()
    xs = [t.requires_grad_() for t in h.random_grids([(3, 4), (2, 5)], C, 4)]
    x = h.samples_to_nodes(xs)
    g_out = h.randn(22, C, seed=5)
    params = list(unit.parameters())
    out = unit(x, batch=h.batch_of([12, 10]))
    got = torch.autograd.grad((out * g_out).sum(), xs + params)
    ref, _ = ref_latentgnn(h, unit, xs, True)
    want = torch.autograd.grad((h.samples_to_nodes(ref) * g_out).sum(),
                               xs + params)
    for a, b in zip(got, want):
        h.assert_close(a, b)


# ---------------------------------------------------------------------------
# 2. Identity at initialisation, 12. reset_parameters
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('config', CONFIGS)
def test_identity_at_init(h, config, training):
    unit = LatentGNNConv(C, DIMS, **config).train(training)
    x = torch.randn(29, C)
    assert torch.equal(unit(x, batch=h.batch_of([12, 10, 7])), x)
    assert torch.equal(unit(x), x)


def test_reset_parameters_restores_identity(h):
    unit = make(h, graph_conv=True).eval()
    x = h.randn(20, C)
    assert not torch.equal(unit(x, batch_size=2), x)
    unit.reset_parameters()
    assert unit.gamma.item() == 0
    # BN statistics and affine parameters are reset as well
    ones = torch.ones(C, dtype=h.DTYPE)
    assert torch.equal(unit.up[1].running_var, ones)
    assert torch.equal(unit.up[1].weight, ones)
    for training in (True, False):
        assert torch.equal(unit.train(training)(x, batch_size=2), x)
    # as published: the graph-convolution weight starts at N(0, 0.01^2)
    w = unit.graph_weight[0][0].weight
    assert 0.002 < w.std().item() < 0.03


# ---------------------------------------------------------------------------
# 3. Permutation equivariance, 4. batch isolation / layout arguments
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('config', CONFIGS)
def test_permutation_equivariance(h, config, training):
    unit = make(h, seed=6, **config).train(training)
    sizes = [11, 7, 14]
    batch = h.batch_of(sizes)
    x = h.randn(sum(sizes), C, seed=6)
    perm = h.permutation_within(sizes, seed=6)
    out = unit(x, batch=batch)
    h.assert_close(unit(x[perm], batch=batch), out[perm])


@pytest.mark.parametrize('config', [CONFIGS[1], CONFIGS[2]])
def test_batch_isolation_eval(h, config):
    unit = make(h, seed=7, **config).eval()
    sizes = [6, 9, 4]
    x = h.randn(sum(sizes), C, seed=7)
    out = unit(x, batch=h.batch_of(sizes))
    parts = x.split(sizes)
    for xs, os in zip(parts, out.split(sizes)):
        h.assert_close(unit(xs), os)
    alone = unit(parts[1])
    other = h.randn(13, C, seed=8)
    for nodes, sizes2, part in [
        (torch.cat([other, parts[1]]), [13, 9], 1),
        (torch.cat([parts[1], other, parts[0]]), [9, 13, 6], 0),
    ]:
        got = unit(nodes, batch=h.batch_of(sizes2)).split(sizes2)[part]
        h.assert_close(got, alone)
    out_empty = unit(x, batch=h.batch_of(sizes), batch_size=4)
    h.assert_close(out_empty, out)
    # an empty sample in the middle (no node has sample index 1)
    gap = h.batch_of([6, 0, 9, 4])
    assert 1 not in gap.tolist()
    h.assert_close(unit(x, batch=gap), out)


@pytest.mark.parametrize('training', [True, False])
def test_batch_ptr_batch_size_agree(h, training):
    unit = make(h, seed=9, graph_conv=True).train(training)
    sizes = [6, 9, 4]
    x = h.randn(sum(sizes), C, seed=9)
    h.assert_close(unit(x, batch=h.batch_of(sizes)),
                   unit(x, ptr=h.ptr_of(sizes)))
    x = h.randn(24, C, seed=10)
    a = unit(x, batch=h.batch_of([8, 8, 8]))
    h.assert_close(a, unit(x, ptr=h.ptr_of([8, 8, 8])))
    h.assert_close(a, unit(x, batch_size=3))
    h.assert_close(unit(x), unit(x, batch=torch.zeros(24, dtype=torch.long)))


# ---------------------------------------------------------------------------
# 6. gradcheck
# ---------------------------------------------------------------------------
def _gradcheck(unit, x, fast_mode=False, **kwargs):
    """gradcheck with respect to ``x`` and every parameter."""
    names = [n for n, _ in unit.named_parameters()]
    params = [p.detach().clone().requires_grad_()
              for _, p in unit.named_parameters()]

    def fn(x, *ps):
        return functional_call(unit, dict(zip(names, ps)), (x, ), kwargs)

    return gradcheck(fn, (x.requires_grad_(), *params), eps=1e-6, atol=1e-5,
                     fast_mode=fast_mode)


@pytest.mark.parametrize('config', CONFIGS)
def test_gradcheck_eval(h, config):
    unit = make(h, seed=11, channels=8, dims=[3, 2], stride=4,
                **config).eval()
    x = h.randn(9, 8, seed=11)
    assert _gradcheck(unit, x, batch=h.batch_of([5, 4]))


def test_gradcheck_train(h):
    unit = make(h, seed=12, channels=8, dims=[3], stride=4, graph_conv=True)
    x = h.randn(9, 8, seed=12)
    assert _gradcheck(unit.train(), x, batch=h.batch_of([5, 4]))


def test_gradcheck_input_only_plain_call(h):
    unit = make(h, seed=16, channels=8, dims=[3, 2], stride=4,
                graph_conv=True).eval()
    x = h.randn(9, 8, seed=16).requires_grad_()
    batch = h.batch_of([5, 4])
    assert gradcheck(lambda x: unit(x, batch=batch), (x, ), eps=1e-6,
                     atol=1e-5)


# ---------------------------------------------------------------------------
# 7. Batch size 1
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('config', [CONFIGS[1], CONFIGS[3]])
def test_single_sample_eval(h, config):
    unit = make(h, seed=13, **config).eval()
    xg = h.randn(1, C, 4, 6, seed=13)
    (ref, ), _ = ref_latentgnn(h, unit, [xg], False)
    h.assert_close(unit(h.grid_to_nodes(xg)), h.grid_to_nodes(ref))


@pytest.mark.parametrize('config', CONFIGS)
def test_single_node_eval(h, config):
    unit = make(h, seed=14, **config).eval()
    xg = h.randn(1, C, 1, 1, seed=14)
    (ref, ), _ = ref_latentgnn(h, unit, [xg], False)
    out = unit(h.grid_to_nodes(xg))
    assert out.shape == (1, C) and torch.isfinite(out).all()
    h.assert_close(out, h.grid_to_nodes(ref))


# An empty node set (e.g. a batch of point clouds left empty by filtering).
# Segments.from_batch has a branch for ``num_nodes == 0``, so empty inputs
# are meant to be supported; in eval mode BatchNorm accepts them too.
EMPTY_LAYOUTS = [
    pytest.param(dict(), id='none'),
    pytest.param(dict(batch=torch.empty(0, dtype=torch.long), batch_size=2),
                 id='batch+batch_size'),
]


@pytest.mark.parametrize('layout', EMPTY_LAYOUTS)
def test_empty_input_eval(layout):
    unit = LatentGNNConv(C, DIMS, graph_conv=True).eval()
    x = torch.randn(0, C)
    out = unit(x, **layout)
    assert out.shape == (0, C)


# ---------------------------------------------------------------------------
# 9. return_projection
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('config', CONFIGS)
def test_return_projection(h, config, training):
    unit = make(h, seed=15, **config).train(training)
    xs = h.random_grids([(3, 4), (2, 5), (1, 7)], C, seed=15)
    sizes = [12, 10, 7]
    batch = h.batch_of(sizes)
    x = h.samples_to_nodes(xs)
    out, projs = unit(x, batch=batch, return_projection=True)
    h.assert_close(out, unit(x, batch=batch))
    _, inspect = ref_latentgnn(h, unit, xs, training)
    assert isinstance(projs, list) and len(projs) == len(DIMS)
    sym = config['mode'] == 'symmetric'
    for proj, d, ref in zip(projs, DIMS, inspect):
        assert isinstance(proj, Projection)
        assert proj.visible_to_latent.shape == (29, d)
        assert proj.latent_to_visible.shape == (29, d)
        assert proj.latent_graph.shape == (3, d, d)
        assert torch.equal(proj.batch, batch)
        # the normalised weights as the reference uses them
        h.assert_close(proj.visible_to_latent,
                       torch.cat([av[0].t() for av, _, _ in ref]))
        h.assert_close(proj.latent_to_visible,
                       torch.cat([al[0].t() for _, al, _ in ref]))
        h.assert_close(proj.latent_graph, torch.cat([fx for _, _, fx in ref]))
        # F_X: a row-stochastic matrix per sample
        h.assert_close(proj.latent_graph.sum(-1),
                       torch.ones(3, d, dtype=h.DTYPE))
        assert (proj.latent_graph > 0).all()
        # L2 norms of the normalised projections are 1 (0 where the ReLU
        # left nothing to normalise)
        l2v_rows = proj.latent_to_visible.norm(dim=1)
        assert ((l2v_rows - 1).abs() < 1e-12).logical_or(l2v_rows == 0).all()
        assert ((l2v_rows - 1).abs() < 1e-12).sum() > 20
        if sym:
            h.assert_close(proj.visible_to_latent, proj.latent_to_visible)
        else:
            cols = torch.stack([p.norm(dim=0) for p in
                                proj.visible_to_latent.split(sizes)])
            assert ((cols - 1).abs() < 1e-12).logical_or(cols == 0).all()
            assert ((cols - 1).abs() < 1e-12).sum() >= 3 * d - 2


# ---------------------------------------------------------------------------
# 11. Errors, 12. repr
# ---------------------------------------------------------------------------
def test_wrong_input_shape():
    unit = LatentGNNConv(C, DIMS)
    with pytest.raises(ValueError, match=r"'x' must be \[N, 16\]"):
        unit(torch.randn(10, 8))
    with pytest.raises(ValueError, match="'x'"):
        unit(torch.randn(2, C, 5))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(in_channels=C, latent_dims=DIMS, mode='dense'), ValueError,
     "'mode'"),
    (dict(in_channels=C, latent_dims=DIMS, mode='Symmetric'), ValueError,
     "'mode'"),
    (dict(in_channels=C, latent_dims=[]), ValueError,
     r"^'latent_dims' must be a non-empty sequence of ints >= 1 \(one per "
     r"kernel, e\.g\. \[64\] for one kernel of 64 latent nodes\), got "
     r"\[\]$"),
    (dict(in_channels=C, latent_dims=()), ValueError,
     r"^'latent_dims' must be a non-empty sequence .*, got \(\)$"),
    (dict(in_channels=C, latent_dims=4), TypeError,
     r"^'latent_dims' must be a non-empty sequence of ints >= 1 \(one per "
     r"kernel, e\.g\. \[64\] for one kernel of 64 latent nodes\), got "
     r"int 4$"),
    (dict(in_channels=C, latent_dims=None), TypeError,
     r"^'latent_dims' must be a non-empty sequence .*, got NoneType None$"),
    (dict(in_channels=C, latent_dims='48'), TypeError,
     r"^'latent_dims' must be a non-empty sequence .*, got str '48'$"),
    (dict(in_channels=C, latent_dims=[4, 0]), ValueError,
     r"^'latent_dims\[1\]' must be an int >= 1, got 0$"),
    (dict(in_channels=C, latent_dims=[4, 2.5]), TypeError,
     r"^'latent_dims\[1\]' must be an int >= 1, got float 2\.5$"),
    (dict(in_channels=C, latent_dims=[True]), TypeError,
     r"^'latent_dims\[0\]' must be an int >= 1, got bool True$"),
    (dict(in_channels=C, latent_dims=DIMS, channel_stride=17), ValueError,
     "'channel_stride'"),
    (dict(in_channels=C, latent_dims=DIMS, channel_stride=0), ValueError,
     "^'channel_stride' must be an int >= 1, got 0$"),
    (dict(in_channels=0, latent_dims=DIMS), ValueError,
     "^'in_channels' must be an int >= 1, got 0$"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LatentGNNConv(**kwargs)


def test_latent_dims_any_sequence_of_ints():
    np = pytest.importorskip('numpy')
    for dims in ((3, 2), np.array([3, 2]), [np.int64(3), 2]):
        unit = LatentGNNConv(C, dims)
        assert unit.latent_dims == [3, 2]
        assert all(type(d) is int for d in unit.latent_dims)


def test_channel_stride_equal_to_channels_is_allowed():
    unit = LatentGNNConv(C, [3], channel_stride=C)
    assert unit.inter_channels == 1
    x = torch.randn(10, C)
    assert torch.equal(unit(x), x)


def test_symmetric_has_no_l2v_modules():
    unit = LatentGNNConv(C, DIMS, mode='symmetric')
    assert unit.down_l2v is None and unit.psi_l2v is None
    assert unit.graph_weight is None
    assert unit.num_kernels == 2


def test_repr():
    assert (repr(LatentGNNConv(C, DIMS)) ==
            "LatentGNNConv(16, latent_dims=[4, 6], channel_stride=4, "
            "mode='asymmetric', graph_conv=False)")
    assert (repr(LatentGNNConv(8, [3], channel_stride=2, mode='symmetric',
                               graph_conv=True)) ==
            "LatentGNNConv(8, latent_dims=[3], channel_stride=2, "
            "mode='symmetric', graph_conv=True)")

"""GloReConv against an independent dense re-implementation of the published
``GloRe_Unit`` (facebookresearch/GloRe), plus the node-level contracts:
identity at initialisation, permutation equivariance, batch isolation,
gradients, inspection and argument checking."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.func import functional_call

from glore_pyg.nn import GloReConv, Projection

C, M = 16, 4  # channels, latent nodes (num_mid); latent state: 2 * M


def ref_glore(h, unit, xs, training):
    r"""The published forward pass on dense grids ``[B_i, C, H_i, W_i]``
    (one list entry per group of equally sized images; the final BatchNorm
    pools all of them).  Weights are taken from ``unit``:

    conv_state = unit.state, conv_proj = unit.proj,
    gcn.conv1.weight = -A_g (unit.latent_graph.adjacency), gcn.conv1.bias =
    node_bias, gcn.conv2.weight = unit.latent_graph.lin.weight,
    conv_extend = unit.extend, blocker = unit.norm (BatchNorm, eps=1e-4).

    Returns the outputs and the projections ``p [B_i, M, L_i]``."""
    m = unit.num_mid
    ys, projs = [], []
    for x in xs:
        n = x.size(0)
        L = x[0, 0].numel()
        s = h.conv1x1(x, unit.state.weight, unit.state.bias).view(n, 2 * m, L)
        p = h.conv1x1(x, unit.proj.weight, unit.proj.bias).view(n, m, L)
        v = torch.bmm(s, p.transpose(1, 2))  # [n, 2m, m]
        if unit.normalize:
            v = v * (1.0 / L)
        # GCN: conv1 over the node axis (with bias), identity added, ReLU,
        # conv2 over the state axis (no bias).
        conv1_weight = -unit.latent_graph.adjacency
        hid = F.conv1d(v.permute(0, 2, 1), conv1_weight[:, :, None],
                       unit.latent_graph.node_bias).permute(0, 2, 1)
        hid = hid + v
        r = F.conv1d(F.relu(hid), unit.latent_graph.lin.weight[:, :, None])
        y = torch.bmm(r, p).view(n, 2 * m, *x.shape[2:])  # [n, 2m, H, W]
        ys.append(h.conv1x1(y, unit.extend.weight))
        projs.append(p)
    ys = h.ref_bn(ys, unit.norm, training, eps=1e-4)  # published blocker
    return [x + y for x, y in zip(xs, ys)], projs


def make(h, normalize=False, seed=0, channels=C, num_mid=M):
    return h.randomize(GloReConv(channels, num_mid, normalize=normalize),
                       seed)


# ---------------------------------------------------------------------------
# 1. Independent reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('normalize', [False, True])
def test_matches_published_forward_on_grid(h, training, normalize):
    unit = make(h, normalize).train(training)
    xg = h.randn(3, C, 5, 7)
    (ref, ), _ = ref_glore(h, unit, [xg], training)
    out = unit(h.grid_to_nodes(xg), batch_size=3)
    h.assert_close(out, h.grid_to_nodes(ref))
    # The residual branch is far from zero: the comparison means something.
    assert (out - h.grid_to_nodes(xg)).abs().max() > 0.1


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('normalize', [False, True])
def test_matches_published_forward_unequal_sizes(h, training, normalize):
    unit = make(h, normalize, seed=1).train(training)
    xs = h.random_grids([(3, 4), (2, 5), (1, 7)], C, seed=1)
    sizes = [12, 10, 7]
    ref, _ = ref_glore(h, unit, xs, training)
    out = unit(h.samples_to_nodes(xs), batch=h.batch_of(sizes))
    h.assert_close(out, h.samples_to_nodes(ref))


def test_eval_and_train_differ(h):
    # Sanity of the randomisation: BN running statistics are not the batch
    # statistics, so the two modes give different outputs.
    unit = make(h)
    x = h.randn(30, C)
    a = unit.train()(x, batch_size=2)
    b = unit.eval()(x, batch_size=2)
    assert (a - b).abs().max() > 1e-3


def test_gradients_match_reference(h):
    unit = make(h, normalize=True, seed=2).train()
    xs = [t.requires_grad_() for t in h.random_grids([(3, 4), (2, 5)], C, 2)]
    x = h.samples_to_nodes(xs)
    sizes = [12, 10]
    g_out = h.randn(22, C, seed=3)
    params = list(unit.parameters())

    out = unit(x, batch=h.batch_of(sizes))
    got = torch.autograd.grad((out * g_out).sum(), xs + params)
    ref, _ = ref_glore(h, unit, xs, True)
    want = torch.autograd.grad(
        (h.samples_to_nodes(ref) * g_out).sum(), xs + params)
    for a, b in zip(got, want):
        h.assert_close(a, b)


# ---------------------------------------------------------------------------
# 2. Identity at initialisation, 12. reset_parameters
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('normalize', [False, True])
def test_identity_at_init(h, training, normalize):
    unit = GloReConv(C, M, normalize=normalize).train(training)
    x = torch.randn(29, C)
    assert torch.equal(unit(x, batch=h.batch_of([12, 10, 7])), x)
    assert torch.equal(unit(x), x)


def test_reset_parameters_restores_identity(h):
    unit = make(h).eval()
    x = h.randn(20, C)
    assert not torch.equal(unit(x, batch_size=2), x)
    unit.reset_parameters()
    for training in (True, False):
        assert torch.equal(unit.train(training)(x, batch_size=2), x)
    assert torch.count_nonzero(unit.norm.weight) == 0


# ---------------------------------------------------------------------------
# 3. Permutation equivariance, 4. batch isolation / layout arguments
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('normalize', [False, True])
def test_permutation_equivariance(h, training, normalize):
    unit = make(h, normalize, seed=4).train(training)
    sizes = [11, 7, 14]
    batch = h.batch_of(sizes)
    x = h.randn(sum(sizes), C, seed=4)
    perm = h.permutation_within(sizes, seed=4)
    out = unit(x, batch=batch)
    out_perm = unit(x[perm], batch=batch)
    h.assert_close(out_perm, out[perm])


def test_batch_isolation_eval(h):
    unit = make(h, normalize=True, seed=5).eval()
    sizes = [6, 9, 4]
    x = h.randn(sum(sizes), C, seed=5)
    out = unit(x, batch=h.batch_of(sizes))
    parts = x.split(sizes)
    for s, (xs, os) in enumerate(zip(parts, out.split(sizes))):
        h.assert_close(unit(xs), os)
    # a sample keeps its output among other, different companions
    alone = unit(parts[1])
    other = h.randn(13, C, seed=6)
    for nodes, sizes2, part in [
        (torch.cat([other, parts[1]]), [13, 9], 1),
        (torch.cat([parts[1], other, parts[0]]), [9, 13, 6], 0),
    ]:
        got = unit(nodes, batch=h.batch_of(sizes2)).split(sizes2)[part]
        h.assert_close(got, alone)
    # trailing empty sample (batch_size larger than the last index + 1)
    out_empty = unit(x, batch=h.batch_of(sizes), batch_size=4)
    h.assert_close(out_empty, out)
    # an empty sample in the middle (no node has sample index 1)
    gap = h.batch_of([6, 0, 9, 4])
    assert 1 not in gap.tolist()
    h.assert_close(unit(x, batch=gap), out)


@pytest.mark.parametrize('training', [True, False])
def test_batch_ptr_batch_size_agree(h, training):
    unit = make(h, normalize=True, seed=7).train(training)
    sizes = [6, 9, 4]
    x = h.randn(sum(sizes), C, seed=7)
    a = unit(x, batch=h.batch_of(sizes))
    b = unit(x, ptr=h.ptr_of(sizes))
    h.assert_close(a, b)

    x = h.randn(24, C, seed=8)
    equal = [8, 8, 8]
    a = unit(x, batch=h.batch_of(equal))
    b = unit(x, ptr=h.ptr_of(equal))
    c = unit(x, batch_size=3)
    h.assert_close(a, b)
    h.assert_close(a, c)
    # one sample: no layout argument at all
    h.assert_close(unit(x), unit(x, batch=torch.zeros(24, dtype=torch.long)))


# ---------------------------------------------------------------------------
# 6. gradcheck
# ---------------------------------------------------------------------------
def _gradcheck(unit, x, **kwargs):
    names = [n for n, _ in unit.named_parameters()]
    params = [p.detach().clone().requires_grad_()
              for _, p in unit.named_parameters()]

    def fn(x, *ps):
        return functional_call(unit, dict(zip(names, ps)), (x, ), kwargs)

    return gradcheck(fn, (x.requires_grad_(), *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize('training', [False, True])
def test_gradcheck(h, training):
    unit = make(h, normalize=True, seed=9, channels=4, num_mid=2)
    unit.train(training)
    x = h.randn(9, 4, seed=9)
    assert _gradcheck(unit, x, batch=h.batch_of([5, 4]))


# ---------------------------------------------------------------------------
# 7. Batch size 1
# ---------------------------------------------------------------------------
def test_single_sample_eval(h):
    unit = make(h, seed=10).eval()
    xg = h.randn(1, C, 4, 6, seed=10)
    (ref, ), _ = ref_glore(h, unit, [xg], False)
    h.assert_close(unit(h.grid_to_nodes(xg)), h.grid_to_nodes(ref))
    h.assert_close(unit(h.grid_to_nodes(xg), batch_size=1),
                   h.grid_to_nodes(ref))


@pytest.mark.parametrize('normalize', [False, True])
def test_single_node_eval(h, normalize):
    unit = make(h, normalize, seed=11).eval()
    xg = h.randn(1, C, 1, 1, seed=11)
    (ref, ), _ = ref_glore(h, unit, [xg], False)
    out = unit(h.grid_to_nodes(xg))
    assert out.shape == (1, C)
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
    unit = GloReConv(C, M, normalize=True).eval()
    x = torch.randn(0, C)
    out = unit(x, **layout)
    assert out.shape == (0, C)


# ---------------------------------------------------------------------------
# 9. return_projection
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
def test_return_projection(h, training):
    unit = make(h, seed=12).train(training)
    xs = h.random_grids([(3, 4), (2, 5), (1, 7)], C, seed=12)
    sizes = [12, 10, 7]
    batch = h.batch_of(sizes)
    x = h.samples_to_nodes(xs)
    out, projs = unit(x, batch=batch, return_projection=True)
    assert isinstance(projs, list) and len(projs) == 1
    proj, = projs
    assert isinstance(proj, Projection)
    h.assert_close(out, unit(x, batch=batch))
    assert proj.visible_to_latent.shape == (29, M)
    assert proj.latent_to_visible.shape == (29, M)
    assert proj.latent_graph.shape == (3, M, M)  # shared: an expanded view
    assert torch.equal(proj.batch, batch)
    # B (the visible-to-latent weights) and D = B^T (latent-to-visible)
    _, ps = ref_glore(h, unit, xs, training)
    want = torch.cat([p[0].t() for p in ps])
    h.assert_close(proj.visible_to_latent, want)
    h.assert_close(proj.latent_to_visible, want)
    # I - A_g, entry [k, j] weighs j -> k
    eye = torch.eye(M, dtype=h.DTYPE)
    for graph in proj.latent_graph:
        h.assert_close(graph, eye - unit.latent_graph.adjacency)


def test_return_projection_without_batch(h):
    unit = make(h, seed=13).eval()
    x = h.randn(20, C, seed=13)
    _, (proj, ) = unit(x, batch_size=2, return_projection=True)
    assert torch.equal(proj.batch, h.batch_of([10, 10]))
    _, (proj, ) = unit(x, return_projection=True)
    assert torch.equal(proj.batch, torch.zeros(20, dtype=torch.long))


# ---------------------------------------------------------------------------
# 11. Errors, 12. repr
# ---------------------------------------------------------------------------
def test_wrong_input_shape():
    unit = GloReConv(C, M)
    with pytest.raises(ValueError, match=r"'x' must be \[N, 16\]"):
        unit(torch.randn(10, C + 1))
    with pytest.raises(ValueError, match="'x'"):
        unit(torch.randn(2, C, 5))
    with pytest.raises(ValueError, match="'x'"):
        unit(torch.randn(C))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(in_channels=0, num_mid=M), ValueError,
     "^'in_channels' must be an int >= 1, got 0$"),
    (dict(in_channels=C, num_mid=0), ValueError,
     "^'num_mid' must be an int >= 1, got 0$"),
    (dict(in_channels=C, num_mid=2.0), TypeError,
     r"^'num_mid' must be an int >= 1, got float 2\.0$"),
    (dict(in_channels=True, num_mid=M), TypeError,
     "^'in_channels' must be an int >= 1, got bool True$"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GloReConv(**kwargs)


def test_bad_layout_arguments():
    unit = GloReConv(C, M)
    x = torch.randn(10, C)
    with pytest.raises(ValueError, match="'batch'"):
        unit(x, batch=torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="'batch_size'"):
        unit(x, batch_size=3)
    with pytest.raises(ValueError, match="'ptr'"):
        unit(x, ptr=torch.tensor([0, 4, 9]))


def test_repr():
    assert repr(GloReConv(C, M)) == 'GloReConv(16, num_mid=4, normalize=False)'
    assert (repr(GloReConv(8, 2, normalize=True)) ==
            'GloReConv(8, num_mid=2, normalize=True)')

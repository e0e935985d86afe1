"""NonLocalConv against an independent dense re-implementation of the
embedded-Gaussian non-local block (Wang et al., 2018), plus the node-level
contracts."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.func import functional_call

from glore_pyg.nn import NonLocalConv

C, CI = 16, 8


def ref_non_local(h, unit, xs, training):
    r"""Published ``NONLocalBlock2D`` (embedded Gaussian, ``sub_sample=False``,
    ``bn_layer=True``) on dense grids ``[B_i, C, H_i, W_i]``; the output
    BatchNorm pools all of them.  Returns the outputs and the attention
    matrices ``f [B_i, L_i, L_i]``."""
    ys, fs = [], []
    for x in xs:
        B = x.size(0)
        g_x = h.conv1x1(x, unit.g.weight, unit.g.bias).flatten(2)  # [B,c,L]
        g_x = g_x.permute(0, 2, 1)  # [B, L, c]
        theta_x = h.conv1x1(x, unit.theta.weight,
                            unit.theta.bias).flatten(2).permute(0, 2, 1)
        phi_x = h.conv1x1(x, unit.phi.weight, unit.phi.bias).flatten(2)
        f = F.softmax(torch.matmul(theta_x, phi_x), dim=-1)  # [B, L, L]
        y = torch.matmul(f, g_x).permute(0, 2, 1).contiguous()
        y = y.view(B, -1, *x.shape[2:])
        ys.append(h.conv1x1(y, unit.out.weight, unit.out.bias))
        fs.append(f)
    ys = h.ref_bn(ys, unit.norm, training)
    return [x + y for x, y in zip(xs, ys)], fs


def make(h, seed=0, channels=C, inter=CI):
    return h.randomize(NonLocalConv(channels, inter), seed)


@pytest.mark.parametrize('training', [True, False])
def test_matches_published_forward_on_grid(h, training):
    unit = make(h).train(training)
    xg = h.randn(3, C, 5, 7)
    (ref, ), _ = ref_non_local(h, unit, [xg], training)
    out = unit(h.grid_to_nodes(xg), batch_size=3)
    h.assert_close(out, h.grid_to_nodes(ref))
    assert (out - h.grid_to_nodes(xg)).abs().max() > 0.1


@pytest.mark.parametrize('training', [True, False])
def test_matches_published_forward_unequal_sizes(h, training):
    unit = make(h, seed=1).train(training)
    xs = h.random_grids([(3, 4), (2, 5), (1, 7)], C, seed=1)
    ref, _ = ref_non_local(h, unit, xs, training)
    out = unit(h.samples_to_nodes(xs), batch=h.batch_of([12, 10, 7]))
    h.assert_close(out, h.samples_to_nodes(ref))


def test_default_inter_channels():
    assert NonLocalConv(C).inter_channels == C // 2
    assert NonLocalConv(1).inter_channels == 1
    assert NonLocalConv(5).theta.out_features == 2


@pytest.mark.parametrize('training', [True, False])
def test_identity_at_init(h, training):
    unit = NonLocalConv(C).train(training)
    x = torch.randn(29, C)
    assert torch.equal(unit(x, batch=h.batch_of([12, 10, 7])), x)
    assert torch.equal(unit(x), x)


def test_reset_parameters_restores_identity(h):
    unit = make(h).eval()
    x = h.randn(20, C)
    assert not torch.equal(unit(x, batch_size=2), x)
    unit.reset_parameters()
    assert torch.equal(unit(x, batch_size=2), x)


@pytest.mark.parametrize('training', [True, False])
def test_permutation_equivariance(h, training):
    unit = make(h, seed=2).train(training)
    sizes = [11, 7, 14]
    batch = h.batch_of(sizes)
    x = h.randn(sum(sizes), C, seed=2)
    perm = h.permutation_within(sizes, seed=2)
    h.assert_close(unit(x[perm], batch=batch), unit(x, batch=batch)[perm])


def test_batch_isolation_eval(h):
    unit = make(h, seed=3).eval()
    sizes = [6, 9, 4]
    x = h.randn(sum(sizes), C, seed=3)
    out = unit(x, batch=h.batch_of(sizes))
    for xs, os in zip(x.split(sizes), out.split(sizes)):
        h.assert_close(unit(xs), os)
    h.assert_close(unit(x, ptr=h.ptr_of(sizes)), out)
    x = h.randn(24, C, seed=4)
    a = unit(x, batch_size=3)
    h.assert_close(a, unit(x, batch=h.batch_of([8, 8, 8])))
    h.assert_close(a, unit(x, ptr=h.ptr_of([8, 8, 8])))


@pytest.mark.parametrize('training', [False, True])
def test_gradcheck(h, training):
    unit = make(h, seed=5, channels=4, inter=2).train(training)
    x = h.randn(9, 4, seed=5).requires_grad_()
    names = [n for n, _ in unit.named_parameters()]
    params = [p.detach().clone().requires_grad_()
              for _, p in unit.named_parameters()]
    batch = h.batch_of([5, 4])

    def fn(x, *ps):
        return functional_call(unit, dict(zip(names, ps)), (x, ),
                               dict(batch=batch))

    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-5)


def test_single_sample_and_single_node_eval(h):
    unit = make(h, seed=6).eval()
    for shape in [(4, 6), (1, 1)]:
        xg = h.randn(1, C, *shape, seed=6)
        (ref, ), _ = ref_non_local(h, unit, [xg], False)
        h.assert_close(unit(h.grid_to_nodes(xg)), h.grid_to_nodes(ref))


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
    unit = NonLocalConv(C).eval()
    x = torch.randn(0, C)
    out = unit(x, **layout)
    assert out.shape == (0, C)


@pytest.mark.parametrize('sizes', [[12, 10, 7], [8, 8]])
def test_return_projection(h, sizes):
    unit = make(h, seed=7).train()
    shapes = {12: (3, 4), 10: (2, 5), 7: (1, 7), 8: (2, 4)}
    xs = h.random_grids([shapes[n] for n in sizes], C, seed=7)
    x = h.samples_to_nodes(xs)
    batch = h.batch_of(sizes)
    out, projs = unit(x, batch=batch, return_projection=True)
    h.assert_close(out, unit(x, batch=batch))
    assert isinstance(projs, list) and len(projs) == 1
    proj, = projs
    assert proj.visible_to_latent is None and proj.latent_to_visible is None
    assert torch.equal(proj.batch, batch)
    n_max = max(sizes)
    att = proj.latent_graph  # [S, n_max, n_max], zero-padded
    assert att.shape == (len(sizes), n_max, n_max)
    _, fs = ref_non_local(h, unit, xs, True)
    for a, n, f in zip(att, sizes, fs):
        h.assert_close(a[:n, :n].sum(-1), torch.ones(n, dtype=h.DTYPE))
        h.assert_close(a[:n, :n], f[0])
        assert not a[n:].any() and not a[:, n:].any()


def test_errors_and_repr():
    unit = NonLocalConv(C)
    with pytest.raises(ValueError, match=r"'x' must be \[N, 16\]"):
        unit(torch.randn(10, 8))
    with pytest.raises(ValueError,
                       match="^'inter_channels' must be an int >= 1, got 0$"):
        NonLocalConv(C, 0)
    with pytest.raises(ValueError,
                       match="^'in_channels' must be an int >= 1, got -1$"):
        NonLocalConv(-1)
    with pytest.raises(TypeError, match="^'in_channels' must be an int >= 1, "
                       "got str '16'$"):
        NonLocalConv('16')
    assert repr(unit) == 'NonLocalConv(16, inter_channels=8)'
    assert repr(NonLocalConv(6, 5)) == 'NonLocalConv(6, inter_channels=5)'

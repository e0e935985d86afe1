"""The grid wrappers (``[B, C, *spatial]``) are the node-level layers run on
the flattened grid, one sample per image."""
import pytest
import torch
from torch.autograd import gradcheck
from torch.utils._python_dispatch import TorchDispatchMode

from glore_pyg.nn import (GloRe1d, GloRe2d, GloRe3d, GloReConv, GridUnit,
                          LatentGNN1d, LatentGNN2d, LatentGNN3d,
                          LatentGNNConv, NonLocal2d, NonLocalConv, Projection)
from tests.weights import randomize

DTYPE = torch.float64
C = 16

GLORE = dict(in_channels=C, num_mid=4)
LATENT = dict(in_channels=C, latent_dims=[3, 5], graph_conv=True)
LATENT_SYM = dict(in_channels=C, latent_dims=[4], mode='symmetric')

CASES = [
    pytest.param(GloRe1d, GloReConv, GLORE, (11, ), id='GloRe1d'),
    pytest.param(GloRe2d, GloReConv, dict(GLORE, normalize=True), (3, 5),
                 id='GloRe2d'),
    pytest.param(GloRe3d, GloReConv, GLORE, (2, 3, 4), id='GloRe3d'),
    pytest.param(LatentGNN1d, LatentGNNConv, LATENT, (11, ),
                 id='LatentGNN1d'),
    pytest.param(LatentGNN2d, LatentGNNConv, LATENT, (3, 5),
                 id='LatentGNN2d'),
    pytest.param(LatentGNN2d, LatentGNNConv, LATENT_SYM, (4, 3),
                 id='LatentGNN2d-sym'),
    pytest.param(LatentGNN3d, LatentGNNConv, LATENT, (2, 3, 4),
                 id='LatentGNN3d'),
]


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=DTYPE)


def grid_to_nodes(t):
    return t.flatten(2).transpose(1, 2).reshape(-1, t.size(1))


def close(a, b):
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def pair(grid_cls, node_cls, kwargs, seed=0):
    """A randomised node-level layer and the grid wrapper with its weights
    (copied through the state dict)."""
    node = randomize(node_cls(**kwargs), seed)
    grid = grid_cls(**kwargs).to(DTYPE)
    grid.unit.load_state_dict(node.state_dict())
    return node, grid


# ---------------------------------------------------------------------------
# 5. wrapper == node-level layer on the flattened grid
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('grid_cls, node_cls, kwargs, spatial', CASES)
def test_grid_equals_node_layer(grid_cls, node_cls, kwargs, spatial,
                                training):
    node, grid = pair(grid_cls, node_cls, kwargs)
    node.train(training)
    grid.train(training)
    B = 3
    x = randn(B, C, *spatial)
    out = grid(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    want = node(grid_to_nodes(x), batch_size=B)
    close(grid_to_nodes(out), want)
    assert (grid_to_nodes(out) - grid_to_nodes(x)).abs().max() > 0.05
    # the same with the inspection record
    out2, rest = grid(x, return_projection=True)
    _, want_rest = node(grid_to_nodes(x), batch_size=B,
                        return_projection=True)
    close(out2, out)
    rest = rest if isinstance(rest, list) else [rest]
    want_rest = want_rest if isinstance(want_rest, list) else [want_rest]
    for p, q in zip(rest, want_rest):
        for a, b in zip(p, q):
            close(a.to(b.dtype), b)
    # BN running statistics evolve identically in train mode
    if training:
        for (na, a), (nb, b) in zip(grid.unit.named_buffers(),
                                    node.named_buffers()):
            assert na == nb
            close(a.to(b.dtype), b)


@pytest.mark.parametrize('grid_cls, node_cls, kwargs, spatial', CASES)
def test_wraps_the_node_layer(grid_cls, node_cls, kwargs, spatial):
    grid = grid_cls(**kwargs)
    assert isinstance(grid, GridUnit) and not isinstance(grid, node_cls)
    assert type(grid.unit) is node_cls
    assert grid.in_channels == C and grid.dims == len(spatial)
    assert list(grid.state_dict()) == [
        'unit.' + k for k in node_cls(**kwargs).state_dict()]


def node_forward(node, x):
    """``node`` on the map's rows, back in the map's shape."""
    rows = node(grid_to_nodes(x), batch_size=x.size(0))
    return rows.view(x.size(0), -1, x.size(1)).transpose(1, 2).reshape(
        x.shape)


# ---------------------------------------------------------------------------
# checkpoints of the adapters that were their unit (keys without 'unit.')
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('grid_cls, node_cls, kwargs, spatial', CASES)
def test_old_state_dict_loads(grid_cls, node_cls, kwargs, spatial,
                              training):
    node = randomize(node_cls(**kwargs), 3)
    old = node.state_dict()  # the layout the adapters had
    assert not any(k.startswith('unit.') for k in old)
    grid = grid_cls(**kwargs).to(DTYPE)
    result = grid.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(old) == list(node.state_dict())  # the caller's dict kept
    for k, v in old.items():
        assert torch.equal(grid.state_dict()['unit.' + k], v)
    node.train(training)
    grid.train(training)
    x = randn(2, C, *spatial, seed=4)
    close(grid(x), node_forward(node, x))
    # the new layout saves and loads as it is
    again = grid_cls(**kwargs).to(DTYPE).train(training)
    again.load_state_dict(grid.state_dict(), strict=True)
    close(again(x), grid(x))


class Net(torch.nn.Module):
    def __init__(self, unit):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, C, 1)
        self.blocks = torch.nn.Sequential(unit, torch.nn.ReLU())

    def forward(self, x):
        return self.blocks(self.conv(x))


@pytest.mark.parametrize('make_unit, make_grid', [
    (lambda: GloReConv(C, 4), lambda: GloRe2d(C, 4)),
    (lambda: LatentGNNConv(C, [3, 5], graph_conv=True),
     lambda: LatentGNN2d(C, [3, 5], graph_conv=True)),
    (lambda: NonLocalConv(C), lambda: NonLocal2d(C)),
    (lambda: LatentGNNConv(C, [4]),
     lambda: GridUnit(LatentGNNConv(C, [4]), dims=2)),
])
def test_old_state_dict_loads_nested(make_unit, make_grid):
    """A whole model's checkpoint with the old keys (``blocks.0.norm...``)
    loads with ``strict=True`` into the model with the adapter."""
    torch.manual_seed(0)
    old_model = Net(randomize(make_unit(), 5)).to(DTYPE)
    old = old_model.state_dict()
    assert not any('.unit.' in k for k in old)
    model = Net(make_grid()).to(DTYPE)
    model.load_state_dict(old, strict=True)
    new = model.state_dict()
    renamed = {k.replace('blocks.0.', 'blocks.0.unit.'): v
               for k, v in old.items()}
    assert set(new) == set(renamed)
    for k, v in renamed.items():
        assert torch.equal(new[k], v)
    model.eval()
    x = randn(2, 3, 4, 5, seed=6)
    # the old adapter was the unit itself: the same computation
    want = torch.relu(node_forward(old_model.blocks[0].eval(),
                                   old_model.conv(x)))
    close(model(x), want)


def test_old_state_dict_errors_stay_strict():
    """Keys neither layout knows are still reported; a missing key is
    reported under its new name."""
    old = GloReConv(C, 4).state_dict()
    old['nope'] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="Unexpected key.*\"nope\""):
        GloRe2d(C, 4).load_state_dict(old)
    del old['nope'], old['norm.weight']
    with pytest.raises(RuntimeError,
                       match="Missing key.*\"unit.norm.weight\""):
        GloRe2d(C, 4).load_state_dict(old)


def test_wrap_an_existing_unit():
    node = randomize(LatentGNNConv(C, [3, 5]), 7).to(DTYPE)
    grid = GridUnit(node, dims=2)
    assert grid.unit is node and grid.in_channels == C
    x = randn(3, C, 4, 5, seed=8)
    close(grid(x), node_forward(node, x))
    grid.eval()
    out, projs = grid(x, return_projection=True)
    close(out, node_forward(node, x))
    assert len(projs) == 2
    assert projs[0].batch.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    # the same computation as the named adapter with the same weights
    named = LatentGNN2d(C, [3, 5]).to(DTYPE).eval()
    named.load_state_dict(grid.state_dict(), strict=True)
    close(named(x), out)
    # reset_parameters delegates: the identity again
    grid.reset_parameters()
    close(grid(x), x)


def test_grid_unit_errors():
    with pytest.raises(TypeError, match="'unit' must be a GlobalReasoning"):
        GridUnit(torch.nn.Linear(C, C), dims=2)
    with pytest.raises(ValueError, match="'dims'"):
        GridUnit(GloReConv(C, 4), dims=4)
    with pytest.raises(TypeError, match="'dims'"):
        GridUnit(GloReConv(C, 4), dims=2.0)
    with pytest.raises(ValueError, match=r"GridUnit expects 'x' .* 1 "
                       r"spatial"):
        GridUnit(GloReConv(C, 4), dims=1)(torch.randn(2, C, 3, 3))


def test_non_contiguous_input():
    node, grid = pair(LatentGNN2d, LatentGNNConv, LATENT, seed=1)
    grid.eval()
    x = randn(2, 4, 5, C, seed=1).permute(0, 3, 1, 2)  # [2, C, 4, 5]
    assert not x.is_contiguous()
    close(grid(x), grid(x.contiguous()))
    x = randn(2, C, 5, 4, seed=2).transpose(2, 3)
    close(grid(x), grid(x.contiguous()))


class CopyCounter(TorchDispatchMode):
    """Records the ops that copy a tensor of at least ``numel`` elements."""
    COPIES = ('clone', 'copy_', '_to_copy', 'contiguous')

    def __init__(self, numel):
        super().__init__()
        self.numel, self.copies = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split('.')[0]
        if name in self.COPIES and any(
                isinstance(a, torch.Tensor) and a.numel() >= self.numel
                for a in args):
            self.copies.append(name)
        return out


@pytest.mark.parametrize('fmt', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('grid_cls, node_cls, kwargs, spatial', CASES)
def test_memory_formats(grid_cls, node_cls, kwargs, spatial, fmt):
    """A contiguous map is copied once into node rows, a channels-last map
    is used as rows without a copy: the same outputs, gradients and BN
    statistics, and the input's memory format without a copy back."""
    _, grid = pair(grid_cls, node_cls, kwargs)
    _, ref = pair(grid_cls, node_cls, kwargs)
    x = randn(3, C, *spatial)
    xin = x.clone()
    if fmt == 'channels_last':
        xin = x.movedim(1, -1).contiguous().movedim(-1, 1)
        assert not xin.is_contiguous()
    xin.requires_grad_()
    xref = x.clone().requires_grad_()
    with CopyCounter(x.numel()) as counter:
        out = grid(xin)
    assert counter.copies == (['clone'] if fmt == 'contiguous' else [])
    want = ref(xref)
    close(out, want)
    assert out.stride() == xin.stride()
    g = randn(*out.shape, seed=3)
    out.backward(g)
    want.backward(g)
    close(xin.grad, xref.grad)
    for (na, a), (nb, b) in zip(grid.named_parameters(),
                                ref.named_parameters()):
        close(a.grad, b.grad)
    for a, b in zip(grid.buffers(), ref.buffers()):
        close(a.to(b.dtype), b)


def test_chunked_grid_uses_rows():
    kwargs = dict(LATENT, chunk_size=7)
    node, grid = pair(LatentGNN2d, LatentGNNConv, kwargs)
    x = randn(2, C, 3, 5)
    close(grid(x), node(grid_to_nodes(x), batch_size=2)
          .view(2, 3, 5, C).permute(0, 3, 1, 2))


# ---------------------------------------------------------------------------
# 2. identity at initialisation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('grid_cls, node_cls, kwargs, spatial', CASES)
def test_identity_at_init(grid_cls, node_cls, kwargs, spatial, training):
    grid = grid_cls(**kwargs).train(training)
    x = torch.randn(2, C, *spatial)
    assert torch.equal(grid(x), x)


def test_reset_parameters_restores_identity():
    _, grid = pair(GloRe2d, GloReConv, GLORE, seed=3)
    x = randn(2, C, 3, 4, seed=3)
    assert not torch.equal(grid(x), x)
    grid.reset_parameters()
    assert torch.equal(grid(x), x)


# ---------------------------------------------------------------------------
# 7. batch size 1 / isolation of the images
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('grid_cls, node_cls, kwargs, spatial',
                         [CASES[1], CASES[4], CASES[6]])
def test_single_image_eval(grid_cls, node_cls, kwargs, spatial):
    node, grid = pair(grid_cls, node_cls, kwargs, seed=4)
    node.eval()
    grid.eval()
    x = randn(3, C, *spatial, seed=4)
    out = grid(x)
    for b in range(3):
        one = grid(x[b:b + 1])
        assert one.shape == (1, C) + tuple(spatial)
        close(one, out[b:b + 1])
        close(grid_to_nodes(one), node(grid_to_nodes(x[b:b + 1])))


def test_single_image_train():
    node, grid = pair(GloRe2d, GloReConv, GLORE, seed=5)
    x = randn(1, C, 3, 4, seed=5)
    close(grid_to_nodes(grid.train()(x)), node.train()(grid_to_nodes(x)))


def test_single_position_eval():
    node, grid = pair(LatentGNN2d, LatentGNNConv, LATENT, seed=6)
    grid.eval()
    x = randn(1, C, 1, 1, seed=6)
    out = grid(x)
    assert out.shape == (1, C, 1, 1) and torch.isfinite(out).all()
    close(grid_to_nodes(out), node.eval()(grid_to_nodes(x)))


# ---------------------------------------------------------------------------
# 6. gradcheck
# ---------------------------------------------------------------------------
def test_gradcheck_latentgnn2d_eval():
    grid = randomize(LatentGNN2d(8, [3, 2], channel_stride=4,
                                 graph_conv=True), 7).eval()
    x = randn(2, 8, 3, 2, seed=7).requires_grad_()
    assert gradcheck(grid, (x, ), eps=1e-6, atol=1e-5)


def test_gradcheck_glore3d_train():
    grid = randomize(GloRe3d(4, 2, normalize=True), 8).train()
    x = randn(2, 4, 2, 2, 3, seed=8).requires_grad_()
    assert gradcheck(grid, (x, ), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------
# 9. return_projection on grids
# ---------------------------------------------------------------------------
def test_return_projection_glore2d():
    _, grid = pair(GloRe2d, GloReConv, GLORE, seed=9)
    x = randn(2, C, 3, 5, seed=9)
    out, (proj, ) = grid(x, return_projection=True)
    assert out.shape == x.shape
    assert isinstance(proj, Projection)
    assert proj.visible_to_latent.shape == (30, 4)
    assert proj.latent_to_visible.shape == (30, 4)
    assert proj.latent_graph.shape == (2, 4, 4)
    assert torch.equal(proj.batch, torch.arange(2).repeat_interleave(15))
    close(proj.latent_graph[1],
          torch.eye(4, dtype=DTYPE) - grid.unit.latent_graph.adjacency)
    # the weights of image b, position (i, j) are row b * 15 + i * 5 + j
    close(proj.visible_to_latent.view(2, 3, 5, 4)[1, 2, 3],
          grid.unit.proj(x[1, :, 2, 3]))


@pytest.mark.parametrize('kwargs', [LATENT, LATENT_SYM])
def test_return_projection_latentgnn3d(kwargs):
    _, grid = pair(LatentGNN3d, LatentGNNConv, kwargs, seed=10)
    grid.eval()
    x = randn(2, C, 2, 3, 4, seed=10)
    out, projs = grid(x, return_projection=True)
    close(out, grid(x))
    assert len(projs) == len(kwargs['latent_dims'])
    for proj, d in zip(projs, kwargs['latent_dims']):
        assert proj.visible_to_latent.shape == (48, d)
        assert proj.latent_to_visible.shape == (48, d)
        assert proj.latent_graph.shape == (2, d, d)
        close(proj.latent_graph.sum(-1), torch.ones(2, d, dtype=DTYPE))
        rows = proj.latent_to_visible.norm(dim=1)
        assert ((rows - 1).abs() < 1e-12).logical_or(rows == 0).all()
        if kwargs.get('mode', 'asymmetric') == 'asymmetric':
            cols = proj.visible_to_latent.view(2, 24, d).norm(dim=1)
            assert ((cols - 1).abs() < 1e-12).logical_or(cols == 0).all()


# ---------------------------------------------------------------------------
# 11. errors, 12. repr
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('cls, kwargs, shape, dims', [
    (GloRe2d, GLORE, (2, C, 5), 2),
    (GloRe2d, GLORE, (2, C, 2, 3, 4), 2),
    (GloRe1d, GLORE, (2, C, 3, 4), 1),
    (GloRe3d, GLORE, (2, C, 3, 4), 3),
    (LatentGNN3d, LATENT, (2, C, 3, 4), 3),
    (LatentGNN1d, LATENT, (C, 5), 1),
    (LatentGNN2d, LATENT, (20, C), 2),
])
def test_wrong_number_of_dims(cls, kwargs, shape, dims):
    with pytest.raises(ValueError,
                       match=rf"{cls.__name__} expects 'x' .* {dims} spatial"):
        cls(**kwargs)(torch.randn(*shape))


def test_wrong_channels():
    with pytest.raises(ValueError, match=r"GloRe2d expects 'x' with 16 "
                       r"channels \(dim 1\), got \(2, 8, 3, 3\)"):
        GloRe2d(**GLORE)(torch.randn(2, 8, 3, 3))
    with pytest.raises(ValueError, match=r"LatentGNN1d expects 'x' with 16 "):
        LatentGNN1d(**LATENT)(torch.randn(2, 8, 5))


def test_constructor_errors_pass_through():
    with pytest.raises(ValueError, match="'mode'"):
        LatentGNN2d(C, [4], mode='nope')
    with pytest.raises(ValueError,
                       match="^'num_mid' must be an int >= 1, got 0$"):
        GloRe3d(C, 0)


def test_repr():
    assert (repr(GloRe2d(C, 4)) ==
            'GloRe2d(GloReConv(16, num_mid=4, normalize=False))')
    assert (repr(GloRe1d(8, 2, normalize=True)) ==
            'GloRe1d(GloReConv(8, num_mid=2, normalize=True))')
    assert (repr(LatentGNN3d(C, [4])) ==
            "LatentGNN3d(LatentGNNConv(16, latent_dims=[4], channel_stride=4, "
            "mode='asymmetric', graph_conv=False))")
    assert (repr(GridUnit(NonLocalConv(C), dims=3)) ==
            'GridUnit(NonLocalConv(16, inter_channels=8), dims=3)')

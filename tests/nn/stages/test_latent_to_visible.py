"""Tests of :class:`glore_pyg.nn.stages.LatentToVisible`.

Every path is checked against a dense reference written here from the
equations (a loop over samples with plain matmuls):
``Y_s = W_s Z_s`` with ``W_s`` column-L2-normalised over the visible nodes of
the sample (``'l2_visible'``) or row-L2-normalised over the latent nodes
(``'l2_latent'``).
"""
import pytest
import torch

from glore_pyg.functional import Segments
from glore_pyg.nn.stages import LatentToVisible, VisibleToLatent
from glore_pyg.functional import complete_bipartite_graph
from tests.layouts import LAYOUTS, batch_of, layout_kwargs, normalize_dense

pytestmark = [
    pytest.mark.filterwarnings('ignore:Converting sparse tensor'),
    pytest.mark.filterwarnings('ignore:Sparse CSR tensor support'),
    pytest.mark.filterwarnings('ignore:Sparse invariant checks'),
]

DT = torch.float64
C, D = 3, 4
NORMS = [None, 'l2_visible', 'l2_latent']

@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1)

# ---------------------------------------------------------------------------
# helpers (independent of the library)
def reference(z, w, sizes, normalize):
    """[N, C]: Y_s = norm(W_s) Z_s for each sample."""
    out, start = [], 0
    for s, n in enumerate(sizes):
        out.append(normalize_dense(w[start:start + n], normalize) @ z[s])
        start += n
    return torch.cat(out)

def inputs(sizes, requires_grad=False):
    z = torch.randn(len(sizes), D, C, dtype=DT, requires_grad=requires_grad)
    w = torch.randn(sum(sizes), D, dtype=DT, requires_grad=requires_grad)
    return z, w

def make_adj(kind, index, value, size):
    if kind == 'coo':
        return torch.sparse_coo_tensor(index, value, size)
    if kind == 'coo_coalesced':
        return torch.sparse_coo_tensor(index, value, size).coalesce()
    if kind == 'coo_shuffled':
        perm = torch.randperm(value.numel())
        return torch.sparse_coo_tensor(index[:, perm], value[perm], size)
    if kind == 'coo_duplicates':
        perm = torch.randperm(2 * value.numel())
        idx = torch.cat([index, index], dim=1)[:, perm]
        val = torch.cat([0.25 * value, 0.75 * value])[perm]
        adj = torch.sparse_coo_tensor(idx, val, size)
        assert not adj.is_coalesced()
        return adj
    if kind == 'csr':
        return torch.sparse_coo_tensor(index, value, size).coalesce() \
            .to_sparse_csr()
    if kind == 'csc':
        return torch.sparse_coo_tensor(index, value, size).coalesce() \
            .to_sparse_csc()
    if kind == 'sparse_tensor':
        torch_sparse = pytest.importorskip('torch_sparse')
        return torch_sparse.SparseTensor(row=index[0], col=index[1],
                                         value=value, sparse_sizes=size)
    raise AssertionError(kind)

def topk_graph(w, batch, k=2):
    """Latent-to-visible edges: each visible node receives from its top-k
    latent nodes.  Returns edge_index (row 0 latent, row 1 visible)."""
    n, d = w.shape
    idx = w.detach().topk(k, dim=1).indices
    visible = torch.arange(n).repeat_interleave(k)
    latent = (batch.view(-1, 1) * d + idx).view(-1)
    links = torch.zeros(n, d, dtype=w.dtype).scatter_(1, idx, 1.0)
    return torch.stack([latent, visible]), idx, links

def _grads(out, wrt, g):
    return torch.autograd.grad(out, wrt, g)

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('normalize', NORMS)
def test_fused_matches_dense_reference(normalize, layout):
    sizes, how = LAYOUTS[layout]
    z, w = inputs(sizes)
    out = LatentToVisible(normalize)(z, w, **layout_kwargs(sizes, how))
    assert out.shape == (sum(sizes), C)
    torch.testing.assert_close(out, reference(z, w, sizes, normalize))

@pytest.mark.parametrize('normalize', NORMS)
def test_normalizations_differ(normalize):
    sizes = [3, 1, 4]
    z, w = inputs(sizes)
    out = LatentToVisible(normalize)(z, w, batch=batch_of(sizes))
    for other in NORMS:
        if other != normalize:
            assert not torch.allclose(out, reference(z, w, sizes, other))

@pytest.mark.parametrize('normalize', NORMS)
def test_batch_size_defaults_to_number_of_latent_samples(normalize):
    # documented: ``batch_size`` defaults to ``z.size(0)`` -- also when the
    # last samples have no visible nodes (the layout VisibleToLatent was
    # given with ``batch_size``)
    sizes = [3, 2, 0]
    z, w = inputs(sizes)
    out = LatentToVisible(normalize)(z, w, batch=batch_of(sizes))
    torch.testing.assert_close(out, reference(z, w, sizes, normalize))

@pytest.mark.parametrize('normalize', NORMS)
def test_batch_isolation(normalize):
    sizes = [3, 1, 4]
    z, w = inputs(sizes)
    conv = LatentToVisible(normalize)
    out = conv(z, w, batch=batch_of(sizes))
    start = 0
    for s, n in enumerate(sizes):
        alone = conv(z[s:s + 1], w[start:start + n])
        torch.testing.assert_close(out[start:start + n], alone)
        start += n
    z2, w2 = inputs([2, 6])
    bigger = conv(torch.cat([z, z2]), torch.cat([w, w2]),
                  batch=batch_of(sizes + [2, 6]))
    torch.testing.assert_close(bigger[:8], out)

@pytest.mark.parametrize('normalize', NORMS)
def test_precomputed_segments(normalize):
    sizes = [3, 1, 4]
    z, w = inputs(sizes)
    seg = Segments.from_batch(w, batch=batch_of(sizes))
    conv = LatentToVisible(normalize)
    torch.testing.assert_close(conv(z, w, segments=seg),
                               reference(z, w, sizes, normalize))

def test_round_trip_with_visible_to_latent():
    # GloRe's reverse projection uses the same weights: Y = B^T (B X)
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    x = torch.randn(8, C, dtype=DT)
    w = torch.randn(8, D, dtype=DT)
    z = VisibleToLatent()(x, w, batch=batch)
    y = LatentToVisible()(z, w, batch=batch)
    ref, start = [], 0
    for n in sizes:
        ws, xs = w[start:start + n], x[start:start + n]
        ref.append(ws @ (ws.t() @ xs))
        start += n
    torch.testing.assert_close(y, torch.cat(ref))

def test_visible_nodes_without_samples():
    # all visible nodes live in sample 0; the others only hold latent nodes
    sizes = [4, 0, 0]
    z, w = inputs(sizes)
    out = LatentToVisible('l2_visible')(z, w, batch=batch_of(sizes),
                                        batch_size=3)
    torch.testing.assert_close(out, reference(z, w, sizes, 'l2_visible'))

@pytest.mark.parametrize('normalize', NORMS)
def test_batch_without_visible_nodes(normalize):
    z = torch.randn(2, D, C, dtype=DT)
    w = torch.zeros(0, D, dtype=DT)
    out = LatentToVisible(normalize)(z, w)
    assert out.shape == (0, C)

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('layout', ['unequal_batch', 'equal_batch_size',
                                    'empty_samples'])
@pytest.mark.parametrize('normalize', NORMS)
def test_edge_index_matches_fused(normalize, layout):
    sizes, how = LAYOUTS[layout]
    kwargs = layout_kwargs(sizes, how)
    z, w = inputs(sizes, requires_grad=True)
    conv = LatentToVisible(normalize)
    fused = conv(z, w, **kwargs)
    g = torch.randn_like(fused)
    gz, gw = _grads(fused, (z, w), g)

    ei = complete_bipartite_graph(w, D, **kwargs).flip(0)
    n = sum(sizes)
    out = conv(z.reshape(-1, C), w.reshape(-1), ei, num_visible=n)
    assert out.shape == (n, C)
    torch.testing.assert_close(out, fused)
    ez, ew = _grads(out, (z, w), g)
    torch.testing.assert_close(ez, gz)
    torch.testing.assert_close(ew, gw)

def test_edge_index_shuffled_edge_order():
    sizes = [3, 1, 4]
    z, w = inputs(sizes)
    ei = complete_bipartite_graph(w, D, batch=batch_of(sizes)).flip(0)
    perm = torch.randperm(ei.size(1))
    for normalize in NORMS:
        out = LatentToVisible(normalize)(z.reshape(-1, C),
                                         w.reshape(-1)[perm], ei[:, perm])
        torch.testing.assert_close(out, reference(z, w, sizes, normalize))

SPARSE_KINDS = ['coo', 'coo_coalesced', 'coo_shuffled', 'coo_duplicates',
                'csr', 'csc', 'sparse_tensor']

@pytest.mark.parametrize('kind', SPARSE_KINDS)
@pytest.mark.parametrize('normalize', NORMS)
def test_sparse_adj_forward_matches_fused(normalize, kind):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    z, w = inputs(sizes)
    conv = LatentToVisible(normalize)
    fused = conv(z, w, batch=batch)
    ei = complete_bipartite_graph(w, D, batch=batch)  # row 0 visible
    adj_t = make_adj(kind, ei, w.reshape(-1), (8, 3 * D))  # [N, D]
    out = conv(z.reshape(-1, C), None, adj_t)
    torch.testing.assert_close(out, fused)
    torch.testing.assert_close(
        conv(z.reshape(-1, C), None, adj_t, num_visible=8), out)

@pytest.mark.parametrize('kind', ['coo', 'coo_duplicates', 'csr',
                                  'sparse_tensor'])
@pytest.mark.parametrize('normalize', NORMS)
def test_sparse_adj_grad_z(normalize, kind):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    z, w = inputs(sizes)
    z.requires_grad_()
    conv = LatentToVisible(normalize)
    fused = conv(z, w, batch=batch)
    g = torch.randn_like(fused)
    (gz, ) = _grads(fused, (z, ), g)
    ei = complete_bipartite_graph(w, D, batch=batch)
    adj_t = make_adj(kind, ei, w.reshape(-1), (8, 3 * D))
    (ez, ) = _grads(conv(z.reshape(-1, C), None, adj_t), (z, ), g)
    torch.testing.assert_close(ez, gz)

@pytest.mark.parametrize('kind', ['coo', 'coo_duplicates', 'csr',
                                  'sparse_tensor'])
@pytest.mark.parametrize('normalize', NORMS)
def test_sparse_adj_grad_values(normalize, kind):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    z, w = inputs(sizes, requires_grad=True)
    conv = LatentToVisible(normalize)
    fused = conv(z, w, batch=batch)
    g = torch.randn_like(fused)
    gz, gw = _grads(fused, (z, w), g)

    ei = complete_bipartite_graph(w, D, batch=batch)
    value = w.detach().reshape(-1).clone().requires_grad_()
    adj_t = make_adj(kind, ei, value, (8, 3 * D))
    out = conv(z.reshape(-1, C), None, adj_t)
    torch.testing.assert_close(out, fused)
    ez, ev = _grads(out, (z, value), g)
    torch.testing.assert_close(ez, gz)
    torch.testing.assert_close(ev, gw.reshape(-1))

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('path', ['edge_index', 'csr', 'sparse_tensor'])
@pytest.mark.parametrize('normalize', NORMS)
def test_topk_graph_matches_zero_filled_dense(normalize, path):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    z, w = inputs(sizes, requires_grad=True)
    ei, idx, links = topk_graph(w, batch, k=2)
    value = w.gather(1, idx).reshape(-1)
    conv = LatentToVisible(normalize)
    if path == 'edge_index':
        out = conv(z.reshape(-1, C), value, ei, num_visible=8)
    else:
        out = conv(z.reshape(-1, C), None,
                   make_adj(path, ei.flip(0), value, (8, 3 * D)))

    ref = reference(z, w * links, sizes, normalize)
    torch.testing.assert_close(out, ref)
    assert not torch.allclose(out, reference(z, w, sizes, normalize))

    g = torch.randn_like(out)
    ez, ew = _grads(out, (z, w), g)
    rz, rw = _grads(ref, (z, w), g)
    torch.testing.assert_close(ez, rz)
    torch.testing.assert_close(ew, rw)
    assert torch.count_nonzero(ew * (1 - links)) == 0

def test_visible_node_without_edges_is_zero():
    z = torch.randn(3, C, dtype=DT)
    ei = torch.tensor([[0, 1, 2], [0, 0, 2]])  # visible 1 and 3 get nothing
    w = torch.randn(3, dtype=DT)
    for normalize in NORMS:
        out = LatentToVisible(normalize)(z, w, ei, num_visible=4)
        assert out.shape == (4, C)
        assert out.isfinite().all()
        assert torch.count_nonzero(out[1]) == 0
        assert torch.count_nonzero(out[3]) == 0

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('normalize', NORMS)
def test_gradcheck_fused(normalize):
    sizes = [2, 1, 3]
    z, w = inputs(sizes, requires_grad=True)
    conv = LatentToVisible(normalize)
    batch = batch_of(sizes)
    assert torch.autograd.gradcheck(lambda a, b: conv(a, b, batch=batch),
                                    (z, w))
    ze, we = inputs([2, 2], requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: conv(a, b), (ze, we))

@pytest.mark.parametrize('normalize', ['l2_visible', 'l2_latent'])
def test_gradcheck_explicit(normalize):
    batch = batch_of([2, 3])
    w = torch.randn(5, 3, dtype=DT)
    ei, idx, _ = topk_graph(w, batch, k=2)
    z = torch.randn(6, C, dtype=DT, requires_grad=True)
    value = w.gather(1, idx).reshape(-1).requires_grad_()
    conv = LatentToVisible(normalize)
    assert torch.autograd.gradcheck(
        lambda a, b: conv(a, b, ei, num_visible=5), (z, value))

    def via_csr(a, b):
        adj = torch.sparse_coo_tensor(ei.flip(0), b, (5, 6)).coalesce()
        return conv(a, None, adj.to_sparse_csr())

    assert torch.autograd.gradcheck(via_csr, (z, value), fast_mode=True)

# ---------------------------------------------------------------------------
def test_message_hooks_fire_on_explicit_path():
    sizes = [3, 1, 4]
    z, w = inputs(sizes)
    ei = complete_bipartite_graph(w, D, batch=batch_of(sizes)).flip(0)
    conv = LatentToVisible('l2_latent')
    messages, propagates = [], []
    conv.register_message_forward_hook(
        lambda module, args, out: messages.append(out.shape))
    conv.register_propagate_forward_hook(
        lambda module, args, out: propagates.append(out.shape))
    conv(z.reshape(-1, C), w.reshape(-1), ei, num_visible=8)
    assert messages == [torch.Size([ei.size(1), C])]
    assert propagates == [torch.Size([8, C])]
    conv(z, w, batch=batch_of(sizes))  # fused: no messages
    assert len(messages) == 1

@pytest.mark.parametrize('normalize', NORMS)
def test_repr(normalize):
    assert repr(LatentToVisible(normalize)) == \
        f'LatentToVisible(normalize={normalize!r})'

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('normalize', ['mean', 'l2', 'L2_latent'])
def test_bad_normalize(normalize):
    with pytest.raises(ValueError, match=r"'normalize' must be one of"):
        LatentToVisible(normalize)

@pytest.mark.parametrize('weight', [
    None,
    torch.zeros(5, dtype=DT),
    torch.zeros(5, D + 1, dtype=DT),  # d disagrees with z
])
def test_fused_wrong_weight_shape(weight):
    z = torch.zeros(1, D, C, dtype=DT)
    with pytest.raises(ValueError, match=r"'weight' must be \[N, d\]"):
        LatentToVisible()(z, weight)

def test_fused_errors():
    sizes = [3, 2]
    z, w = inputs(sizes)
    conv = LatentToVisible()
    with pytest.raises(ValueError, match=r"'z' must be \[S, d, C\]"):
        conv(z.reshape(-1, C), w)
    with pytest.raises(ValueError, match=r"'z' holds 2 samples"):
        conv(z, w, ptr=torch.tensor([0, 2, 4, 5]))
    # batch_size defaults to z.size(0): a third sample index is an error
    with pytest.raises(ValueError, match=r"'batch' holds sample index 2"):
        conv(z, w, batch=torch.tensor([0, 0, 1, 1, 2]))
    with pytest.raises(ValueError, match=r"'batch' must be sorted"):
        conv(z, w, batch=torch.tensor([0, 1, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"'ptr' must start at 0 and end"):
        conv(z, w, ptr=torch.tensor([0, 3, 4]))

def test_explicit_errors():
    sizes = [3, 2]
    z, w = inputs(sizes)
    ei = complete_bipartite_graph(w, D, batch=batch_of(sizes))
    conv = LatentToVisible()
    zf = z.reshape(-1, C)
    with pytest.raises(ValueError, match=r"'weight' must hold one value per"):
        conv(zf, w, ei.flip(0))
    adj_t = torch.sparse_coo_tensor(ei, w.reshape(-1), (5, 2 * D))
    with pytest.raises(ValueError, match=r"'weight' must be None"):
        conv(zf, w.reshape(-1), adj_t)
    with pytest.raises(ValueError, match=r"must have shape \[num_targets"):
        conv(zf[:-1], None, adj_t)
    with pytest.raises(ValueError, match=r"targets were requested"):
        conv(zf, None, adj_t, num_visible=6)

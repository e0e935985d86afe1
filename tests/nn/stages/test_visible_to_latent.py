"""Tests of :class:`glore_pyg.nn.stages.VisibleToLatent`.

Every path is checked against a dense reference written here from the
equations (a loop over samples with plain matmuls):
``Z_s = W_s^T X_s`` with ``W_s`` column-L2-normalised over the visible nodes
of the sample (``'l2_visible'``), row-L2-normalised (``'l2_latent'``), or
``Z_s`` divided by the number of visible nodes of the sample (``'mean'``).
"""
import pytest
import torch

from glore_pyg.functional import Segments
from glore_pyg.nn.stages import VisibleToLatent
from glore_pyg.functional import complete_bipartite_graph
from tests.layouts import LAYOUTS, batch_of, layout_kwargs, normalize_dense

pytestmark = [
    pytest.mark.filterwarnings('ignore:Converting sparse tensor'),
    pytest.mark.filterwarnings('ignore:Sparse CSR tensor support'),
    pytest.mark.filterwarnings('ignore:Sparse invariant checks'),
]

DT = torch.float64
C, D = 3, 4
NORMS = [None, 'mean', 'l2_visible', 'l2_latent']

@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

# ---------------------------------------------------------------------------
# helpers (independent of the library)
def reference(x, w, sizes, normalize, links=None):
    """[S, d, C].  ``links`` ([N, d] 0/1) marks existing edges: 'mean' then
    divides by the number of linked visible nodes of each latent node."""
    out, start = [], 0
    for n in sizes:
        xs, ws = x[start:start + n], w[start:start + n]
        z = normalize_dense(ws, normalize).t() @ xs
        if normalize == 'mean':
            if links is None:
                z = z / max(n, 1)
            else:
                deg = links[start:start + n].sum(0).clamp_min(1)
                z = z / deg.view(-1, 1)
        out.append(z)
        start += n
    return torch.stack(out)

def inputs(sizes, requires_grad=False):
    n = sum(sizes)
    x = torch.randn(n, C, dtype=DT, requires_grad=requires_grad)
    w = torch.randn(n, D, dtype=DT, requires_grad=requires_grad)
    return x, w

def make_adj(kind, index, value, size):
    """A sparse adjacency [size] with entries ``value`` at ``index`` (row 0
    = row of the adjacency), built differentiably from ``value``."""
    if kind == 'coo':
        return torch.sparse_coo_tensor(index, value, size)
    if kind == 'coo_coalesced':
        return torch.sparse_coo_tensor(index, value, size).coalesce()
    if kind == 'coo_shuffled':  # uncoalesced, random edge order
        perm = torch.randperm(value.numel())
        return torch.sparse_coo_tensor(index[:, perm], value[perm], size)
    if kind == 'coo_duplicates':  # each weight split into two entries
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
    """Each visible node linked to its top-k latent nodes."""
    n, d = w.shape
    idx = w.detach().topk(k, dim=1).indices  # [N, k]
    visible = torch.arange(n).repeat_interleave(k)
    latent = (batch.view(-1, 1) * d + idx).view(-1)
    links = torch.zeros(n, d, dtype=w.dtype).scatter_(1, idx, 1.0)
    return torch.stack([visible, latent]), idx, links

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('normalize', NORMS)
def test_fused_matches_dense_reference(normalize, layout):
    sizes, how = LAYOUTS[layout]
    x, w = inputs(sizes)
    out = VisibleToLatent(normalize)(x, w, **layout_kwargs(sizes, how))
    assert out.shape == (len(sizes), D, C)
    torch.testing.assert_close(out, reference(x, w, sizes, normalize))

@pytest.mark.parametrize('normalize', NORMS)
def test_normalizations_differ(normalize):
    # guards against a reference that ignores 'normalize'
    sizes = [3, 1, 4]
    x, w = inputs(sizes)
    out = VisibleToLatent(normalize)(x, w, batch=batch_of(sizes))
    for other in NORMS:
        if other != normalize:
            assert not torch.allclose(out, reference(x, w, sizes, other))

@pytest.mark.parametrize('normalize', NORMS)
def test_empty_sample_gives_zero_latent_features(normalize):
    sizes = [3, 0, 2, 0]
    x, w = inputs(sizes)
    out = VisibleToLatent(normalize)(x, w, batch=batch_of(sizes),
                                     batch_size=4)
    assert out.shape == (4, D, C)
    assert torch.count_nonzero(out[1]) == 0
    assert torch.count_nonzero(out[3]) == 0
    assert out.isfinite().all()

@pytest.mark.parametrize('normalize', NORMS)
def test_batch_without_visible_nodes(normalize):
    x = torch.zeros(0, C, dtype=DT)
    w = torch.zeros(0, D, dtype=DT)
    out = VisibleToLatent(normalize)(x, w, batch_size=2)
    torch.testing.assert_close(out, torch.zeros(2, D, C, dtype=DT))

@pytest.mark.parametrize('normalize', NORMS)
def test_batch_isolation(normalize):
    sizes = [3, 1, 4]
    x, w = inputs(sizes)
    conv = VisibleToLatent(normalize)
    out = conv(x, w, batch=batch_of(sizes))
    start = 0
    for s, n in enumerate(sizes):
        alone = conv(x[start:start + n], w[start:start + n])
        torch.testing.assert_close(out[s], alone[0])
        start += n
    # appending samples to a batch does not change the earlier ones
    x2, w2 = inputs([2, 6])
    bigger = conv(torch.cat([x, x2]), torch.cat([w, w2]),
                  batch=batch_of(sizes + [2, 6]))
    torch.testing.assert_close(bigger[:3], out)

@pytest.mark.parametrize('normalize', NORMS)
def test_precomputed_segments(normalize):
    sizes = [3, 1, 4]
    x, w = inputs(sizes)
    seg = Segments.from_batch(x, batch=batch_of(sizes))
    conv = VisibleToLatent(normalize)
    torch.testing.assert_close(conv(x, w, segments=seg),
                               conv(x, w, batch=batch_of(sizes)))

# ---------------------------------------------------------------------------
# explicit paths == fused path
def _grads(out, wrt, g):
    return torch.autograd.grad(out, wrt, g)

@pytest.mark.parametrize('layout', ['unequal_batch', 'equal_batch_size',
                                    'empty_samples'])
@pytest.mark.parametrize('normalize', NORMS)
def test_edge_index_matches_fused(normalize, layout):
    sizes, how = LAYOUTS[layout]
    kwargs = layout_kwargs(sizes, how)
    x, w = inputs(sizes, requires_grad=True)
    conv = VisibleToLatent(normalize)
    fused = conv(x, w, **kwargs)
    g = torch.randn_like(fused)
    gx, gw = _grads(fused, (x, w), g)

    ei = complete_bipartite_graph(x, D, **kwargs)
    assert ei.shape == (2, x.size(0) * D)
    out = conv(x, w.reshape(-1), ei, num_latent=len(sizes) * D)
    assert out.shape == (len(sizes) * D, C)
    torch.testing.assert_close(out, fused.reshape(-1, C))
    ex, ew = _grads(out, (x, w), g.reshape(-1, C))
    torch.testing.assert_close(ex, gx)
    torch.testing.assert_close(ew, gw)

def test_complete_bipartite_graph_edge_order():
    # documented: edge j * d + k is (j, s * d + k), s the sample of j
    x = torch.zeros(3, C)
    ei = complete_bipartite_graph(x, 2, batch=torch.tensor([0, 0, 1]))
    assert ei.tolist() == [[0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 2, 3]]
    ei = complete_bipartite_graph(x, 2, ptr=torch.tensor([0, 1, 3]))
    assert ei.tolist() == [[0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 2, 3]]
    ei = complete_bipartite_graph(torch.zeros(4, C), 2, batch_size=2)
    assert ei[1].tolist() == [0, 1, 0, 1, 2, 3, 2, 3]

def test_edge_index_infers_num_latent():
    sizes = [3, 1, 4]
    x, w = inputs(sizes)
    ei = complete_bipartite_graph(x, D, batch=batch_of(sizes))
    out = VisibleToLatent()(x, w.reshape(-1), ei)
    torch.testing.assert_close(out, reference(x, w, sizes, None)
                               .reshape(-1, C))

def test_edge_index_shuffled_edge_order():
    sizes = [3, 1, 4]
    x, w = inputs(sizes)
    ei = complete_bipartite_graph(x, D, batch=batch_of(sizes))
    perm = torch.randperm(ei.size(1))
    for normalize in NORMS:
        conv = VisibleToLatent(normalize)
        out = conv(x, w.reshape(-1)[perm], ei[:, perm], num_latent=3 * D)
        torch.testing.assert_close(
            out, reference(x, w, sizes, normalize).reshape(-1, C))

SPARSE_KINDS = ['coo', 'coo_coalesced', 'coo_shuffled', 'coo_duplicates',
                'csr', 'csc', 'sparse_tensor']

@pytest.mark.parametrize('kind', SPARSE_KINDS)
@pytest.mark.parametrize('normalize', NORMS)
def test_sparse_adj_forward_matches_fused(normalize, kind):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    x, w = inputs(sizes)
    conv = VisibleToLatent(normalize)
    fused = conv(x, w, batch=batch)
    ei = complete_bipartite_graph(x, D, batch=batch)
    adj_t = make_adj(kind, ei.flip(0), w.reshape(-1), (3 * D, x.size(0)))
    out = conv(x, None, adj_t)
    torch.testing.assert_close(out, fused.reshape(-1, C))
    # and with num_latent given explicitly
    torch.testing.assert_close(conv(x, None, adj_t, num_latent=3 * D), out)

@pytest.mark.parametrize('kind', ['coo', 'coo_duplicates', 'csr',
                                  'sparse_tensor'])
@pytest.mark.parametrize('normalize', NORMS)
def test_sparse_adj_grad_x(normalize, kind):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    x, w = inputs(sizes)
    x.requires_grad_()
    conv = VisibleToLatent(normalize)
    fused = conv(x, w, batch=batch)
    g = torch.randn_like(fused)
    (gx, ) = _grads(fused, (x, ), g)
    ei = complete_bipartite_graph(x, D, batch=batch)
    adj_t = make_adj(kind, ei.flip(0), w.reshape(-1), (3 * D, x.size(0)))
    (ex, ) = _grads(conv(x, None, adj_t), (x, ), g.reshape(-1, C))
    torch.testing.assert_close(ex, gx)

@pytest.mark.parametrize('kind', ['coo', 'coo_duplicates', 'csr',
                                  'sparse_tensor'])
@pytest.mark.parametrize('normalize', NORMS)
def test_sparse_adj_grad_values(normalize, kind):
    """Gradients w.r.t. both x and the values the adjacency is built from."""
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    x, w = inputs(sizes, requires_grad=True)
    conv = VisibleToLatent(normalize)
    fused = conv(x, w, batch=batch)
    g = torch.randn_like(fused)
    gx, gw = _grads(fused, (x, w), g)

    ei = complete_bipartite_graph(x, D, batch=batch)
    value = w.detach().reshape(-1).clone().requires_grad_()
    adj_t = make_adj(kind, ei.flip(0), value, (3 * D, x.size(0)))
    out = conv(x, None, adj_t)
    torch.testing.assert_close(out, fused.reshape(-1, C))
    ex, ev = _grads(out, (x, value), g.reshape(-1, C))
    torch.testing.assert_close(ex, gx)
    torch.testing.assert_close(ev, gw.reshape(-1))

# ---------------------------------------------------------------------------
# a sparsified (top-k) bipartite graph
@pytest.mark.parametrize('path', ['edge_index', 'csr', 'sparse_tensor'])
@pytest.mark.parametrize('normalize', NORMS)
def test_topk_graph_matches_zero_filled_dense(normalize, path):
    sizes = [3, 1, 4]
    batch = batch_of(sizes)
    x, w = inputs(sizes, requires_grad=True)
    ei, idx, links = topk_graph(w, batch, k=2)
    value = w.gather(1, idx).reshape(-1)
    conv = VisibleToLatent(normalize)
    if path == 'edge_index':
        out = conv(x, value, ei, num_latent=3 * D)
    else:
        out = conv(x, None, make_adj(path, ei.flip(0), value,
                                     (3 * D, x.size(0))))

    ref = reference(x, w * links, sizes, normalize, links=links)
    torch.testing.assert_close(out, ref.reshape(-1, C))
    # the sparsified graph really differs from the complete one
    assert not torch.allclose(out, reference(x, w, sizes, normalize)
                              .reshape(-1, C))

    g = torch.randn_like(out)
    ex, ew = _grads(out, (x, w), g)
    rx, rw = _grads(ref.reshape(-1, C), (x, w), g)
    torch.testing.assert_close(ex, rx)
    torch.testing.assert_close(ew, rw)
    assert torch.count_nonzero(ew * (1 - links)) == 0

def test_topk_latent_without_edges_is_zero():
    # latent nodes that no visible node links to get zero features,
    # also with the L2 normalisation over their (absent) edges
    x = torch.randn(4, C, dtype=DT)
    ei = torch.tensor([[0, 1, 2, 3], [0, 0, 2, 2]])
    w = torch.randn(4, dtype=DT)
    for normalize in NORMS:
        out = VisibleToLatent(normalize)(x, w, ei, num_latent=4)
        assert out.shape == (4, C)
        assert out.isfinite().all()
        assert torch.count_nonzero(out[1]) == 0
        assert torch.count_nonzero(out[3]) == 0

# ---------------------------------------------------------------------------
@pytest.mark.parametrize('normalize', NORMS)
def test_gradcheck_fused(normalize):
    sizes = [2, 1, 3]
    x, w = inputs(sizes, requires_grad=True)
    conv = VisibleToLatent(normalize)
    batch = batch_of(sizes)
    assert torch.autograd.gradcheck(lambda a, b: conv(a, b, batch=batch),
                                    (x, w))
    xe, we = inputs([2, 2], requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: conv(a, b, batch_size=2),
                                    (xe, we))

@pytest.mark.parametrize('normalize', ['l2_visible', 'l2_latent', 'mean'])
def test_gradcheck_explicit(normalize):
    sizes = [2, 3]
    batch = batch_of(sizes)
    x = torch.randn(5, C, dtype=DT, requires_grad=True)
    w = torch.randn(5, 3, dtype=DT)
    ei, idx, _ = topk_graph(w, batch, k=2)
    value = w.gather(1, idx).reshape(-1).requires_grad_()
    conv = VisibleToLatent(normalize)
    assert torch.autograd.gradcheck(
        lambda a, b: conv(a, b, ei, num_latent=6), (x, value))

    def via_csr(a, b):
        adj = torch.sparse_coo_tensor(ei.flip(0), b, (6, 5)).coalesce()
        return conv(a, None, adj.to_sparse_csr())

    # fast mode: the slow mode differentiates the sparse product once per
    # output element, which takes seconds
    assert torch.autograd.gradcheck(via_csr, (x, value), fast_mode=True)

# ---------------------------------------------------------------------------
def test_message_hooks_fire_on_explicit_path():
    sizes = [3, 1, 4]
    x, w = inputs(sizes)
    ei = complete_bipartite_graph(x, D, batch=batch_of(sizes))
    conv = VisibleToLatent('l2_latent')
    messages, propagates = [], []
    h1 = conv.register_message_forward_hook(
        lambda module, args, out: messages.append(out.shape))
    h2 = conv.register_propagate_forward_hook(
        lambda module, args, out: propagates.append(out.shape))
    conv(x, w.reshape(-1), ei, num_latent=3 * D)
    assert messages == [torch.Size([ei.size(1), C])]
    assert propagates == [torch.Size([3 * D, C])]
    # the fused path builds no message tensor
    conv(x, w, batch=batch_of(sizes))
    assert len(messages) == 1
    h1.remove()
    h2.remove()
    conv(x, w.reshape(-1), ei)
    assert len(messages) == 1 and len(propagates) == 1

def test_message_hook_can_edit_messages():
    # a hook that zeroes every message zeroes the output: the explicit path
    # really aggregates the messages PyG hands to hooks
    x, w = inputs([4])
    ei = complete_bipartite_graph(x, D)
    conv = VisibleToLatent()
    conv.register_message_forward_hook(
        lambda module, args, out: torch.zeros_like(out))
    out = conv(x, w.reshape(-1), ei)
    assert torch.count_nonzero(out) == 0

@pytest.mark.parametrize('normalize', NORMS)
def test_repr(normalize):
    assert repr(VisibleToLatent(normalize)) == \
        f'VisibleToLatent(normalize={normalize!r})'

def test_has_no_parameters():
    assert list(VisibleToLatent('l2_visible').parameters()) == []

# ---------------------------------------------------------------------------
def test_bad_normalize():
    with pytest.raises(ValueError, match=r"'normalize' must be one of"):
        VisibleToLatent('l2')
    with pytest.raises(ValueError, match=r"'normalize' must be one of"):
        VisibleToLatent('sum')

@pytest.mark.parametrize('weight', [
    None,
    torch.zeros(5, dtype=DT),  # not a matrix
    torch.zeros(4, D, dtype=DT),  # wrong number of visible nodes
    torch.zeros(5, D, 1, dtype=DT),
])
def test_fused_wrong_weight_shape(weight):
    x = torch.zeros(5, C, dtype=DT)
    with pytest.raises(ValueError, match=r"'weight' must be \[N, d\]"):
        VisibleToLatent()(x, weight)

def test_fused_layout_errors():
    x, w = inputs([3, 2])
    conv = VisibleToLatent()
    with pytest.raises(ValueError, match=r"'batch' must be sorted"):
        conv(x, w, batch=torch.tensor([0, 1, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"'ptr' must start at 0 and end"):
        conv(x, w, ptr=torch.tensor([0, 3, 4]))
    with pytest.raises(ValueError, match=r"'batch_size'"):
        conv(x, w, batch_size=2)  # 5 nodes do not split into 2 samples

def test_explicit_errors():
    x, w = inputs([3, 2])
    ei = complete_bipartite_graph(x, D, batch=batch_of([3, 2]))
    conv = VisibleToLatent()
    with pytest.raises(ValueError, match=r"'weight' must hold one value per"):
        conv(x, w, ei)  # the dense [N, d] matrix instead of [E]
    with pytest.raises(ValueError, match=r"'weight' must hold one value per"):
        conv(x, None, ei)
    with pytest.raises(ValueError, match=r"'edge_index' must be a \[2, E\]"):
        conv(x, w.reshape(-1), ei[:1])
    adj_t = torch.sparse_coo_tensor(ei.flip(0), w.reshape(-1), (2 * D, 5))
    with pytest.raises(ValueError, match=r"'weight' must be None"):
        conv(x, w.reshape(-1), adj_t)
    with pytest.raises(ValueError,
                       match=r"must have shape \[num_targets, 6\]"):
        conv(torch.zeros(6, C, dtype=DT), None, adj_t)
    with pytest.raises(ValueError, match=r"targets were requested"):
        conv(x, None, adj_t, num_latent=3 * D)
    with pytest.raises(ValueError, match=r"node features must be a matrix"):
        conv(x.unsqueeze(0), w.reshape(-1), ei)

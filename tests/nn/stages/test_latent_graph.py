"""Tests of the latent-to-latent stages: :class:`GloReGraphConv`,
:class:`LatentAffinityConv` and :class:`AttentionConv`.

Each is checked against a dense per-sample reference written here:

* GloReGraphConv: ``relu((I - A) V_s + b) W^T`` with the module's
  ``adjacency``, ``node_bias`` and ``lin.weight``;
* LatentAffinityConv: ``softmax(norm(Z_s) norm(Z_s)^T) Z_s``;
* AttentionConv: ``softmax(Q_s K_s^T) V_s``;

and on a sparsified graph the messages are restricted to existing edges.
"""
import pytest
import torch
from torch.func import functional_call

from glore_pyg.nn.stages import (AttentionConv, GloReGraphConv,
                                 LatentAffinityConv)
from glore_pyg.functional import complete_latent_graph

DT = torch.float64
S, d, C, F = 3, 4, 5, 2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(2)


def edges_from_mask(mask):
    """``mask [S, d, d]`` (entry [s, k, j]: edge j -> k of sample s) as an
    edge_index over latent nodes numbered s * d + k, in random order."""
    s, k, j = mask.nonzero(as_tuple=True)
    n = mask.size(1)
    ei = torch.stack([s * n + j, s * n + k])
    return ei[:, torch.randperm(ei.size(1))]


def random_mask(num_samples, n, p=0.5, self_loops=True):
    mask = torch.rand(num_samples, n, n) < p
    if self_loops:
        mask |= torch.eye(n, dtype=torch.bool)
    return mask


# ===========================================================================
# GloReGraphConv
def glore_conv(bias=True):
    conv = GloReGraphConv(num_nodes=d, channels=C, bias=bias).double()
    with torch.no_grad():  # node mixing of order one so ReLU is not trivial
        conv.adjacency.copy_(torch.randn(d, d, dtype=DT) * 0.5)
        if bias:
            conv.node_bias.copy_(torch.randn(d, dtype=DT) * 0.5)
    return conv


def glore_reference(conv, v, mask=None):
    """v [S, d, C] -> [S, d, C].  ``mask [S, d, d]`` keeps the entries
    ``(I - A)[k, j]`` of existing edges j -> k."""
    A, W = conv.adjacency, conv.lin.weight
    eye = torch.eye(d, dtype=DT)
    out = []
    for s in range(v.size(0)):
        mix = eye - A
        if mask is not None:
            mix = mix * mask[s].to(DT)
        h = mix @ v[s]
        if conv.node_bias is not None:
            h = h + conv.node_bias.view(-1, 1)
        out.append(torch.relu(h) @ W.t())
    return torch.stack(out)


def test_complete_latent_graph_edge_order():
    # documented: edge (s * d + k) * d + j is j -> k of sample s
    ei = complete_latent_graph(2, 2)
    assert ei.tolist() == [[0, 1, 0, 1, 2, 3, 2, 3],
                           [0, 0, 1, 1, 2, 2, 3, 3]]


def glore_params(conv):
    return [p for p in (conv.adjacency, conv.node_bias, conv.lin.weight)
            if p is not None]


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('num_samples', [1, 3])
def test_glore_fused_matches_reference(bias, num_samples):
    conv = glore_conv(bias)
    v = torch.randn(num_samples, d, C, dtype=DT)
    out = conv(v)
    assert out.shape == (num_samples, d, C)
    ref = glore_reference(conv, v)
    torch.testing.assert_close(out, ref)
    # the ReLU is active on this input (so it is really tested)
    h = (torch.eye(d, dtype=DT) - conv.adjacency) @ v
    assert (h < 0).any() and (h > 0).any()


def test_glore_parameters():
    conv = GloReGraphConv(num_nodes=d, channels=C)
    shapes = {n: tuple(p.shape) for n, p in conv.named_parameters()}
    assert shapes == {'adjacency': (d, d), 'node_bias': (d, ),
                      'lin.weight': (C, C)}
    assert GloReGraphConv(d, C, bias=False).node_bias is None
    eye = torch.eye(d)
    torch.testing.assert_close(conv.node_mixing(), eye - conv.adjacency)


@pytest.mark.parametrize('bias', [True, False])
def test_glore_explicit_complete_graph_matches_fused(bias):
    conv = glore_conv(bias)
    v = torch.randn(S, d, C, dtype=DT, requires_grad=True)
    params = glore_params(conv)
    fused = conv(v)
    g = torch.randn_like(fused)
    ref_grads = torch.autograd.grad(fused, [v] + params, g)

    ei = complete_latent_graph(S, d)
    assert ei.shape == (2, S * d * d)
    for edge_index in (ei, ei[:, torch.randperm(ei.size(1))]):
        out = conv(v.reshape(S * d, C), edge_index)
        assert out.shape == (S * d, C)
        torch.testing.assert_close(out, fused.reshape(-1, C))
        grads = torch.autograd.grad(out, [v] + params, g.reshape(-1, C))
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b)


def test_glore_explicit_sparsified_graph():
    conv = glore_conv()
    v = torch.randn(S, d, C, dtype=DT, requires_grad=True)
    mask = random_mask(S, d, p=0.4, self_loops=False)
    mask[0, 1] = False  # a latent node without incoming edges
    ei = edges_from_mask(mask)
    out = conv(v.reshape(-1, C), ei)
    ref = glore_reference(conv, v, mask)
    torch.testing.assert_close(out, ref.reshape(-1, C))
    assert not torch.allclose(out, glore_reference(conv, v).reshape(-1, C))
    # node without messages: relu(bias) W^T
    torch.testing.assert_close(
        out[1], torch.relu(conv.node_bias[1]).expand(C) @ conv.lin.weight.t())

    params = glore_params(conv)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [v] + params, g)
    ref_grads = torch.autograd.grad(ref.reshape(-1, C), [v] + params, g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_glore_batch_isolation():
    conv = glore_conv()
    v = torch.randn(S, d, C, dtype=DT)
    out = conv(v)
    for s in range(S):
        torch.testing.assert_close(out[s], conv(v[s:s + 1])[0])
    # explicit: each sample's edges only touch its own nodes
    ei = complete_latent_graph(S, d)
    out_e = conv(v.reshape(-1, C), ei).view(S, d, C)
    one = conv(v[1].reshape(-1, C), complete_latent_graph(1, d))
    torch.testing.assert_close(out_e[1], one)


def _glore_functional(conv):
    names = ['adjacency', 'node_bias', 'lin.weight']

    def fn(v, *params, edge_index=None):
        return functional_call(conv, dict(zip(names, params)),
                               (v, edge_index))

    return fn


def test_glore_gradcheck():
    conv = GloReGraphConv(num_nodes=3, channels=2).double()
    fn = _glore_functional(conv)
    v = torch.randn(2, 3, 2, dtype=DT, requires_grad=True)
    params = [p.detach().clone().requires_grad_()
              for p in (conv.adjacency, conv.node_bias, conv.lin.weight)]
    assert torch.autograd.gradcheck(fn, (v, *params))
    ei = complete_latent_graph(2, 3)[:, :-2]  # drop two edges
    ve = v.detach().reshape(6, 2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda *a: fn(*a, edge_index=ei), (ve, *params))


def test_glore_message_hooks():
    conv = glore_conv()
    calls = []
    conv.register_message_forward_hook(
        lambda module, args, out: calls.append(out.shape))
    v = torch.randn(S, d, C, dtype=DT)
    conv(v.reshape(-1, C), complete_latent_graph(S, d))
    assert calls == [torch.Size([S * d * d, C])]
    conv(v)
    assert len(calls) == 1


def test_glore_repr():
    assert repr(GloReGraphConv(num_nodes=8, channels=16)) == \
        'GloReGraphConv(num_nodes=8, channels=16)'


def test_glore_errors():
    conv = glore_conv()
    with pytest.raises(ValueError, match=r"The fused path takes 'v'"):
        conv(torch.randn(S, d + 1, C, dtype=DT))
    with pytest.raises(ValueError, match=r"The fused path takes 'v'"):
        conv(torch.randn(S * d, C, dtype=DT))
    with pytest.raises(ValueError, match=r"With 'edge_index', 'v' must be"):
        conv(torch.randn(S * d + 1, C, dtype=DT), complete_latent_graph(S, d))
    with pytest.raises(ValueError, match=r"'edge_index' must be \[2, E\]"):
        conv(torch.randn(S * d, C, dtype=DT),
             complete_latent_graph(S, d)[:1])


# ===========================================================================
# LatentAffinityConv
def affinity_reference(z, mask=None, eps=1e-12):
    """z [S, d, C] -> (out [S, d, C], affinity [S, d, d])."""
    outs, affs = [], []
    for s in range(z.size(0)):
        zs = z[s]
        zh = zs / zs.pow(2).sum(-1, keepdim=True).clamp_min(eps**2).sqrt()
        logits = zh @ zh.t()
        if mask is not None:
            logits = logits.masked_fill(~mask[s], float('-inf'))
        aff = torch.softmax(logits, dim=-1)
        if mask is not None:
            aff = torch.nan_to_num(aff, nan=0.0)  # rows without edges
        outs.append(aff @ zs)
        affs.append(aff)
    return torch.stack(outs), torch.stack(affs)


def test_affinity_fused_matches_reference():
    z = torch.randn(S, d, C, dtype=DT)
    conv = LatentAffinityConv()
    out = conv(z)
    ref, ref_aff = affinity_reference(z)
    torch.testing.assert_close(out, ref)
    out2, aff = conv(z, return_affinity=True)
    torch.testing.assert_close(out2, ref)
    assert aff.shape == (S, d, d)
    torch.testing.assert_close(aff, ref_aff)
    torch.testing.assert_close(aff.sum(-1), torch.ones(S, d, dtype=DT))


def test_affinity_is_scale_invariant_in_logits():
    # normalised features: scaling a latent node changes the values it
    # sends but not the affinities
    z = torch.randn(1, d, C, dtype=DT)
    scaled = z.clone()
    scaled[0, 2] *= 7.0
    _, a1 = LatentAffinityConv()(z, return_affinity=True)
    _, a2 = LatentAffinityConv()(scaled, return_affinity=True)
    torch.testing.assert_close(a1, a2)


def test_affinity_explicit_complete_graph_matches_fused():
    z = torch.randn(S, d, C, dtype=DT, requires_grad=True)
    conv = LatentAffinityConv()
    fused, aff = conv(z, return_affinity=True)
    g = torch.randn_like(fused)
    (ref_grad, ) = torch.autograd.grad(fused, (z, ), g)

    ei = complete_latent_graph(S, d)
    out, alpha = conv(z.reshape(-1, C), ei, return_affinity=True)
    torch.testing.assert_close(out, fused.reshape(-1, C))
    assert alpha.shape == (ei.size(1), )
    # edge (s * d + k) * d + j is j -> k of sample s
    torch.testing.assert_close(alpha.view(S, d, d), aff)
    (grad, ) = torch.autograd.grad(out, (z, ), g.reshape(-1, C))
    torch.testing.assert_close(grad, ref_grad)

    # edge order does not matter
    perm = torch.randperm(ei.size(1))
    out_p, alpha_p = conv(z.reshape(-1, C), ei[:, perm], return_affinity=True)
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(alpha_p, alpha[perm])


def test_affinity_explicit_sparsified_graph():
    z = torch.randn(S, d, C, dtype=DT, requires_grad=True)
    mask = random_mask(S, d, p=0.4)
    mask[2, 3] = False  # a latent node without incoming edges
    ei = edges_from_mask(mask)
    out, alpha = LatentAffinityConv()(z.reshape(-1, C), ei,
                                      return_affinity=True)
    ref, ref_aff = affinity_reference(z, mask)
    torch.testing.assert_close(out, ref.reshape(-1, C))
    assert torch.count_nonzero(out[2 * d + 3]) == 0
    # alpha of edge j -> k equals the masked softmax entry [s, k, j]
    src, dst = ei
    torch.testing.assert_close(alpha,
                               ref_aff[dst // d, dst % d, src % d])
    g = torch.randn_like(out)
    (grad, ) = torch.autograd.grad(out, (z, ), g)
    (ref_grad, ) = torch.autograd.grad(ref.reshape(-1, C), (z, ), g)
    torch.testing.assert_close(grad, ref_grad)


def test_affinity_batch_isolation():
    z = torch.randn(S, d, C, dtype=DT)
    conv = LatentAffinityConv()
    out = conv(z)
    for s in range(S):
        torch.testing.assert_close(out[s], conv(z[s:s + 1])[0])


def test_affinity_gradcheck():
    conv = LatentAffinityConv()
    z = torch.randn(2, 3, 2, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (z, ))
    ei = edges_from_mask(random_mask(2, 3, p=0.5))
    ze = z.detach().reshape(6, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: conv(a, ei), (ze, ))


def test_affinity_message_hooks_and_repr():
    conv = LatentAffinityConv()
    assert repr(conv) == 'LatentAffinityConv()'
    assert list(conv.parameters()) == []
    calls = []
    conv.register_message_forward_hook(
        lambda module, args, out: calls.append(out.shape))
    z = torch.randn(S * d, C, dtype=DT)
    conv(z, complete_latent_graph(S, d))
    assert calls == [torch.Size([S * d * d, C])]


def test_affinity_errors():
    conv = LatentAffinityConv()
    with pytest.raises(ValueError, match=r"The fused path takes \[S, n, F\]"):
        conv(torch.randn(d, C, dtype=DT))
    with pytest.raises(ValueError, match=r"node features must be matrices"):
        conv(torch.randn(S, d, C, dtype=DT), complete_latent_graph(S, d))
    with pytest.raises(ValueError, match=r"'edge_index' must be \[2, E\]"):
        conv(torch.randn(S * d, C, dtype=DT), torch.zeros(3, 4).long())


# ===========================================================================
# AttentionConv
def attention_reference(q, k, v, mask=None):
    outs, alphas = [], []
    for s in range(q.size(0)):
        logits = q[s] @ k[s].t()
        if mask is not None:
            logits = logits.masked_fill(~mask[s], float('-inf'))
        alpha = torch.softmax(logits, dim=-1)
        if mask is not None:
            alpha = torch.nan_to_num(alpha, nan=0.0)
        outs.append(alpha @ v[s])
        alphas.append(alpha)
    return torch.stack(outs), torch.stack(alphas)


def qkv(num_samples=S, n=d, requires_grad=False):
    q = torch.randn(num_samples, n, F, dtype=DT, requires_grad=requires_grad)
    k = torch.randn(num_samples, n, F, dtype=DT, requires_grad=requires_grad)
    v = torch.randn(num_samples, n, C, dtype=DT, requires_grad=requires_grad)
    return q, k, v


def test_attention_fused_matches_reference():
    q, k, v = qkv()
    conv = AttentionConv()
    ref, ref_alpha = attention_reference(q, k, v)
    torch.testing.assert_close(conv(q, k, v), ref)
    out, alpha = conv(q, k, v, return_attention=True)
    assert out.shape == (S, d, C) and alpha.shape == (S, d, d)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(alpha, ref_alpha)


def test_attention_explicit_complete_graph_matches_fused():
    q, k, v = qkv(requires_grad=True)
    conv = AttentionConv()
    fused, fused_alpha = conv(q, k, v, return_attention=True)
    g = torch.randn_like(fused)
    ref_grads = torch.autograd.grad(fused, (q, k, v), g)

    ei = complete_latent_graph(S, d)
    out, alpha = conv(q.reshape(-1, F), k.reshape(-1, F), v.reshape(-1, C),
                      ei, return_attention=True)
    torch.testing.assert_close(out, fused.reshape(-1, C))
    torch.testing.assert_close(alpha.view(S, d, d), fused_alpha)
    grads = torch.autograd.grad(out, (q, k, v), g.reshape(-1, C))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_attention_explicit_sparsified_graph():
    q, k, v = qkv(requires_grad=True)
    mask = random_mask(S, d, p=0.3, self_loops=False)
    mask[1, 0] = False  # a node that receives nothing
    mask[0, 2, 3] = True  # and at least one edge
    ei = edges_from_mask(mask)
    out, alpha = AttentionConv()(q.reshape(-1, F), k.reshape(-1, F),
                                 v.reshape(-1, C), ei, return_attention=True)
    ref, ref_alpha = attention_reference(q, k, v, mask)
    torch.testing.assert_close(out, ref.reshape(-1, C))
    assert torch.count_nonzero(out[d]) == 0
    src, dst = ei
    torch.testing.assert_close(alpha, ref_alpha[dst // d, dst % d, src % d])
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref.reshape(-1, C), (q, k, v), g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_attention_explicit_bipartite():
    # queries and key/value nodes from different sets
    q = torch.randn(3, F, dtype=DT)
    k = torch.randn(5, F, dtype=DT)
    v = torch.randn(5, C, dtype=DT)
    src = torch.arange(5).repeat(3)
    dst = torch.arange(3).repeat_interleave(5)
    out = AttentionConv()(q, k, v, torch.stack([src, dst]))
    assert out.shape == (3, C)
    torch.testing.assert_close(out, torch.softmax(q @ k.t(), -1) @ v)


def test_attention_batch_isolation():
    q, k, v = qkv()
    conv = AttentionConv()
    out = conv(q, k, v)
    for s in range(S):
        torch.testing.assert_close(
            out[s], conv(q[s:s + 1], k[s:s + 1], v[s:s + 1])[0])


def test_attention_gradcheck():
    conv = AttentionConv()
    q, k, v = qkv(2, 3, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (q, k, v))
    ei = edges_from_mask(random_mask(2, 3, p=0.5))
    flat = [t.detach().reshape(6, -1).requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradcheck(lambda a, b, c: conv(a, b, c, ei),
                                    tuple(flat))


def test_attention_hooks_and_repr():
    conv = AttentionConv()
    assert repr(conv) == 'AttentionConv()'
    calls = []
    conv.register_message_forward_hook(
        lambda module, args, out: calls.append(out.shape))
    q, k, v = qkv()
    ei = complete_latent_graph(S, d)
    conv(q.reshape(-1, F), k.reshape(-1, F), v.reshape(-1, C), ei)
    assert calls == [torch.Size([ei.size(1), C])]
    conv(q, k, v)
    assert len(calls) == 1


def test_attention_errors():
    conv = AttentionConv()
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"The fused path takes \[S, n, F\]"):
        conv(q[0], k, v)
    with pytest.raises(ValueError, match=r"node features must be matrices"):
        conv(q, k, v, complete_latent_graph(S, d))
    with pytest.raises(ValueError, match=r"'edge_index' must be \[2, E\]"):
        conv(q.reshape(-1, F), k.reshape(-1, F), v.reshape(-1, C),
             complete_latent_graph(S, d)[:1])

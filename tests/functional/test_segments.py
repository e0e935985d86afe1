"""Tests of :class:`glore_pyg.functional.Segments` against per-sample loops."""
import pytest
import torch

from glore_pyg.functional import Segments

DT = torch.float64
C, D = 3, 4

# name -> (sizes, how the layout is passed to ``from_batch``)
LAYOUTS = {
    'single': ([5], 'none'),
    'equal_batch_size': ([3, 3, 3], 'batch_size'),
    'equal_batch': ([4, 4], 'batch'),
    'equal_ptr': ([2, 2, 2], 'ptr'),
    'unequal_batch': ([3, 1, 4], 'batch'),
    'unequal_ptr': ([2, 5, 1], 'ptr'),
    'empty_trailing': ([3, 2, 0], 'batch+batch_size'),
    'empty_middle_ptr': ([2, 0, 3], 'ptr'),
    'empty_middle_batch': ([2, 0, 3, 0], 'batch+batch_size'),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(12345)


def layout_kwargs(sizes, how):
    counts = torch.tensor(sizes)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), counts)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    if how == 'none':
        return {}
    if how == 'batch_size':
        return dict(batch_size=len(sizes))
    if how == 'batch':
        return dict(batch=batch)
    if how == 'ptr':
        return dict(ptr=ptr)
    if how == 'batch+batch_size':
        return dict(batch=batch, batch_size=len(sizes))
    raise AssertionError(how)


def bounds(sizes):
    start = 0
    for n in sizes:
        yield start, start + n
        start += n


@pytest.fixture(params=list(LAYOUTS))
def layout(request):
    sizes, how = LAYOUTS[request.param]
    return sizes, layout_kwargs(sizes, how)


@pytest.fixture(params=[False, True], ids=['eager', 'padded'])
def padded(request):
    """Both strategies for samples of different sizes: one product per
    sample (eager) and the padded layout (what torch.compile traces)."""
    return request.param


def test_layout_attributes(layout):
    sizes, kwargs = layout
    n = sum(sizes)
    x = torch.randn(n, C, dtype=DT)
    seg = Segments.from_batch(x, **kwargs)
    assert seg.num_nodes == n
    assert seg.num_samples == len(sizes)
    assert seg.counts().tolist() == sizes
    expected_batch = torch.repeat_interleave(torch.arange(len(sizes)),
                                             torch.tensor(sizes))
    assert torch.equal(seg.batch(), expected_batch)
    if len(set(sizes)) == 1:
        # the documented view-only fast path
        assert seg.sizes is None
        assert seg.size == sizes[0]
    else:
        assert seg.sizes == sizes


def test_sum_and_expand(layout):
    sizes, kwargs = layout
    x = torch.randn(sum(sizes), C, dtype=DT)
    seg = Segments.from_batch(x, **kwargs)

    ref = torch.stack([x[a:b].sum(0) for a, b in bounds(sizes)])
    torch.testing.assert_close(seg.sum(x), ref)

    # extra trailing dims are kept
    x3 = torch.randn(sum(sizes), 2, C, dtype=DT)
    ref3 = torch.stack([x3[a:b].sum(0) for a, b in bounds(sizes)])
    torch.testing.assert_close(seg.sum(x3), ref3)

    per_sample = torch.randn(len(sizes), 2, C, dtype=DT)
    ref_exp = torch.cat([
        per_sample[s].unsqueeze(0).expand(n, 2, C)
        for s, n in enumerate(sizes)
    ])
    torch.testing.assert_close(seg.expand(per_sample), ref_exp)


def test_pool(layout, padded):
    sizes, kwargs = layout
    n = sum(sizes)
    x = torch.randn(n, C, dtype=DT, requires_grad=True)
    w = torch.randn(n, D, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(x, **kwargs)
    seg.force_padded = padded

    out = seg.pool(w, x)
    ref = torch.stack([w[a:b].t() @ x[a:b] for a, b in bounds(sizes)])
    assert out.shape == (len(sizes), D, C)
    torch.testing.assert_close(out, ref)
    for s, k in enumerate(sizes):
        if k == 0:
            assert torch.count_nonzero(out[s]) == 0

    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (x, w), g)
    ref_grads = torch.autograd.grad(ref, (x, w), g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_spread(layout, padded):
    sizes, kwargs = layout
    n = sum(sizes)
    w = torch.randn(n, D, dtype=DT, requires_grad=True)
    z = torch.randn(len(sizes), D, C, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(w, **kwargs)
    seg.force_padded = padded

    out = seg.spread(w, z)
    ref = torch.cat([w[a:b] @ z[s] for s, (a, b) in enumerate(bounds(sizes))])
    assert out.shape == (n, C)
    torch.testing.assert_close(out, ref)

    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (w, z), g)
    ref_grads = torch.autograd.grad(ref, (w, z), g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def _attention(q, v, mask=None):
    # a dense batched function that mixes the nodes of a sample; padding
    # rows (mask False) are no keys
    logits = q @ q.transpose(1, 2)
    if mask is not None:
        logits = logits.masked_fill(~mask.unsqueeze(1), float('-inf'))
    return torch.softmax(logits, dim=-1) @ v


def test_per_sample(layout, padded):
    sizes, kwargs = layout
    n = sum(sizes)
    q = torch.randn(n, 2, dtype=DT)
    v = torch.randn(n, C, dtype=DT)
    seg = Segments.from_batch(q, **kwargs)
    seg.force_padded = padded

    out = seg.per_sample(_attention, q, v)
    ref = torch.cat([
        _attention(q[a:b].unsqueeze(0), v[a:b].unsqueeze(0))[0]
        for a, b in bounds(sizes)
    ])
    assert out.shape == (n, C)
    torch.testing.assert_close(out, ref)


def test_per_sample_is_isolated(padded):
    sizes = [3, 1, 4]
    q = torch.randn(8, 2, dtype=DT)
    v = torch.randn(8, C, dtype=DT)
    seg = Segments.from_batch(q, batch=torch.tensor([0, 0, 0, 1, 2, 2, 2, 2]))
    seg.force_padded = padded
    out = seg.per_sample(_attention, q, v)
    for a, b in bounds(sizes):
        alone = Segments.from_batch(q[a:b]).per_sample(_attention, q[a:b],
                                                       v[a:b])
        torch.testing.assert_close(out[a:b], alone)


def test_empty_sample_via_batch_size():
    # samples 1 and 3 have no nodes; batch_size makes the trailing one exist
    batch = torch.tensor([0, 0, 2, 2, 2])
    x = torch.randn(5, C, dtype=DT)
    w = torch.randn(5, D, dtype=DT)
    seg = Segments.from_batch(x, batch=batch, batch_size=4)
    assert seg.num_samples == 4
    assert seg.counts().tolist() == [2, 0, 3, 0]
    pooled = seg.pool(w, x)
    assert pooled.shape == (4, D, C)
    assert torch.count_nonzero(pooled[1]) == 0
    assert torch.count_nonzero(pooled[3]) == 0
    torch.testing.assert_close(pooled[0], w[:2].t() @ x[:2])
    torch.testing.assert_close(pooled[2], w[2:].t() @ x[2:])
    summed = seg.sum(x)
    assert torch.count_nonzero(summed[1]) == 0
    assert torch.count_nonzero(summed[3]) == 0


def test_zero_nodes_sum():
    x = torch.zeros(0, C, dtype=DT)
    seg = Segments.from_batch(x, batch_size=2)
    assert seg.num_samples == 2
    assert seg.counts().tolist() == [0, 0]
    torch.testing.assert_close(seg.sum(x), torch.zeros(2, C, dtype=DT))


@pytest.mark.parametrize('how', ['batch_size', 'batch+batch_size'])
def test_zero_nodes_pool_and_spread(how):
    # A batch without any visible node: pooled latent features are zeros
    # and spreading gives an empty node matrix.
    x = torch.zeros(0, C, dtype=DT)
    w = torch.zeros(0, D, dtype=DT)
    kwargs = dict(batch_size=2)
    if how == 'batch+batch_size':
        kwargs['batch'] = torch.zeros(0, dtype=torch.long)
    seg = Segments.from_batch(x, **kwargs)
    assert seg.num_samples == 2
    torch.testing.assert_close(seg.pool(w, x), torch.zeros(2, D, C, dtype=DT))
    z = torch.randn(2, D, C, dtype=DT)
    assert seg.spread(w, z).shape == (0, C)


def test_repr():
    x = torch.randn(6, C)
    assert repr(Segments.from_batch(x, batch_size=3)) == \
        'Segments(num_samples=3, size=2 each)'
    seg = Segments.from_batch(x, ptr=torch.tensor([0, 1, 6]))
    assert repr(seg) == 'Segments(num_samples=2, sizes=[1, 5])'


X4 = torch.zeros(4, C)


@pytest.mark.parametrize('x, kwargs, match', [
    (torch.zeros(4), {}, r"'x' must be a node-feature matrix"),
    (torch.zeros(2, 2, C), {}, r"'x' must be a node-feature matrix"),
    (X4, dict(batch_size=0), r"^'batch_size' must be an int >= 1, got 0$"),
    (X4, dict(batch_size=-2), r"^'batch_size' must be an int >= 1, got -2$"),
    (X4, dict(batch_size=3), r"do not\s+split into 3 samples"),
    (X4, dict(ptr=torch.tensor([0., 4.])), r"'ptr' must be an integer"),
    (X4, dict(ptr=torch.tensor([4])), r"'ptr' must be an integer"),
    (X4, dict(ptr=torch.tensor([[0, 4]])), r"'ptr' must be an integer"),
    (X4, dict(ptr=torch.tensor([0, 2, 3])), r"'ptr' must start at 0 and end"),
    (X4, dict(ptr=torch.tensor([1, 2, 4])), r"'ptr' must start at 0 and end"),
    (X4, dict(ptr=torch.tensor([0, 3, 1, 4])), r"'ptr' must be non-decr"),
    (X4, dict(ptr=torch.tensor([0, 2, 4]), batch_size=3),
     r"'batch_size' \(3\) disagrees with 'ptr'"),
    (X4, dict(batch=torch.tensor([0, 0, 1])), r"'batch' must have shape"),
    (X4, dict(batch=torch.tensor([0., 0., 1., 1.])),
     r"'batch' must be an integer"),
    (X4, dict(batch=torch.tensor([0, 1, 0, 1])), r"'batch' must be sorted"),
    (X4, dict(batch=torch.tensor([-1, 0, 0, 1])),
     r"'batch' must be non-negative"),
    (X4, dict(batch=torch.tensor([0, 0, 1, 2]), batch_size=2),
     r"'batch' holds sample index 2, but 'batch_size' is 2"),
])
def test_from_batch_errors(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Segments.from_batch(x, **kwargs)


@pytest.mark.parametrize('batch_size, match', [
    (2.0, r"^'batch_size' must be an int >= 1, got float 2\.0$"),
    (True, r"^'batch_size' must be an int >= 1, got bool True$"),
    ('2', r"^'batch_size' must be an int >= 1, got str '2'$"),
    (torch.tensor(2), r"^'batch_size' must be an int >= 1, got Tensor "),
])
def test_batch_size_of_the_wrong_type(batch_size, match):
    with pytest.raises(TypeError, match=match):
        Segments.from_batch(X4, batch_size=batch_size)
    with pytest.raises(TypeError, match=match):  # checked before 'batch'
        Segments.from_batch(X4, batch=torch.tensor([0, 0, 1, 1]),
                            batch_size=batch_size)


def test_batch_size_numpy_int():
    np = pytest.importorskip('numpy')
    seg = Segments.from_batch(X4, batch_size=np.int64(2))
    assert seg.num_samples == 2 and type(seg.num_samples) is int


def test_batch_size_agreeing_with_ptr():
    x = torch.randn(4, C)
    seg = Segments.from_batch(x, ptr=torch.tensor([0, 1, 4]), batch_size=2)
    assert seg.sizes == [1, 3]


def test_batch_and_ptr_must_agree():
    x = torch.randn(4, C)
    seg = Segments.from_batch(x, batch=torch.tensor([0, 1, 1, 1]),
                              ptr=torch.tensor([0, 1, 4]))
    assert seg.sizes == [1, 3]
    # a trailing empty sample in ptr agrees with a batch that never names it
    seg = Segments.from_batch(x, batch=torch.tensor([0, 1, 1, 1]),
                              ptr=torch.tensor([0, 1, 4, 4]))
    assert seg.sizes == [1, 3, 0]
    with pytest.raises(ValueError, match=r"'batch' and 'ptr' describe "
                       r"different samples \(sizes \[2, 2\] from 'batch', "
                       r"\[1, 3\] from 'ptr'\)"):
        Segments.from_batch(x, batch=torch.tensor([0, 0, 1, 1]),
                            ptr=torch.tensor([0, 1, 4]))


def test_sample_sizes_are_read_in_one_transfer(monkeypatch):
    # the one host synchronisation of a forward: every checked number in
    # a single .tolist()
    calls = []
    real = torch.Tensor.tolist

    def counting(self):
        calls.append(self.shape)
        return real(self)
    monkeypatch.setattr(torch.Tensor, 'tolist', counting)
    x = torch.randn(6, C)
    Segments.from_batch(x, batch=torch.tensor([0, 0, 1, 1, 1, 2]),
                        ptr=torch.tensor([0, 2, 5, 6]))
    assert len(calls) == 1
    calls.clear()
    Segments.from_batch(x, batch_size=3)
    assert calls == []


def test_sum_of_squares(layout):
    sizes, kwargs = layout
    w = torch.randn(sum(sizes), D, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(w, **kwargs)
    out = seg.sum_of_squares(w)
    ref = torch.stack([(w[a:b]**2).sum(0) for a, b in bounds(sizes)])
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, w, g)[0],
                               torch.autograd.grad(ref, w, g)[0])


@pytest.mark.parametrize('sizes', [[3, 3], [2, 0, 3]])
def test_sum_of_squares_double_backward(sizes):
    w = torch.randn(sum(sizes), 2, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(w, ptr=torch.tensor([0, *sizes]).cumsum(0))
    assert torch.autograd.gradgradcheck(seg.sum_of_squares, (w, ))


@pytest.mark.parametrize('sizes', [[3, 1, 4], [2, 0, 3], [3, 3, 3]])
def test_pool_and_spread_double_backward(sizes):
    n = sum(sizes)
    seg = Segments.from_batch(torch.zeros(n, 1), ptr=torch.tensor(
        [0, *sizes]).cumsum(0))
    # the per-sample path, or one bmm for equal sizes
    assert (seg.sizes is None) == (len(set(sizes)) == 1)
    w = torch.randn(n, 2, dtype=DT, requires_grad=True)
    x = torch.randn(n, 3, dtype=DT, requires_grad=True)
    z = torch.randn(len(sizes), 2, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(seg.pool, (w, x))
    assert torch.autograd.gradgradcheck(seg.pool, (w, x))
    assert torch.autograd.gradcheck(seg.spread, (w, z))
    assert torch.autograd.gradgradcheck(seg.spread, (w, z))




def test_padded_layout_round_trip():
    """pad / unpad / mask of samples of sizes 3, 0, 1, 4: each node in its
    sample's row block, zeros elsewhere, and back."""
    batch = torch.tensor([0, 0, 0, 2, 3, 3, 3, 3])
    x = torch.arange(16, dtype=DT).view(8, 2) + 1
    seg = Segments.from_batch(x, batch=batch)
    assert seg.max_size == 4 and not seg.equal
    padded = seg.pad(x)
    assert padded.shape == (4, 4, 2)
    torch.testing.assert_close(padded[0, :3], x[:3])
    torch.testing.assert_close(padded[2, :1], x[3:4])
    torch.testing.assert_close(padded[3], x[4:])
    mask = seg.mask()
    assert mask.tolist() == [[True] * 3 + [False], [False] * 4,
                             [True] + [False] * 3, [True] * 4]
    assert torch.count_nonzero(padded[~mask]) == 0
    torch.testing.assert_close(seg.unpad(padded), x)

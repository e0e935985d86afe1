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


def test_pool(layout):
    sizes, kwargs = layout
    n = sum(sizes)
    x = torch.randn(n, C, dtype=DT, requires_grad=True)
    w = torch.randn(n, D, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(x, **kwargs)

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


def test_spread(layout):
    sizes, kwargs = layout
    n = sum(sizes)
    w = torch.randn(n, D, dtype=DT, requires_grad=True)
    z = torch.randn(len(sizes), D, C, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(w, **kwargs)

    out = seg.spread(w, z)
    ref = torch.cat([w[a:b] @ z[s] for s, (a, b) in enumerate(bounds(sizes))])
    assert out.shape == (n, C)
    torch.testing.assert_close(out, ref)

    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (w, z), g)
    ref_grads = torch.autograd.grad(ref, (w, z), g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def _attention(q, v):
    # a dense batched function that mixes the nodes of a sample
    return torch.softmax(q @ q.transpose(1, 2), dim=-1) @ v


def test_per_sample(layout):
    sizes, kwargs = layout
    n = sum(sizes)
    q = torch.randn(n, 2, dtype=DT)
    v = torch.randn(n, C, dtype=DT)
    seg = Segments.from_batch(q, **kwargs)

    out = seg.per_sample(_attention, q, v)
    ref = torch.cat([
        _attention(q[a:b].unsqueeze(0), v[a:b].unsqueeze(0))[0]
        for a, b in bounds(sizes)
    ])
    assert out.shape == (n, C)
    torch.testing.assert_close(out, ref)


def test_per_sample_is_isolated():
    sizes = [3, 1, 4]
    q = torch.randn(8, 2, dtype=DT)
    v = torch.randn(8, C, dtype=DT)
    seg = Segments.from_batch(q, batch=torch.tensor([0, 0, 0, 1, 2, 2, 2, 2]))
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
    (X4, dict(batch_size=0), r"'batch_size' must be a positive int"),
    (X4, dict(batch_size=2.0), r"'batch_size' must be a positive int"),
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


def test_ptr_takes_precedence_and_batch_size_agreeing_with_ptr():
    x = torch.randn(4, C)
    seg = Segments.from_batch(x, ptr=torch.tensor([0, 1, 4]), batch_size=2)
    assert seg.sizes == [1, 3]


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


# -- the channels-first layout [S, C, n] ---------------------------------------
S, N_PER = 3, 5


def rows_and_channels_first(channels):
    """The same node features as rows [S*n, F] and channels-first
    [S, F, n]."""
    rows = torch.randn(S * N_PER, channels, dtype=DT)
    cf = rows.view(S, N_PER, channels).transpose(1, 2).contiguous()
    return rows.requires_grad_(), cf.requires_grad_()


def to_rows(t):
    return t.transpose(1, 2).reshape(-1, t.size(1))


def test_channels_first_equals_rows():
    x_rows, x_cf = rows_and_channels_first(C)
    w_rows, w_cf = rows_and_channels_first(D)
    rows = Segments.from_batch(x_rows, batch_size=S)
    cf = Segments.grid(x_cf)
    assert cf.channels_first and not rows.channels_first
    assert (cf.num_nodes, cf.num_samples, cf.size) == (S * N_PER, S, N_PER)
    assert torch.equal(cf.batch(), rows.batch())
    assert torch.equal(cf.counts(), rows.counts())
    assert cf.matches(x_cf) and not cf.matches(x_rows)
    assert rows.matches(x_rows) and not rows.matches(x_cf)
    assert cf.shape('C') == f'[{S}, C, {N_PER}]'
    assert rows.shape('d') == f'[{S * N_PER}, d]'
    assert torch.equal(cf.rows(x_cf), x_rows)
    assert repr(cf) == (f'Segments(num_samples={S}, size={N_PER} each, '
                        f'channels_first=True)')

    close = torch.testing.assert_close
    close(cf.sum(x_cf), rows.sum(x_rows))
    close(cf.sum_of_squares(w_cf), rows.sum_of_squares(w_rows))
    close(cf.pool(w_cf, x_cf), rows.pool(w_rows, x_rows))
    per_sample = torch.randn(S, D, dtype=DT)
    close(to_rows(cf.expand(per_sample)), rows.expand(per_sample))
    z = torch.randn(S, D, C, dtype=DT)
    out_cf, out_rows = cf.spread(w_cf, z), rows.spread(w_rows, z)
    assert out_cf.shape == (S, C, N_PER)
    close(to_rows(out_cf), out_rows)
    close(to_rows(cf.per_sample(_attention, w_cf, x_cf)),
          rows.per_sample(_attention, w_rows, x_rows))
    lin = torch.nn.Linear(C, D, dtype=DT)
    close(to_rows(cf.linear(x_cf, lin.weight, lin.bias)),
          rows.linear(x_rows, lin.weight, lin.bias))
    # gradients flow to the same values
    g = torch.randn(S, D, C, dtype=DT)
    ga = torch.autograd.grad(cf.pool(w_cf, x_cf), (w_cf, x_cf), g)
    gb = torch.autograd.grad(rows.pool(w_rows, x_rows), (w_rows, x_rows), g)
    for a, b in zip(ga, gb):
        close(to_rows(a), b)


def test_channels_first_errors():
    with pytest.raises(ValueError, match=r"channels-first node tensor is "
                       r"\[S, C, n\], got shape \(4, 3\)"):
        Segments.grid(torch.randn(4, 3))
    with pytest.raises(ValueError, match="equal size"):
        Segments(5, 2, [2, 3], torch.device('cpu'), channels_first=True)


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


@pytest.mark.parametrize('shape, dim', [((1000, 7), 0), ((3, 500, 5), 1),
                                        ((3, 5, 500), 2), ((40, 3, 2), 0),
                                        ((0, 4), 0)])
@pytest.mark.parametrize('block', [None, 64, 1])
def test_square_sum(monkeypatch, shape, dim, block):
    # blocked accumulation over an outer dimension (many blocks, one, and
    # the fallback to torch's norm when there would be too many)
    import glore_pyg.functional.segments as segments
    if block is not None:
        monkeypatch.setattr(segments, '_BLOCK_ELEMENTS', block)
    a = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(segments.square_sum(a, dim), (a * a).sum(dim),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('sizes', [[3, 0, 5, 2], [4, 4], [9]])
def test_pool_and_sum_of_squares(sizes):
    # one node for both (different sizes): the same values and gradients
    # as pool and sum_of_squares apart, and double backward
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    w = torch.randn(batch.numel(), 3, dtype=torch.float64,
                    requires_grad=True)
    x = torch.randn(batch.numel(), 4, dtype=torch.float64,
                    requires_grad=True)
    seg = Segments.from_batch(x, batch, batch_size=len(sizes))
    assert (seg.sizes is None) == (len(set(sizes)) == 1)  # both kinds
    pooled, sq = seg.pool_and_sum_of_squares(w, x)
    parts = list(bounds(sizes))  # an independent per-sample reference
    ref_pooled = torch.stack([w[a:b].t() @ x[a:b] for a, b in parts])
    ref_sq = torch.stack([(w[a:b] ** 2).sum(0) for a, b in parts])
    torch.testing.assert_close(pooled, ref_pooled)
    torch.testing.assert_close(sq, ref_sq)
    gp, gs = torch.randn_like(pooled), torch.randn_like(sq)
    torch.testing.assert_close(
        torch.autograd.grad((pooled, sq), (w, x), (gp, gs)),
        torch.autograd.grad((ref_pooled, ref_sq), (w, x), (gp, gs),
                            retain_graph=True))
    # only one of the two outputs used
    torch.testing.assert_close(
        torch.autograd.grad(seg.pool_and_sum_of_squares(w, x)[1].sum(), w),
        torch.autograd.grad(ref_sq.sum(), w))
    assert torch.autograd.gradgradcheck(
        lambda a, b: seg.pool_and_sum_of_squares(a, b), (w, x))


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('relu', [True, False])
@pytest.mark.parametrize('channels_first', [False, True])
def test_linear_against_functional_linear(bias, relu, channels_first):
    # Segments.linear (rows: _RowLinear, its own backward into buffers)
    # against F.linear (+ relu): values, every gradient, double backward,
    # and the no-grad path
    x = torch.randn(7, 4, dtype=DT)
    w = torch.randn(5, 4, dtype=DT, requires_grad=True)
    b = torch.randn(5, dtype=DT, requires_grad=True) if bias else None
    seg = Segments.from_batch(x)
    if channels_first:
        seg = Segments.grid(x.t().unsqueeze(0))

    def ours(x, w, *b):
        inp = x.t().unsqueeze(0) if channels_first else x
        out = seg.linear(inp, w, b[0] if b else None, relu=relu)
        return out[0].t() if channels_first else out

    def ref(x, w, *b):
        out = torch.nn.functional.linear(x, w, b[0] if b else None)
        return torch.relu(out) if relu else out

    x.requires_grad_()
    args = (x, w) + ((b, ) if bias else ())
    out, expected = ours(*args), ref(*args)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, args, g),
                               torch.autograd.grad(expected, args, g))
    assert torch.autograd.gradgradcheck(ours, args)
    with torch.no_grad():
        torch.testing.assert_close(ours(*args), expected)
    # only the weight needs a gradient
    torch.testing.assert_close(
        torch.autograd.grad(ours(x.detach(), w, *args[2:]), w, g),
        torch.autograd.grad(ref(x.detach(), w, *args[2:]), w, g))


CHANNEL_BOUNDS = [
    [(0, 2), (0, 2), (2, 5)],  # LatentGNN's x_v2l twice, then x_l2v
    [(0, 3), (0, 3), (0, 3)],  # one range used three times
    [(1, 3), (4, 6)],  # channels 0 and 3 reach no view
    [(0, 6)],
]


@pytest.mark.parametrize('ranges', CHANNEL_BOUNDS)
@pytest.mark.parametrize('channels_first', [False, True])
def test_channel_views_against_slicing(ranges, channels_first):
    # values and gradients as slicing x and using each slice (autograd's
    # sum of repeated uses and of the slices), double backward; a view
    # whose gradient is None (unused) counts as zero
    from glore_pyg.functional.segments import channel_views
    shape = (2, 6, 5) if channels_first else (7, 6)
    x = torch.randn(*shape, dtype=DT, requires_grad=True)
    weights = [torch.randn(*shape[:1], b - a, *shape[2:], dtype=DT)
               for a, b in ranges]

    def loss(views, skip=None):
        return sum((v * w).sin().sum() for i, (v, w) in
                   enumerate(zip(views, weights)) if i != skip)

    ours = channel_views(x, ranges)
    ref = [x[:, a:b] for a, b in ranges]
    for v, r in zip(ours, ref):
        torch.testing.assert_close(v, r)
        assert v.data_ptr() == r.data_ptr()  # views, no copy
    for skip in (None, 0, len(ranges) - 1) if len(ranges) > 1 else [None]:
        got, = torch.autograd.grad(loss(channel_views(x, ranges), skip), x)
        expected, = torch.autograd.grad(loss(ref, skip), x)
        torch.testing.assert_close(got, expected)
    assert torch.autograd.gradgradcheck(
        lambda x: loss(channel_views(x, ranges)), (x, ))


def test_channel_views_errors():
    from glore_pyg.functional.segments import channel_views
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match=r"within \[0, 6\], got \(4, 7\)"):
        channel_views(x, [(4, 7)])
    with pytest.raises(ValueError, match=r"within \[0, 6\], got \(3, 3\)"):
        channel_views(x, [(3, 3)])
    with pytest.raises(ValueError, match=r"equal or disjoint, got \(0, 3\) "
                       r"and \(2, 4\)"):
        channel_views(x, [(0, 3), (2, 4)])

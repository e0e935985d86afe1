"""The chunked passes (checkpointed chunks) against plain autograd on small
functions, twice differentiable."""
import pytest
import torch

from glore_pyg.functional import Segments
from glore_pyg.functional.chunked import (chunked_map, chunked_reduce,
                                          plan_chunks)

DT = torch.float64


def test_plan_chunks_covers_each_sample_in_order():
    x = torch.arange(10.).view(10, 1)
    seg = Segments.from_batch(x, batch=torch.tensor([0] * 4 + [2] * 6),
                              batch_size=3)
    chunks = plan_chunks(x, seg, 3)
    assert [c[:3] for c in chunks] == [(0, 3, 0), (3, 4, 0), (4, 7, 2),
                                       (7, 10, 2)]
    for c in chunks:  # views of x, no copies
        assert torch.equal(c.rows, x[c.start:c.stop])
        assert c.rows.data_ptr() == x[c.start:].data_ptr()


def _fns():
    def rows(xc, sample, w):
        return torch.tanh(xc @ w) * (sample + 1)

    def sums(xc, sample, w):
        r = rows(xc, sample, w)
        return r.sum(0), (r * r).sum(0)
    return rows, sums


@pytest.mark.parametrize('num_samples', [0, 3])
def test_reduce_and_map_match_autograd(num_samples):
    torch.manual_seed(0)
    sizes = [5, 2, 6]
    x = torch.randn(13, 4, dtype=DT, requires_grad=True)
    w = torch.randn(4, 3, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(x, ptr=torch.tensor([0, 5, 7, 13]))
    chunks = plan_chunks(x, seg, 2)
    rows, sums = _fns()

    ref_rows = torch.cat([rows(xs, s, w)
                          for s, xs in enumerate(x.split(sizes))])
    if num_samples:
        ref = [torch.stack([sums(xs, s, w)[k]
                            for s, xs in enumerate(x.split(sizes))])
               for k in range(2)]
    else:
        ref = [sum(sums(xs, s, w)[k] for s, xs in enumerate(x.split(sizes)))
               for k in range(2)]
    got = chunked_reduce(sums, chunks, [w], num_samples=num_samples)
    got_rows = chunked_map(rows, chunks, [w])
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    torch.testing.assert_close(got_rows, ref_rows)

    def loss(a, b, r):
        return (a**2).sum() + b.sin().sum() + (r * r.detach().cos()).sum()

    # first and second derivatives (a gradient penalty) equal plain autograd
    g_ref = torch.autograd.grad(loss(*ref, ref_rows), [x, w],
                                create_graph=True)
    g_got = torch.autograd.grad(loss(*got, got_rows), [x, w],
                                create_graph=True)
    for g, r in zip(g_got, g_ref):
        assert g.requires_grad
        torch.testing.assert_close(g, r)
    gg_ref = torch.autograd.grad(g_ref[0].square().sum(), w)[0]
    gg_got = torch.autograd.grad(g_got[0].square().sum(), w)[0]
    assert gg_got.abs().sum() > 0
    torch.testing.assert_close(gg_got, gg_ref)


def test_gradcheck_and_gradgradcheck():
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=DT, requires_grad=True)
    w = torch.randn(3, 2, dtype=DT, requires_grad=True)

    def f(x, w):
        chunks = plan_chunks(x, Segments.from_batch(x), 3)
        m, = chunked_reduce(lambda xc, s, w: (xc @ w).exp().sum(0), chunks,
                            [w])
        return chunked_map(lambda xc, s, w, m: (xc @ w) * m, chunks, [w, m])

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))

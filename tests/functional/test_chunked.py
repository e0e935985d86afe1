"""The chunked autograd engine against plain autograd on small functions."""
import pytest
import torch

from glore_pyg.functional import Segments
from glore_pyg.functional.chunked import (chunked_map, chunked_reduce,
                                          plan_chunks)

DT = torch.float64


def test_plan_chunks_covers_each_sample_in_order():
    seg = Segments.from_batch(torch.zeros(10, 1),
                              batch=torch.tensor([0] * 4 + [2] * 6),
                              batch_size=3)
    assert plan_chunks(seg, 3) == [(0, 3, 0), (3, 4, 0), (4, 7, 2),
                                   (7, 10, 2)]


@pytest.mark.parametrize('num_samples', [0, 3])
def test_reduce_and_map_match_autograd(num_samples):
    torch.manual_seed(0)
    sizes = [5, 2, 6]
    x = torch.randn(13, 4, dtype=DT, requires_grad=True)
    w = torch.randn(4, 3, dtype=DT, requires_grad=True)
    seg = Segments.from_batch(x, ptr=torch.tensor([0, 5, 7, 13]))
    chunks = plan_chunks(seg, 2)

    def rows(xc, sample, w):
        return torch.tanh(xc @ w) * (sample + 1)

    def sums(xc, sample, w):
        r = rows(xc, sample, w)
        return r.sum(0), (r * r).sum(0)

    # reference with plain autograd
    ref_rows = torch.cat([rows(xs, s, w)
                          for s, xs in enumerate(x.split(sizes))])
    if num_samples:
        ref = [torch.stack([sums(xs, s, w)[k]
                            for s, xs in enumerate(x.split(sizes))])
               for k in range(2)]
    else:
        ref = [sum(sums(xs, s, w)[k] for s, xs in enumerate(x.split(sizes)))
               for k in range(2)]
    got = chunked_reduce(sums, x, chunks, [w], num_samples=num_samples)
    got_rows = chunked_map(rows, x, chunks, [w])
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    torch.testing.assert_close(got_rows, ref_rows)

    def loss(a, b, r):
        return (a**2).sum() + b.sin().sum() + (r * r.detach().cos()).sum()

    g_ref = torch.autograd.grad(loss(*ref, ref_rows), [x, w])
    g_got = torch.autograd.grad(loss(*got, got_rows), [x, w])
    for g, r in zip(g_got, g_ref):
        torch.testing.assert_close(g, r)


def test_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=DT, requires_grad=True)
    w = torch.randn(3, 2, dtype=DT, requires_grad=True)
    chunks = plan_chunks(Segments.from_batch(x), 3)

    def f(x, w):
        m, = chunked_reduce(lambda xc, s, w: (xc @ w).exp().sum(0), x,
                            chunks, [w])
        return chunked_map(lambda xc, s, w, m: (xc @ w) * m, x, chunks,
                           [w, m])

    assert torch.autograd.gradcheck(f, (x, w))

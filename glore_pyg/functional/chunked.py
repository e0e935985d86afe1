"""Memory-lean autograd: row-wise work in chunks, recomputed in backward.

A latent-graph unit is a chain of row-wise computations (projections,
BatchNorm with given statistics, normalisations) and small global reductions
(BatchNorm moments, per-sample latent sums).  Plain autograd stores every
``N x d`` and ``N x C`` intermediate of that chain: about 20 copies of the
input for LatentGNN.  Here each pass runs over chunks of visible nodes under
``no_grad`` and keeps only its inputs; backward recomputes one chunk at a
time and writes that chunk's gradient into a single ``[N, C]`` buffer.  Peak
memory is then a few copies of the input plus one chunk's intermediates,
whatever ``N`` is, at the price of recomputing cheap row-wise work.

``fn(x_chunk, sample, *tensors)`` must be row-wise in ``x_chunk`` (no
interaction between rows); everything global enters through ``tensors``,
which may be outputs of earlier passes, so gradients flow through the chain.
"""
from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

from .segments import Segments

Chunk = Tuple[int, int, int]  # (start row, end row, sample index)


def plan_chunks(segments: Segments, chunk_size: int) -> List[Chunk]:
    """Splits every sample's rows into pieces of at most ``chunk_size``."""
    chunks: List[Chunk] = []
    sizes = segments.sizes or [segments.size] * segments.num_samples
    start = 0
    for sample, size in enumerate(sizes):
        for a in range(start, start + size, chunk_size):
            chunks.append((a, min(a + chunk_size, start + size), sample))
        start += size
    return chunks


def _backward(ctx, grad_of_chunk: Callable) -> Tuple:
    """Recomputes ``ctx.fn`` chunk by chunk and backpropagates
    ``grad_of_chunk(chunk)`` through it: the chunk rows' gradients go into
    one ``[N, C]`` buffer, those of ``tensors`` are summed."""
    x, *tensors = ctx.saved_tensors
    gx = torch.zeros_like(x) if x.requires_grad else None
    totals: List = [None] * len(tensors)
    for a, b, sample in ctx.chunks:
        with torch.enable_grad():
            xc = x[a:b].detach().requires_grad_(x.requires_grad)
            ins = [t.detach().requires_grad_(t.requires_grad)
                   for t in tensors]
            outs = ctx.fn(xc, sample, *ins)
            outs = outs if isinstance(outs, tuple) else (outs, )
            pairs = [(o, g) for o, g in zip(outs, grad_of_chunk((a, b,
                                                                 sample)))
                     if o.requires_grad]
            wrt = [t for t in [xc] + ins if t.requires_grad]
            if not pairs or not wrt:
                continue
            grads = iter(torch.autograd.grad(
                [o for o, _ in pairs], wrt, [g for _, g in pairs],
                allow_unused=True))
        gxc, *g_ins = [next(grads) if t.requires_grad else None
                       for t in [xc] + ins]
        if gx is not None and gxc is not None:
            gx[a:b] += gxc
        for i, g in enumerate(g_ins):
            if g is not None:
                totals[i] = g if totals[i] is None else totals[i] + g
    return (gx, *totals)


class _ChunkedReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, chunks, num_samples, x, *tensors):
        ctx.fn, ctx.chunks, ctx.num_samples = fn, chunks, num_samples
        ctx.save_for_backward(x, *tensors)
        totals = None
        for chunk in chunks:
            outs = fn(x[chunk[0]:chunk[1]], chunk[2], *tensors)
            outs = outs if isinstance(outs, tuple) else (outs, )
            if totals is None:
                totals = [
                    t.new_zeros((num_samples, ) + t.shape) if num_samples
                    else torch.zeros_like(t) for t in outs
                ]
            for total, t in zip(totals, outs):
                if num_samples:
                    total[chunk[2]] += t
                else:
                    total += t
        return tuple(totals)

    @staticmethod
    def backward(ctx, *grad_totals):
        return (None, None, None) + _backward(
            ctx, lambda c: tuple(g[c[2]] if ctx.num_samples else g
                                 for g in grad_totals))


class _ChunkedMap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, chunks, x, *tensors):
        ctx.fn, ctx.chunks = fn, chunks
        ctx.save_for_backward(x, *tensors)
        out = None
        for a, b, sample in chunks:
            rows = fn(x[a:b], sample, *tensors)
            if out is None:
                out = rows.new_empty((x.size(0), rows.size(1)))
            out[a:b] = rows
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return (None, None) + _backward(
            ctx, lambda c: (grad_out[c[0]:c[1]], ))


def chunked_reduce(fn: Callable, x: Tensor, chunks: Sequence[Chunk],
                   tensors: Sequence[Tensor],
                   num_samples: int = 0) -> Tuple[Tensor, ...]:
    """``sum over chunks of fn(x[a:b], sample, *tensors)`` (a tuple of
    tensors), per sample (``[num_samples, *shape]``) when ``num_samples`` is
    positive, else over all chunks.  Stores only ``x`` and ``tensors``."""
    return _ChunkedReduce.apply(fn, list(chunks), num_samples, x, *tensors)


def chunked_map(fn: Callable, x: Tensor, chunks: Sequence[Chunk],
                tensors: Sequence[Tensor]) -> Tensor:
    """Rows ``fn(x[a:b], sample, *tensors)`` for every chunk, as one
    ``[N, F]`` tensor.  Stores only ``x`` and ``tensors``."""
    return _ChunkedMap.apply(fn, list(chunks), x, *tensors)

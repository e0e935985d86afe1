"""Memory-lean autograd: row-wise work in chunks, recomputed in backward.

A latent-graph unit is a chain of row-wise computations (projections,
BatchNorm with given statistics, normalisations) and small global reductions
(BatchNorm moments, per-sample latent sums).  Plain autograd stores every
``N x d`` and ``N x C`` intermediate of that chain: about 20 copies of the
input for LatentGNN.  Here each chunk of visible nodes runs under
:func:`torch.utils.checkpoint.checkpoint` (non-reentrant), which keeps only
the chunk's inputs and recomputes its intermediates in backward, one chunk at
a time.  Peak memory is then a few copies of the input plus one chunk's
intermediates, whatever ``N`` is, at the price of recomputing cheap row-wise
work.  It is plain autograd otherwise: double backward, hooks and autocast
work as usual.

``fn(x_chunk, sample, *tensors)`` must be row-wise in ``x_chunk`` (no
interaction between rows); everything global enters through ``tensors``,
which may be outputs of earlier passes, so gradients flow through the chain.
"""
from typing import Callable, List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .segments import Segments


class Chunk(NamedTuple):
    """Rows ``x[start:stop]`` of sample ``sample``; ``rows`` is that view of
    the input (one ``split`` of the input for all passes, so that the
    chunks' gradients are joined once)."""
    start: int
    stop: int
    sample: int
    rows: Tensor


def plan_chunks(x: Tensor, segments: Segments,
                chunk_size: int) -> List[Chunk]:
    """Splits every sample's rows of ``x [N, C]`` into pieces of at most
    ``chunk_size``, in order."""
    bounds: List[Tuple[int, int, int]] = []
    sizes = segments.sizes or [segments.size] * segments.num_samples
    start = 0
    for sample, size in enumerate(sizes):
        for a in range(start, start + size, chunk_size):
            bounds.append((a, min(a + chunk_size, start + size), sample))
        start += size
    rows = x.split([b - a for a, b, _ in bounds]) if bounds else []
    return [Chunk(a, b, s, r) for (a, b, s), r in zip(bounds, rows)]


def _run(fn: Callable, chunk: Chunk, tensors: Sequence[Tensor]):
    return checkpoint(fn, chunk.rows, chunk.sample, *tensors,
                      use_reentrant=False, preserve_rng_state=False)


def chunked_reduce(fn: Callable, chunks: Sequence[Chunk],
                   tensors: Sequence[Tensor],
                   num_samples: int = 0) -> Tuple[Tensor, ...]:
    """``sum over chunks of fn(chunk rows, sample, *tensors)`` (a tuple of
    tensors), per sample (``[num_samples, *shape]``) when ``num_samples`` is
    positive, else over all chunks.  Keeps only the chunks' inputs for
    backward."""
    totals: List = []
    for chunk in chunks:
        outs = _run(fn, chunk, tensors)
        outs = outs if isinstance(outs, tuple) else (outs, )
        if not totals:
            totals = [[] if num_samples else None for _ in outs]
        for i, t in enumerate(outs):
            if num_samples:
                totals[i].append((chunk.sample, t))
            else:
                totals[i] = t if totals[i] is None else totals[i] + t
    if not num_samples:
        return tuple(totals)
    result = []
    for parts in totals:
        zero = parts[0][1].new_zeros(parts[0][1].shape)
        per_sample: List = [None] * num_samples
        for s, t in parts:
            per_sample[s] = t if per_sample[s] is None else per_sample[s] + t
        result.append(torch.stack([zero if t is None else t
                                   for t in per_sample]))
    return tuple(result)


def chunked_map(fn: Callable, chunks: Sequence[Chunk],
                tensors: Sequence[Tensor]) -> Tensor:
    """Rows ``fn(chunk rows, sample, *tensors)`` for every chunk, joined
    into one ``[N, F]`` tensor.  Keeps only the chunks' inputs for
    backward."""
    return torch.cat([_run(fn, chunk, tensors) for chunk in chunks])

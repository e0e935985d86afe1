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

``fn(x_chunk, sample, *args)`` must be row-wise in ``x_chunk`` (no
interaction between rows); everything global enters through ``args``:
tensors, which may be outputs of earlier passes, so gradients flow through
the chain, or containers of them (non-reentrant checkpointing tracks tensors
wherever they sit).  ``args`` are used again when a chunk is recomputed in
backward: do not change them in place afterwards.
"""
from functools import reduce
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
    ``chunk_size``, in order; one empty chunk (of sample 0) when ``x`` has
    no rows (a process of a sharded unit may hold none: its passes still
    give sums of the right shapes, zeros)."""
    bounds: List[Tuple[int, int, int]] = []
    sizes = segments.sizes or [segments.size] * segments.num_samples
    start = 0
    for sample, size in enumerate(sizes):
        for a in range(start, start + size, chunk_size):
            bounds.append((a, min(a + chunk_size, start + size), sample))
        start += size
    if not bounds:
        return [Chunk(0, 0, 0, x[:0])]
    rows = x.split([b - a for a, b, _ in bounds])
    return [Chunk(a, b, s, r) for (a, b, s), r in zip(bounds, rows)]


def _run(fn: Callable, chunk: Chunk, args: Sequence) -> Tuple[Tensor, ...]:
    out = checkpoint(fn, chunk.rows, chunk.sample, *args,
                     use_reentrant=False, preserve_rng_state=False)
    return out if isinstance(out, tuple) else (out, )


def _total(parts: Sequence[Tensor], like: Tensor) -> Tensor:
    """The sum of ``parts`` in order (zeros shaped like ``like`` if
    there are none)."""
    return reduce(torch.add, parts) if parts else like.new_zeros(like.shape)


def chunked_reduce(fn: Callable, chunks: Sequence[Chunk], args: Sequence,
                   num_samples: int = 0) -> Tuple[Tensor, ...]:
    """``sum over chunks of fn(chunk rows, sample, *args)`` (a tensor or a
    tuple of tensors), per sample (``[num_samples, *shape]``) when
    ``num_samples`` is positive, else over all chunks.  Keeps only the
    chunks' inputs for backward."""
    per_chunk = [_run(fn, chunk, args) for chunk in chunks]
    if not num_samples:
        return tuple(_total(parts, parts[0]) for parts in zip(*per_chunk))
    of_sample: List[List[int]] = [[] for _ in range(num_samples)]
    for i, chunk in enumerate(chunks):
        of_sample[chunk.sample].append(i)
    return tuple(
        torch.stack([_total([parts[i] for i in ids], parts[0])
                     for ids in of_sample])
        for parts in zip(*per_chunk))


def chunked_map(fn: Callable, chunks: Sequence[Chunk],
                args: Sequence) -> Tensor:
    """Rows ``fn(chunk rows, sample, *args)`` for every chunk, joined into
    one ``[N, F]`` tensor.  Keeps only the chunks' inputs for backward."""
    return torch.cat([_run(fn, chunk, args)[0] for chunk in chunks])

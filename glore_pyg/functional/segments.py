"""The layout of visible nodes: which consecutive rows of ``x`` form a
sample.

Every unit of glore-pyg works per sample: each image or point cloud of a batch
gets its own latent nodes, and no information crosses samples.  PyG stores a
batch of graphs as one node matrix ``x [N, C]`` plus ``batch [N]`` (sorted) or
``ptr [S + 1]``; a CNN feature map ``[B, C, *spatial]`` flattens to ``B``
samples of equal size.  :class:`Segments` turns either description into the
batched dense products the fused paths need, without padding:

* all samples of equal size (grids, or a PyG batch that happens to be so):
  zero-copy views ``[S, n, *]`` and one ``bmm``;
* different sizes: one ``mm`` per sample on row slices, written into slices
  of the output (and, in backward, of the gradients) without padding, ``cat``
  copies or an ``E x C`` message tensor.

Node matrices have one of two storage layouts, with the channels on axis 1
in both (so that BatchNorm, L2 normalisation over channels and
concatenation are written once):

* **rows** ``[N, C]``, PyG's layout, any sample sizes;
* **channels-first** ``[S, C, n]``, equal sizes only: a CNN feature map
  ``[B, C, *spatial]`` viewed without a copy (:meth:`Segments.grid`).  Its
  1x1 projections are batched matmuls (what a 1x1 convolution computes)
  and its BatchNorm the ``[B, C, L]`` kernel of CNNs.
"""
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor
from torch.compiler import is_exporting
from torch_geometric.utils import scatter

from . import memory


class Segments:
    r"""Consecutive samples of a node-feature matrix.

    Build it with :meth:`from_batch`.  ``sizes`` is ``None`` when all samples
    have the same number of nodes (the fast, view-only case).
    """

    def __init__(self, num_nodes: int, num_samples: int,
                 sizes: Optional[List[int]], device: torch.device,
                 channels_first: bool = False):
        if channels_first and sizes is not None:
            raise ValueError("The channels-first layout needs samples of "
                             "equal size")
        self.num_nodes = num_nodes
        self.num_samples = num_samples
        self.sizes = sizes
        self.device = device
        self.channels_first = channels_first
        self._batch: Optional[Tensor] = None

    def __repr__(self) -> str:
        if self.channels_first:
            return (f'Segments(num_samples={self.num_samples}, '
                    f'size={self.size} each, channels_first=True)')
        if self.sizes is None:
            return (f'Segments(num_samples={self.num_samples}, '
                    f'size={self.size} each)')
        return f'Segments(num_samples={self.num_samples}, sizes={self.sizes})'

    @classmethod
    def grid(cls, x: Tensor) -> 'Segments':
        """The channels-first layout of ``x [S, C, n]``: ``S`` samples of
        ``n`` visible nodes each (a flattened feature map)."""
        if x.dim() != 3:
            raise ValueError(f"A channels-first node tensor is [S, C, n], "
                             f"got shape {tuple(x.shape)}")
        return cls(x.size(0) * x.size(2), x.size(0), None, x.device,
                   channels_first=True)

    def matches(self, t: Tensor) -> bool:
        """Whether ``t`` is a node tensor of this layout (any channels)."""
        if self.channels_first:
            return (t.dim() == 3 and t.size(0) == self.num_samples
                    and t.size(2) == self.size)
        return t.dim() == 2 and t.size(0) == self.num_nodes

    def shape(self, channels) -> str:
        """The expected node-tensor shape, for error messages."""
        if self.channels_first:
            return f'[{self.num_samples}, {channels}, {self.size}]'
        return f'[{self.num_nodes}, {channels}]'

    def rows(self, t: Tensor) -> Tensor:
        """A node tensor in the rows layout ``[N, F]`` (a copy if it is
        channels-first)."""
        if self.channels_first:
            return t.transpose(1, 2).reshape(self.num_nodes, t.size(1))
        return t

    def linear(self, x: Tensor, weight: Tensor,
               bias: Optional[Tensor] = None, relu: bool = False) -> Tensor:
        """A node-wise linear map (the papers' 1x1 convolution):
        ``weight [O, C]``, ``bias [O]``; then ReLU with ``relu``."""
        if not self.channels_first:
            return linear_rows(x, weight, bias, relu)
        # [S, O, C] @ [S, C, n]: no copy of W
        w = weight.expand(x.size(0), *weight.shape)
        out = torch.bmm(w, x) if bias is None else torch.baddbmm(
            bias.view(1, -1, 1), w, x)
        return torch.relu_(out) if relu else out

    def channels(self, v: Tensor) -> Tensor:
        """A per-channel vector ``[C]`` shaped to broadcast over node
        tensors of this layout."""
        return v.view(1, -1, 1) if self.channels_first else v

    def channel_mean(self, x: Tensor) -> Tensor:
        """Mean of each channel over all visible nodes: ``[C]``."""
        return x.mean((0, 2)) if self.channels_first else x.mean(0)

    def gram(self, x: Tensor) -> Tensor:
        r""":math:`\mathbf{X}^\top \mathbf{X}` over all visible nodes:
        ``[C, C]``."""
        if self.channels_first:  # [S, C, n] @ [S, n, C], summed over S
            return torch.bmm(x, x.transpose(1, 2)).sum(0)
        return torch.mm(x.t(), x)

    @classmethod
    def from_batch(cls, x: Tensor, batch: Optional[Tensor] = None,
                   ptr: Optional[Tensor] = None,
                   batch_size: Optional[int] = None) -> 'Segments':
        r"""Reads the sample layout of ``x`` from PyG's ``batch`` / ``ptr``.

        Args:
            x (Tensor): node features ``[N, C]``.
            batch (LongTensor, optional): sorted sample index of each node
                ``[N]``, as in :class:`torch_geometric.data.Batch`.
            ptr (LongTensor, optional): sample boundaries ``[S + 1]``.
            batch_size (int, optional): number of samples ``S``.  Without
                ``batch`` and ``ptr``, ``x`` holds ``batch_size`` samples of
                equal size stored one after the other (a flattened grid).
                With ``batch``, trailing samples may be empty.
        """
        if x.dim() != 2:
            raise ValueError(f"'x' must be a node-feature matrix [N, C], "
                             f"got shape {tuple(x.shape)}")
        num_nodes, device = x.size(0), x.device
        if batch_size is not None and (not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"'batch_size' must be a positive int, "
                             f"got {batch_size!r}")

        if (ptr is not None or batch is not None) and is_exporting():
            raise ValueError(
                "torch.export: the sample sizes in 'batch' / 'ptr' are data, "
                "and the fused path needs them as numbers (one matmul per "
                "sample).  Export the layer for one sample (no 'batch') or "
                "for equal samples ('batch_size'), with a dynamic number of "
                "nodes, and call it per sample")
        if ptr is not None:
            if ptr.dim() != 1 or ptr.numel() < 2 or ptr.is_floating_point():
                raise ValueError(f"'ptr' must be an integer tensor [S + 1] "
                                 f"with S >= 1, got shape {tuple(ptr.shape)}")
            sizes = (ptr[1:] - ptr[:-1]).tolist()
            if int(ptr[0]) != 0 or int(ptr[-1]) != num_nodes:
                raise ValueError(f"'ptr' must start at 0 and end at the "
                                 f"number of nodes ({num_nodes}), got "
                                 f"{int(ptr[0])} ... {int(ptr[-1])}")
            if min(sizes) < 0:
                raise ValueError("'ptr' must be non-decreasing")
            if batch_size is not None and batch_size != len(sizes):
                raise ValueError(f"'batch_size' ({batch_size}) disagrees "
                                 f"with 'ptr' ({len(sizes)} samples)")
        elif batch is not None:
            if batch.dim() != 1 or batch.numel() != num_nodes:
                raise ValueError(f"'batch' must have shape [{num_nodes}] "
                                 f"(one entry per node of 'x'), got "
                                 f"{tuple(batch.shape)}")
            if batch.is_floating_point():
                raise ValueError("'batch' must be an integer tensor")
            if num_nodes == 0:
                sizes = [0] * (batch_size or 1)
            else:
                if bool((batch[1:] < batch[:-1]).any()):
                    raise ValueError(
                        "'batch' must be sorted (nodes of one sample stored "
                        "consecutively, as in torch_geometric.data.Batch)")
                if int(batch[0]) < 0:
                    raise ValueError("'batch' must be non-negative")
                last = int(batch[-1])
                if batch_size is not None and last >= batch_size:
                    raise ValueError(f"'batch' holds sample index {last}, "
                                     f"but 'batch_size' is {batch_size}")
                sizes = torch.bincount(
                    batch, minlength=batch_size or 0).tolist()
        else:
            num_samples = batch_size or 1
            if num_nodes % num_samples != 0:
                raise ValueError(
                    f"Without 'batch' or 'ptr', 'x' must hold 'batch_size' "
                    f"samples of equal size, but {num_nodes} nodes do not "
                    f"split into {num_samples} samples")
            return cls(num_nodes, num_samples, None, device)

        if all(s == sizes[0] for s in sizes):
            return cls(num_nodes, len(sizes), None, device)
        out = cls(num_nodes, len(sizes), sizes, device)
        if batch is not None:
            out._batch = batch
        return out

    # ------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Nodes per sample when all samples have equal size."""
        return self.num_nodes // self.num_samples

    def counts(self) -> Tensor:
        """Number of nodes of each sample ``[S]``."""
        if self.sizes is None:
            return torch.full((self.num_samples, ), self.size,
                              device=self.device, dtype=torch.long)
        return torch.tensor(self.sizes, device=self.device, dtype=torch.long)

    def batch(self) -> Tensor:
        """Sample index of each node ``[N]``."""
        if self._batch is None:
            self._batch = torch.repeat_interleave(
                torch.arange(self.num_samples, device=self.device),
                self.counts(), output_size=self.num_nodes)
        return self._batch

    # ------------------------------------------------------------------
    def sum(self, src: Tensor) -> Tensor:
        """Per-sample sum over nodes: ``[N, *] -> [S, *]``."""
        if self.channels_first:
            return src.sum(2)
        if self.sizes is None:
            # [S*n, *] -> [S, n, *]
            return src.view(self.num_samples, self.size,
                            *src.shape[1:]).sum(1)
        return scatter(src, self.batch(), dim=0, dim_size=self.num_samples,
                       reduce='sum')

    def sum_of_squares(self, src: Tensor) -> Tensor:
        """Per-sample sum of squares over nodes: ``[N, F] -> [S, F]``, in one
        pass without an ``N x F`` temporary (forward or backward)."""
        if self.channels_first:
            return _SumOfSquares.apply(src, 2)
        if self.sizes is None:
            return _SumOfSquares.apply(
                src.view(self.num_samples, self.size, src.size(1)), 1)
        return torch.stack([
            _SumOfSquares.apply(part, 0) for part in src.split(self.sizes)
        ])

    def expand(self, src: Tensor) -> Tensor:
        """Repeats a per-sample value for each node: ``[S, *] -> [N, *]``
        (channels-first: ``[S, F] -> [S, F, n]``, a view)."""
        if self.channels_first:
            return src.unsqueeze(2).expand(*src.shape, self.size)
        if self.sizes is None:
            rest = src.shape[1:]
            return src.unsqueeze(1).expand(self.num_samples, self.size,
                                           *rest).reshape(-1, *rest)
        return src.index_select(0, self.batch())

    def pool(self, weight: Tensor, x: Tensor) -> Tensor:
        r"""Per-sample :math:`\mathbf{W}_s^\top \mathbf{X}_s`:
        ``weight [N, d]``, ``x [N, C]`` -> ``[S, d, C]``."""
        if self.channels_first:  # [S, d, n] @ [S, n, C]
            return torch.bmm(weight, x.transpose(1, 2))
        return _SegmentPool.apply(weight, x, self.sizes, self.num_samples,
                                  False)

    def pool_and_sum_of_squares(self, weight: Tensor,
                                x: Tensor) -> Tuple[Tensor, Tensor]:
        """:meth:`pool` and :meth:`sum_of_squares` of ``weight`` together,
        in one autograd node (rows layout) whose backward writes the
        weight's two gradient terms into one buffer."""
        if self.channels_first:
            return self.pool(weight, x), self.sum_of_squares(weight)
        return _SegmentPool.apply(weight, x, self.sizes, self.num_samples,
                                  True)

    def spread(self, weight: Tensor, z: Tensor) -> Tensor:
        r"""Per-sample :math:`\mathbf{W}_s \mathbf{Z}_s`:
        ``weight [N, d]``, ``z [S, d, C]`` -> ``[N, C]``."""
        if self.channels_first:  # [S, C, d] @ [S, d, n]
            return torch.bmm(z.transpose(1, 2), weight)
        return _SegmentSpread.apply(weight, z, self.sizes)

    def per_sample(self, fn: Callable[..., Tensor], *xs: Tensor) -> Tensor:
        """Applies a dense batched function ``[S, n, *] -> [S, n, F]`` to
        node matrices ``[N, *]``; returns ``[N, F]``."""
        if self.channels_first:
            return fn(*[x.transpose(1, 2) for x in xs]).transpose(1, 2)
        if self.sizes is None:
            S, n = self.num_samples, self.size
            out = fn(*[x.view(S, n, x.size(1)) for x in xs])
            return out.reshape(S * n, out.size(2))
        parts = zip(*[x.split(self.sizes) for x in xs])
        return torch.cat([fn(*[p.unsqueeze(0) for p in ps])[0]
                          for ps in parts])


def _product(x: Tensor, weight: Tensor, bias: Optional[Tensor],
             out: Optional[Tensor] = None) -> Tensor:
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def linear_rows(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                relu: bool = False) -> Tensor:
    """``x W^T + b`` (then ReLU with ``relu``) on node rows ``x [N, C]``,
    its output and the gradients of ``x`` and of the ReLU's input in
    :func:`~glore_pyg.functional.memory.empty` buffers, instead of the fresh
    tensors of ``torch.addmm``, ``torch.relu`` and their autograd."""
    if torch.compiler.is_compiling() or is_exporting():
        out = _product(x, weight, bias)
    elif torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, weight, bias)):
        return _RowLinear.apply(x, weight, bias, relu)
    else:
        out = _product(x, weight, bias,
                       memory.out_buffer((x.size(0), weight.size(0)), x))
    return torch.relu_(out) if relu else out


class _RowLinear(torch.autograd.Function):
    # autograd's addmm (and relu_), with the N-row tensors in memory.empty
    # buffers
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                relu: bool) -> Tensor:
        out = _product(x, weight, bias,
                       memory.out_buffer((x.size(0), weight.size(0)), x))
        if relu:
            out.relu_()
        ctx.save_for_backward(x, weight, out if relu else None)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, out = ctx.saved_tensors
        if out is not None:
            grad = relu_backward(grad, out)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = row_product(grad, weight)
        if ctx.needs_input_grad[1]:
            dw = grad.t() @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad.sum(0)
        return dx, dw, db, None


def relu_backward(grad: Tensor, out: Tensor) -> Tensor:
    """ReLU's backward as autograd's (``grad`` where the ReLU's output
    ``out`` is positive, else 0), in a
    :func:`~glore_pyg.functional.memory.empty` buffer outside grad mode."""
    threshold = torch.ops.aten.threshold_backward
    buffer = memory.out_buffer(grad.shape, grad)
    return threshold(grad, out, 0) if buffer is None else \
        threshold.grad_input(grad, out, 0, grad_input=buffer)


def channel_views(x: Tensor, bounds: List[Tuple[int, int]]
                  ) -> Tuple[Tensor, ...]:
    """The channel ranges ``x[:, start:stop]`` for ``(start, stop)`` in
    ``bounds`` (channels on axis 1, both layouts), as views; a range may be
    given more than once, one view per use.  Ranges must be equal or
    disjoint.

    The same values and gradients as slicing ``x`` (or ``chunk``) and using
    a slice several times, but backward writes the views' gradients, summed
    per range, into one :func:`~glore_pyg.functional.memory.empty` buffer:
    autograd would sum the repeated uses into a new tensor, then ``cat`` the
    ranges into another."""
    for a, b in bounds:
        if not 0 <= a < b <= x.size(1):
            raise ValueError(f"'bounds' must be channel ranges within "
                             f"[0, {x.size(1)}], got {(a, b)}")
        for c, d in bounds:
            if (a, b) != (c, d) and a < d and c < b:
                raise ValueError(f"'bounds' must be equal or disjoint, got "
                                 f"{(a, b)} and {(c, d)}")
    return _ChannelViews.apply(x, list(bounds))


class _ChannelViews(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, bounds: List[Tuple[int, int]]):
        ctx.bounds, ctx.shape = bounds, x.shape
        ctx.set_materialize_grads(False)
        return tuple(x.narrow(1, a, b - a) for a, b in bounds)

    @staticmethod
    def backward(ctx, *grads: Optional[Tensor]):
        given = [(ab, g) for ab, g in zip(ctx.bounds, grads) if g is not None]
        if not given:
            return None, None
        like = given[0][1]
        if torch.is_grad_enabled():  # double backward: differentiable ops
            dx = like.new_zeros(ctx.shape)
            for (a, b), g in given:
                dx = dx.index_add(1, torch.arange(a, b, device=g.device), g)
            return dx, None
        dx = memory.empty(ctx.shape, like)
        # ranges are equal or disjoint: do they cover every channel?
        partial = sum(b - a for a, b in {ab for ab, _ in given}) < \
            ctx.shape[1]
        if partial:
            dx.zero_()  # channels no gradient reached
        written = set()
        for (a, b), g in given:
            part = dx.narrow(1, a, b - a)
            if partial or (a, b) in written:
                part.add_(g)
            else:
                part.copy_(g)
                written.add((a, b))
        return dx, None


def row_product(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for node rows ``a [N, *]``, in a
    :func:`~glore_pyg.functional.memory.empty` buffer (differentiable
    under grad mode, as in double backward)."""
    return torch.mm(a, b, out=memory.out_buffer((a.size(0), b.size(1)), a))


_BLOCK_ELEMENTS = 1 << 18  # accumulator of square_sum: 1 MB in float32
_MAX_BLOCKS = 512


def square_sum(a: Tensor, dim: int) -> Tensor:
    """``(a ** 2).sum(dim)`` without an ``a``-sized temporary.

    torch's CPU norm kernels reduce an outer (strided) dimension about
    twenty times slower than an inner one (measured here on ``[1e6, 64]``
    over rows: 248 ms, against 10 ms for this), so on CPU the rows are
    summed in blocks: ``addcmul_`` into a cache-sized accumulator, then one
    small sum."""
    if (a.device.type != 'cpu' or a.stride(dim) == 1 or a.numel() == 0
            or torch.compiler.is_compiling() or is_exporting()):
        return torch.linalg.vector_norm(a, dim=dim).square()
    a = a.movedim(dim, 0)  # a view [n, *rest]
    n, rest = a.size(0), a[0].numel()
    block = max(1, min(n, _BLOCK_ELEMENTS // max(rest, 1)))
    if -(-n // block) > _MAX_BLOCKS:  # wide rows: too many small steps
        return torch.linalg.vector_norm(a, dim=0).square()
    acc = a.new_zeros(block, *a.shape[1:])
    for start in range(0, n, block):
        part = a[start:start + block]
        acc[:part.size(0)].addcmul_(part, part)
    return acc.sum(0)


class _SumOfSquares(torch.autograd.Function):
    # sum(a**2, dim): a single reduction forward, a single multiply backward
    # (autograd of `a * a` or of a norm makes two or three N x F passes).
    @staticmethod
    def forward(ctx, a: Tensor, dim: int) -> Tensor:
        ctx.save_for_backward(a)
        ctx.dim = dim
        return square_sum(a, dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, = ctx.saved_tensors  # differentiable: double backward works
        return a * (2 * grad).unsqueeze(ctx.dim), None


# Samples of different sizes: one mm per sample, written straight into the
# output and gradient buffers (``out=`` on row slices) instead of the
# ``split`` / ``cat`` copies autograd would make around each product.  Under
# ``create_graph`` the backward uses differentiable products instead.
def _bounds(sizes: List[int]):
    start = 0
    for n in sizes:
        yield start, start + n
        start += n


class _SegmentPool(torch.autograd.Function):
    # out[s] = W_s^T X_s;  dW_s = X_s g_s^T,  dX_s = W_s g_s.  With
    # `squares`, also sq[s] = sum of W_s ** 2 over rows, whose gradient
    # 2 W_s g_sq[s] is added into dW in place (no second N x d gradient
    # for autograd to sum).  Samples of equal size (`sizes` None) use one
    # bmm on [S, n, *] views.  The gradients are plain new tensors, which
    # autograd can reuse in place when it sums them with others.
    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, sizes: Optional[List[int]],
                num_samples: int, squares: bool):
        ctx.save_for_backward(weight, x)
        ctx.sizes, ctx.num_samples, ctx.squares = sizes, num_samples, squares
        ctx.set_materialize_grads(False)
        if sizes is None:
            w3, x3 = _samples(weight, num_samples), _samples(x, num_samples)
            out = torch.bmm(w3.transpose(1, 2), x3)
            sq = square_sum(w3, 1) if squares else None
        else:
            out = weight.new_empty(len(sizes), weight.size(1), x.size(1))
            for s, (a, b) in enumerate(_bounds(sizes)):
                torch.mm(weight[a:b].t(), x[a:b], out=out[s])
            sq = torch.stack([square_sum(weight[a:b], 0)
                              for a, b in _bounds(sizes)]) if squares else None
        return out if sq is None else (out, sq)

    @staticmethod
    def backward(ctx, grad: Optional[Tensor], grad_sq: Optional[Tensor] = None):
        weight, x = ctx.saved_tensors
        sizes, S = ctx.sizes, ctx.num_samples
        need_w, need_x = ctx.needs_input_grad[:2]
        if grad is None:
            grad = weight.new_zeros(S, weight.size(1), x.size(1))
        if sizes is None:
            w3, x3 = _samples(weight, S), _samples(x, S)
            if torch.is_grad_enabled():  # double backward
                gw = torch.bmm(x3, grad.transpose(1, 2)) if need_w else None
                if gw is not None and grad_sq is not None:
                    gw = gw + 2 * w3 * grad_sq.unsqueeze(1)
                gx = torch.bmm(w3, grad) if need_x else None
                return (None if gw is None else gw.view(weight.shape),
                        None if gx is None else gx.view(x.shape), None, None,
                        None)
            # written through [S, n, *] views into plain [N, *] tensors: a
            # returned view would keep its base alive, and autograd only
            # sums into a tensor whose storage nothing else holds
            gw = gx = None
            if need_w:
                gw = memory.empty(weight.shape, weight)
                gw3 = _samples(gw, S)
                torch.bmm(x3, grad.transpose(1, 2), out=gw3)
                if grad_sq is not None:
                    gw3.addcmul_(w3, 2 * grad_sq.unsqueeze(1))
            if need_x:
                gx = memory.empty(x.shape, x)
                torch.bmm(w3, grad, out=_samples(gx, S))
            return gw, gx, None, None, None
        bounds = list(_bounds(sizes))
        if torch.is_grad_enabled():  # double backward
            gw = torch.cat([x[a:b] @ grad[s].t()
                            for s, (a, b) in enumerate(bounds)]) \
                if need_w else None
            if gw is not None and grad_sq is not None:
                gw = gw + 2 * weight * torch.cat([
                    grad_sq[s].expand(b - a, -1)
                    for s, (a, b) in enumerate(bounds)])
            gx = torch.cat([weight[a:b] @ grad[s]
                            for s, (a, b) in enumerate(bounds)]) \
                if need_x else None
            return gw, gx, None, None, None
        gw = memory.empty(weight.shape, weight) if need_w else None
        gx = memory.empty(x.shape, x) if need_x else None
        for s, (a, b) in enumerate(bounds):
            if gw is not None:
                torch.mm(x[a:b], grad[s].t(), out=gw[a:b])
                if grad_sq is not None:
                    gw[a:b].addcmul_(weight[a:b], 2 * grad_sq[s])
            if gx is not None:
                torch.mm(weight[a:b], grad[s], out=gx[a:b])
        return gw, gx, None, None, None


def _samples(t: Tensor, num_samples: int) -> Tensor:
    """``[S * n, F]`` as ``[S, n, F]`` (a view)."""
    return t.view(num_samples, t.size(0) // num_samples, t.size(1))


def _bmm_rows(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for ``a [S, n, *]`` as node rows ``[S * n, F]``, written
    through ``[S, n, F]`` views into a :func:`~glore_pyg.functional.memory
    .out_buffer` (a plain ``bmm`` where ``out=`` is not allowed)."""
    S, n, F = a.size(0), a.size(1), b.size(2)
    out = memory.out_buffer((S * n, F), a)
    if out is None:  # grad mode (double backward), tracing
        return torch.bmm(a, b).reshape(S * n, F)
    torch.bmm(a, b, out=out.view(S, n, F))
    return out


class _SegmentSpread(torch.autograd.Function):
    # out_s = W_s Z_s;  dW_s = g_s Z_s^T,  dZ_s = W_s^T g_s.  Samples of
    # equal size (`sizes` None) use one bmm on [S, n, *] views.  The N-row
    # output and weight gradient are memory.empty buffers.
    @staticmethod
    def forward(ctx, weight: Tensor, z: Tensor,
                sizes: Optional[List[int]]) -> Tensor:
        ctx.save_for_backward(weight, z)
        ctx.sizes = sizes
        if sizes is None:
            return _bmm_rows(_samples(weight, z.size(0)), z)
        out = memory.empty((weight.size(0), z.size(2)), z)
        for s, (a, b) in enumerate(_bounds(sizes)):
            torch.mm(weight[a:b], z[s], out=out[a:b])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, z = ctx.saved_tensors
        need_w, need_z = ctx.needs_input_grad[:2]
        if ctx.sizes is None:
            S = z.size(0)
            w3, g3 = _samples(weight, S), _samples(grad, S)
            gz = torch.bmm(w3.transpose(1, 2), g3) if need_z else None
            gw = _bmm_rows(g3, z.transpose(1, 2)) if need_w else None
            return gw, gz, None
        bounds = list(_bounds(ctx.sizes))
        if torch.is_grad_enabled():  # double backward
            gw = torch.cat([grad[a:b] @ z[s].t()
                            for s, (a, b) in enumerate(bounds)]) \
                if need_w else None
            gz = torch.stack([weight[a:b].t() @ grad[a:b]
                              for a, b in bounds]) if need_z else None
            return gw, gz, None
        gw = memory.empty(weight.shape, weight) if need_w else None
        gz = torch.empty_like(z) if need_z else None
        for s, (a, b) in enumerate(bounds):
            if gw is not None:
                torch.mm(grad[a:b], z[s].t(), out=gw[a:b])
            if gz is not None:
                torch.mm(weight[a:b].t(), grad[a:b], out=gz[s])
        return gw, gz, None

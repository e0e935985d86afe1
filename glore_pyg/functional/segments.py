"""The layout of visible nodes: which consecutive rows of ``x`` form a
sample.

Every unit of glore-pyg works per sample: each image or point cloud of a batch
gets its own latent nodes, and no information crosses samples.  PyG stores a
batch of graphs as one node matrix ``x [N, C]`` plus ``batch [N]`` (sorted) or
``ptr [S + 1]``; a CNN feature map ``[B, C, *spatial]`` flattens to ``B``
samples of equal size.  :class:`Segments` turns either description into the
dense per-sample products the fused paths need, with plain differentiable
torch operations (so autograd, double backward, autocast and
``torch.compile`` apply unchanged):

* all samples of equal size (grids, ``batch_size``, or a PyG batch that
  happens to be so): views ``[S, n, *]`` and one ``bmm``;
* different sizes, eagerly: one ``mm`` per sample on row slices
  (``split``), results joined with ``stack`` / ``cat``; no padding;
* different sizes under :func:`torch.compile`: the rows placed into a
  zero-padded ``[S, n_max, *]`` (one ``index_copy``), one ``bmm``, the rows
  read back (one ``index_select``): no Python loop over samples, so the
  compiler traces one graph whatever the number and sizes of the samples
  (the number of samples and the largest size become symbolic after the
  first change);
* sums over the nodes of each sample are one scatter in every case; never
  an ``E x C`` message tensor.

Reading the sample sizes of ``batch`` / ``ptr`` is the one host
synchronisation of a forward pass (:meth:`Segments.from_batch` fetches every
number it checks in a single transfer); ``batch_size`` and grids need none.
"""
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

import torch
from torch import Tensor
from torch.compiler import is_exporting
from torch_geometric.utils import scatter

from .checks import check_int, is_symbolic

if TYPE_CHECKING:  # pragma: no cover
    from .shard import Shard


class Segments:
    r"""Consecutive samples of a node-feature matrix.

    Build it with :meth:`from_batch`.  ``sizes`` is ``None`` when all samples
    have the same number of nodes (the view-only case).

    Args:
        num_nodes (int): :math:`N`, rows of the node matrix.
        num_samples (int): :math:`S \geq 1`.
        sizes (list of int, optional): nodes per sample, or :obj:`None` for
            :math:`S` samples of :math:`N / S` nodes each.
        device (torch.device): where index tensors are made.
        batch (Tensor, optional): the sample index of each node, if known.
        counts (Tensor, optional): ``sizes`` as a tensor on ``device``, if
            known.

    Per-sample processing is the papers' own: every image (GloRe, `"Graph-Based
    Global Reasoning Networks" <https://arxiv.org/abs/1811.12814>`_;
    LatentGNN, `"Learning Efficient Non-local Relations for Visual
    Recognition" <https://arxiv.org/abs/1905.11634>`_) has its own latent
    nodes; :meth:`pool` and :meth:`spread` are the per-sample products
    :math:`\Psi_s^\top \mathbf{X}_s` and :math:`\Psi_s \mathbf{Z}_s` of
    their projections.

    Under :func:`torch.compile`, samples of different sizes go through a
    zero-padded ``[S, n_max, *]`` layout (:meth:`pad`, :meth:`unpad`:
    :math:`S \cdot n_{max}` rows against :math:`N`), and the code reads only
    :attr:`num_nodes`, :attr:`num_samples`, :attr:`max_size` and tensors,
    never the list :attr:`sizes`, so that the compiler guards on numbers it
    can make symbolic.

    Raises:
        ValueError: from :meth:`from_batch`: a malformed or inconsistent
            layout (the constructor itself checks nothing).
        RuntimeError: (from torch) a tensor passed to the per-sample
            products (:meth:`view`, :meth:`pool`, :meth:`spread`, ...)
            whose number of rows is not :attr:`num_nodes`; the methods do
            not check it themselves.
    """

    def __init__(self, num_nodes: int, num_samples: int,
                 sizes: Optional[List[int]], device: torch.device,
                 batch: Optional[Tensor] = None,
                 counts: Optional[Tensor] = None):
        self.num_nodes = num_nodes
        self.num_samples = num_samples
        self.sizes = sizes
        self.equal = sizes is None
        #: nodes of the largest sample
        self.max_size = num_nodes // num_samples if sizes is None \
            else max(sizes)
        self.device = device
        self._batch = batch
        self._counts = counts
        self._slots: Optional[Tensor] = None
        self._mask: Optional[Tensor] = None
        #: take the padded layout for samples of different sizes outside
        #: torch.compile too (see :meth:`padded`)
        self.force_padded = False
        #: the processes that hold the other visible nodes of these samples
        #: (:class:`~glore_pyg.functional.shard.Shard`), or :obj:`None`: the
        #: rows here are whole samples.  :meth:`reduce` and
        #: :meth:`total_counts` sum over it.
        self.shard: Optional['Shard'] = None
        self._total_counts: Optional[Tensor] = None

    def __repr__(self) -> str:
        if self.sizes is None:
            return (f'Segments(num_samples={self.num_samples}, '
                    f'size={self.size} each)')
        return f'Segments(num_samples={self.num_samples}, sizes={self.sizes})'

    @classmethod
    def from_batch(cls, x: Tensor, batch: Optional[Tensor] = None,
                   ptr: Optional[Tensor] = None,
                   batch_size: Optional[int] = None) -> 'Segments':
        r"""Reads and checks the sample layout of ``x`` from PyG's ``batch``
        / ``ptr``.

        Args:
            x (Tensor): node features ``[N, C]``.
            batch (LongTensor, optional): sorted sample index of each node
                ``[N]``, as in :class:`torch_geometric.data.Batch`.
            ptr (LongTensor, optional): sample boundaries ``[S + 1]``.  With
                ``batch`` too, the two must describe the same samples.
            batch_size (int, optional): number of samples ``S``.  Without
                ``batch`` and ``ptr``, ``x`` holds ``batch_size`` samples of
                equal size stored one after the other (a flattened grid;
                no host synchronisation).  With ``batch``, trailing samples
                may be empty.

        Raises:
            ValueError: a malformed or inconsistent layout, naming the
                argument; ``batch_size`` below 1.
            TypeError: ``batch_size`` not an int.
        """
        symbolic = is_symbolic(x)
        if not symbolic and x.dim() != 2:
            raise ValueError(f"'x' must be a node-feature matrix [N, C], "
                             f"got shape {tuple(x.shape)}")
        num_nodes, device = x.size(0), x.device
        if batch_size is not None:
            batch_size = check_int(batch_size, 'batch_size', minimum=1)
        if ptr is None and batch is None:
            num_samples = batch_size or 1
            if not symbolic and num_nodes % num_samples != 0:
                raise ValueError(
                    f"Without 'batch' or 'ptr', 'x' must hold 'batch_size' "
                    f"samples of equal size, but {num_nodes} nodes do not "
                    f"split into {num_samples} samples")
            return cls(num_nodes, num_samples, None, device)

        if symbolic:
            raise ValueError(
                "torch.fx symbolic tracing: the sample sizes in 'batch' / "
                "'ptr' are data, which a symbolic trace cannot read.  Trace "
                "with equal samples ('batch_size') or a grid adapter, or "
                "keep the unit a leaf of the trace "
                "(glore_pyg.nn.UnitTracer)")
        if is_exporting():
            raise ValueError(
                "torch.export: the sample sizes in 'batch' / 'ptr' are data, "
                "and the fused path needs them as numbers (one matmul per "
                "sample).  Export the layer for one sample (no 'batch') or "
                "for equal samples ('batch_size'), with a dynamic number of "
                "nodes, and call it per sample")
        return _read_sizes(cls, num_nodes, device, batch, ptr, batch_size)

    # ------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Nodes per sample when all samples have equal size."""
        return self.num_nodes // self.num_samples

    def counts(self) -> Tensor:
        """Number of nodes of each sample ``[S]``."""
        if self.equal:
            return torch.full((self.num_samples, ), self.size,
                              device=self.device, dtype=torch.long)
        if self._counts is None:
            self._counts = torch.tensor(self.sizes, device=self.device,
                                        dtype=torch.long)
        return self._counts

    def total_counts(self) -> Tensor:
        """Number of nodes of each sample over all processes of
        :attr:`shard` ``[S]`` (:meth:`counts` when not sharded)."""
        if self.shard is None:
            return self.counts()
        if self._total_counts is None:
            self._total_counts = self.shard.sum_counts(self.counts())
        return self._total_counts

    def reduce(self, *tensors: Optional[Tensor]
               ) -> Tuple[Optional[Tensor], ...]:
        """Per-sample sums over this process's nodes (:meth:`pool`,
        :meth:`sum`, :meth:`sum_of_squares`), completed into sums over the
        nodes of all processes of :attr:`shard` in one differentiable
        collective; the tensors themselves when not sharded.  Every sum
        over the visible nodes of a sample that a stage or unit uses goes
        through here: that is all a unit needs to be exact when sharded."""
        if self.shard is None:
            return tensors
        return self.shard.all_reduce(*tensors)

    def batch(self) -> Tensor:
        """Sample index of each node ``[N]``."""
        if self._batch is None:
            self._batch = torch.arange(
                self.num_samples, device=self.device).repeat_interleave(
                    self.counts(), output_size=self.num_nodes)
        return self._batch

    def split(self, t: Tensor) -> List[Tensor]:
        """The rows of each sample, ``[N, *] -> S x [N_s, *]`` (views; a
        Python list, for code outside the per-sample products)."""
        if self.sizes is None:
            return list(t.split(self.size))
        return list(t.split(self.sizes))

    def view(self, t: Tensor) -> Tensor:
        """``[N, *] -> [S, n, *]`` for samples of equal size (a view where
        the strides allow)."""
        return t.unflatten(0, (self.num_samples, self.size))

    # -- the padded layout of samples of different sizes ----------------
    def slots(self) -> Tensor:
        """Row of each node in the padded layout ``[S * n_max]``: sample
        ``s``'s ``i``-th node goes to ``s * n_max + i``."""
        if self._slots is None:
            counts = self.counts()
            starts = counts.cumsum(0) - counts  # first row of each sample
            batch = self.batch()
            self._slots = batch * self.max_size + (torch.arange(
                self.num_nodes, device=self.device) - starts[batch])
        return self._slots

    def pad(self, t: Tensor) -> Tensor:
        """``[N, *] -> [S, n, *]``: a view for samples of equal size, else
        the rows zero-padded to the largest sample (:math:`n = n_{max}`)."""
        if self.equal:
            return self.view(t)
        rows = t.new_zeros(self.num_samples * self.max_size, *t.shape[1:])
        return rows.index_copy(0, self.slots(), t).view(
            self.num_samples, self.max_size, *t.shape[1:])

    def unpad(self, t: Tensor) -> Tensor:
        """The inverse of :meth:`pad`: ``[S, n, *] -> [N, *]``, the padding
        rows dropped."""
        if self.equal:
            return t.flatten(0, 1)
        return t.flatten(0, 1).index_select(0, self.slots())

    def mask(self) -> Optional[Tensor]:
        """``[S, n_max]``, :obj:`True` at the rows of :meth:`pad` that hold a
        node; :obj:`None` for samples of equal size (no padding)."""
        if self.equal:
            return None
        if self._mask is None:
            mask = torch.zeros(self.num_samples * self.max_size,
                               dtype=torch.bool, device=self.device)
            self._mask = mask.index_fill(0, self.slots(), True).view(
                self.num_samples, self.max_size)
        return self._mask

    # ------------------------------------------------------------------
    def padded(self) -> bool:
        """Whether the per-sample products of samples of different sizes
        take the padded layout: under :func:`torch.compile` (one graph for
        any batch), or when :attr:`force_padded` is set.  Eagerly they run
        one product per sample on row slices (views, no padding: less
        memory and, measured, less time for clouds of different sizes)."""
        return not self.equal and (self.force_padded or
                                   torch.compiler.is_compiling())

    def batched(self) -> bool:
        """Whether the per-sample products run on all samples at once
        (``[S, n, *]`` batches: samples of equal size, or :meth:`padded`),
        rather than one sample at a time."""
        return self.equal or self.padded()

    def pool(self, weight: Tensor, x: Tensor) -> Tensor:
        r"""Per-sample :math:`\mathbf{W}_s^\top \mathbf{X}_s`:
        ``weight [N, d]``, ``x [N, C]`` -> ``[S, d, C]``."""
        if self.batched():  # [S, d, n] @ [S, n, C]
            return torch.bmm(self.pad(weight).transpose(1, 2), self.pad(x))
        return torch.stack([
            w.t() @ v for w, v in zip(self.split(weight), self.split(x))
        ])

    def spread(self, weight: Tensor, z: Tensor) -> Tensor:
        r"""Per-sample :math:`\mathbf{W}_s \mathbf{Z}_s`:
        ``weight [N, d]``, ``z [S, d, C]`` -> ``[N, C]``."""
        if self.batched():  # [S, n, d] @ [S, d, C]
            return self.unpad(torch.bmm(self.pad(weight), z))
        return torch.cat([w @ z[s] for s, w in enumerate(self.split(weight))])

    def sum_of_squares(self, src: Tensor) -> Tensor:
        """Per-sample sum of squares over nodes, ``[N, F] -> [S, F]``,
        accumulated in at least float32 (a sum over many half-precision
        rows would lose precision or overflow)."""
        dtype = torch.promote_types(src.dtype, torch.float32)
        if self.equal:
            return self.view(src).square().sum(1, dtype=dtype)
        return self.sum(src.to(dtype).square())

    def sum(self, src: Tensor) -> Tensor:
        """Per-sample sum over nodes: ``[N, *] -> [S, *]``."""
        if self.equal:
            return self.view(src).sum(1)
        return scatter(src, self.batch(), 0, self.num_samples, reduce='sum')

    def expand(self, src: Tensor) -> Tensor:
        """Repeats a per-sample value for each node: ``[S, *] -> [N, *]``."""
        if self.equal:
            return src.repeat_interleave(self.size, dim=0,
                                         output_size=self.num_nodes)
        return src.index_select(0, self.batch())

    def per_sample(self, fn: Callable[..., Tensor], *xs: Tensor) -> Tensor:
        """Applies a dense batched function to node matrices ``[N, *]``;
        returns ``[N, F]``.  ``fn(*inputs, mask=mask)`` receives the inputs
        as ``[S', n, *]`` and a ``mask`` ``[S', n]`` that is :obj:`False` at
        padding rows, or :obj:`None` where there is none: all samples at
        once (:meth:`view`, or :meth:`pad` when :meth:`padded`), or one
        sample at a time (:math:`S' = 1`, no padding).  It must return
        ``[S', n, F]`` whose real rows do not depend on the padding rows
        (e.g. by masking them out of an attention's keys)."""
        if self.batched():
            return self.unpad(fn(*[self.pad(x) for x in xs],
                                 mask=self.mask()))
        parts = zip(*[self.split(x) for x in xs])
        return torch.cat([fn(*[p.unsqueeze(0) for p in ps], mask=None)[0]
                          for ps in parts])


# Reading the sizes is the forward's one host synchronisation: under
# torch.compile it is one graph break, the function running eagerly as a
# whole (its data-dependent ``bincount`` and ``tolist`` would otherwise each
# break the graph).
@torch.compiler.disable
def _read_sizes(cls, num_nodes: int, device: torch.device,
                batch: Optional[Tensor], ptr: Optional[Tensor],
                batch_size: Optional[int]) -> 'Segments':
    if ptr is not None and (not isinstance(ptr, Tensor) or ptr.dim() != 1
                            or ptr.numel() < 2
                            or ptr.is_floating_point()):
        raise ValueError(f"'ptr' must be an integer tensor [S + 1] with "
                         f"S >= 1, got {_describe(ptr)}")
    if batch is not None:
        if not isinstance(batch, Tensor) or batch.dim() != 1 \
                or batch.numel() != num_nodes:
            raise ValueError(f"'batch' must have shape [{num_nodes}] "
                             f"(one entry per node of 'x'), got "
                             f"{_describe(batch)}")
        if batch.is_floating_point():
            raise ValueError("'batch' must be an integer tensor")

    # Every number checked below, fetched in one transfer.
    parts: List[Tensor] = []
    counts: Optional[Tensor] = None
    if ptr is not None:
        parts.append(ptr.long())
        counts = (ptr[1:] - ptr[:-1]).to(device=device, dtype=torch.long)
    if batch is not None and num_nodes > 0:
        batch = batch.long()
        unsorted = (batch[1:] < batch[:-1]).any().long().view(1)
        batch_counts = torch.bincount(batch.clamp_min(0),
                                      minlength=batch_size or 0)
        parts += [unsorted, batch[:1], batch[-1:], batch_counts]
        if counts is None:
            counts = batch_counts.to(device)
    values = torch.cat([p.to(device) for p in parts]).tolist() \
        if parts else []

    sizes: List[int]
    if ptr is not None:
        bounds, values = values[:ptr.numel()], values[ptr.numel():]
        if bounds[0] != 0 or bounds[-1] != num_nodes:
            raise ValueError(f"'ptr' must start at 0 and end at the "
                             f"number of nodes ({num_nodes}), got "
                             f"{bounds[0]} ... {bounds[-1]}")
        sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        if min(sizes) < 0:
            raise ValueError("'ptr' must be non-decreasing")
        if batch_size is not None and batch_size != len(sizes):
            raise ValueError(f"'batch_size' ({batch_size}) disagrees "
                             f"with 'ptr' ({len(sizes)} samples)")
    if batch is not None:
        if num_nodes == 0:
            batch_sizes = [0] * (len(sizes) if ptr is not None else
                                 batch_size or 1)
        else:
            unsorted, first, last, *batch_sizes = values
            if unsorted:
                raise ValueError(
                    "'batch' must be sorted (nodes of one sample stored "
                    "consecutively, as in torch_geometric.data.Batch)")
            if first < 0:
                raise ValueError("'batch' must be non-negative")
            if batch_size is not None and last >= batch_size:
                raise ValueError(f"'batch' holds sample index {last}, "
                                 f"but 'batch_size' is {batch_size}")
        if ptr is not None:
            mine = batch_sizes + [0] * (len(sizes) - len(batch_sizes))
            if mine != sizes:
                raise ValueError(
                    f"'batch' and 'ptr' describe different samples "
                    f"(sizes {batch_sizes} from 'batch', {sizes} from "
                    f"'ptr'): pass one of them")
        else:
            sizes = batch_sizes
    if all(s == sizes[0] for s in sizes):
        return cls(num_nodes, len(sizes), None, device)
    return cls(num_nodes, len(sizes), sizes, device,
               batch if batch is not None and ptr is None else None,
               counts)


def _describe(t) -> str:
    if isinstance(t, Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)}"
    return f"{type(t).__name__}"

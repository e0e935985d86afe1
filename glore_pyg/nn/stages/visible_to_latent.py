from typing import Optional, Tuple

from torch import Tensor
from torch_geometric.typing import Adj

from ...functional.normalize import (check_projection_norm, inverse_norm,
                                     normalize_projection, scale_rows)
from ...functional.checks import is_symbolic
from ...functional.segments import Segments
from .bipartite import BipartiteConv


class VisibleToLatent(BipartiteConv):
    r"""Visible-to-latent propagation over a bipartite graph: step 1 of
    LatentGNN (`"Learning Efficient Non-local Relations for Visual
    Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 3-4) and the
    projection of GloRe (`"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_, :math:`V = BX`).

    .. math::
        \mathbf{z}_k = \frac{1}{m_k} \sum_{j \in \mathcal{N}(k)}
        w_{jk}\, \mathbf{x}_j

    where :math:`w_{jk}` is the projection weight of visible node :math:`j`
    onto latent node :math:`k` and :math:`m_k` the normalisation chosen by
    ``normalize``.

    Two paths compute the same thing:

    * **fused** (``edge_index=None``): every visible node of a sample is linked
      to each of the sample's :math:`d` latent nodes (the complete bipartite
      graph of the papers); ``weight`` is the dense ``[N, d]`` matrix
      :math:`\Psi` and the result is one batched matmul
      :math:`\mathbf{Z}_s = \Psi_s^\top \mathbf{X}_s` per sample, never an
      ``E x C`` message tensor.
    * **explicit** (``edge_index`` given): any bipartite graph, e.g. each
      visible node linked to its top-k latent nodes, as ``edge_index [2, E]``
      (row 0 visible, row 1 latent) with ``weight [E]``, or as a sparse
      ``adj_t [num_latent, N]`` (``torch_sparse.SparseTensor`` or
      ``torch.sparse``) holding the weights.  PyG's message-passing hooks
      and explain machinery apply here.

    Args:
        normalize (str, optional): :math:`m_k`.  :obj:`None`: 1.
            :obj:`"mean"`: the number of visible nodes linked to :math:`k`
            (GloRe's ``normalize=True``: :math:`1/L`).
            :obj:`"l2_visible"`: :math:`\lVert w_{:,k} \rVert_2`, over the
            visible nodes linked to :math:`k` (LatentGNN, asymmetric).
            :obj:`"l2_latent"`: the weights of each visible node :math:`j`
            are divided by :math:`\lVert w_{j,:} \rVert_2` (LatentGNN,
            symmetric).  (default: :obj:`None`)
        eps (float, optional): lower bound of L2 norms, as in
            :func:`torch.nn.functional.normalize`. (default: :obj:`1e-12`)

    Shapes:
        - **input (fused):** visible features :math:`(N, C)`, weight
          :math:`(N, d)`, sample layout from ``batch`` :math:`(N)`, ``ptr``
          :math:`(S + 1)` or ``batch_size``
        - **output (fused):** latent features :math:`(S, d, C)`
        - **input (explicit):** visible features :math:`(N, C)`,
          ``edge_index`` :math:`(2, E)` and weight :math:`(E)`, or
          ``adj_t`` :math:`(D, N)`
        - **output (explicit):** latent features :math:`(D, C)`

    Raises:
        ValueError: an unknown ``normalize``; from :meth:`forward`, inputs
            that do not fit (see there).
    """
    visible_is_source = True

    def __init__(self, normalize: Optional[str] = None, eps: float = 1e-12):
        check_projection_norm(normalize, (None, 'mean', 'l2_visible',
                                          'l2_latent'))
        super().__init__(normalize=None if normalize == 'mean' else normalize,
                         aggr='mean' if normalize == 'mean' else 'sum',
                         eps=eps)
        self.mean = normalize == 'mean'

    def forward(
        self,
        x: Tensor,
        weight: Optional[Tensor],
        edge_index: Optional[Adj] = None,
        batch: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        batch_size: Optional[int] = None,
        num_latent: Optional[int] = None,
        segments: Optional[Segments] = None,
    ) -> Tensor:
        r"""
        Args:
            x (Tensor): visible node features :math:`(N, C)`.
            weight (Tensor): projection weights, :math:`(N, d)` (fused) or
                :math:`(E)` (explicit; :obj:`None` for a sparse ``adj_t``).
            edge_index (Adj, optional): the bipartite graph, visible to
                latent.  :obj:`None` selects the fused path.
            batch, ptr, batch_size: the sample layout of ``x`` (fused path),
                see :meth:`glore_pyg.functional.Segments.from_batch`.
            num_latent (int, optional): number of latent nodes (explicit
                path; inferred from ``edge_index`` when omitted).
            segments (Segments, optional): a precomputed sample layout.

        Returns:
            Latent features :math:`\mathbf{Z}`, :math:`(S, d, C)` (fused)
            or :math:`(D, C)` (explicit).

        Raises:
            ValueError: fused path: a malformed ``batch`` / ``ptr`` /
                ``batch_size``, ``x`` or ``weight`` whose rows do not match
                the layout, ``weight`` not :math:`(N, d)`.  Explicit path:
                ``x`` not a matrix, an ``edge_index`` that is neither
                :math:`(2, E)` nor a sparse adjacency, ``weight`` not
                :math:`(E)` (or given with a sparse adjacency), an
                adjacency of the wrong size, indices that are negative or
                out of range (beyond ``num_latent`` when given); with a
                ``normalize``, a sparse layout other than COO, CSR, CSC or
                ``SparseTensor``.
            TypeError: fused path: ``batch_size`` not an int.
        """
        if edge_index is not None:
            return self.propagate_edges(x, edge_index, weight, num_latent)

        if segments is None:
            segments = Segments.from_batch(x, batch, ptr, batch_size)
        elif is_symbolic(x):  # torch.fx: no values to check
            pass
        elif x.dim() != 2 or x.size(0) != segments.num_nodes:
            raise ValueError(f"'x' must be [{segments.num_nodes}, C] for the "
                             f"given 'segments', got {tuple(x.shape)}")
        if is_symbolic(x):
            pass
        elif weight is None or weight.dim() != 2 or weight.size(
                0) != segments.num_nodes:
            shape = None if weight is None else tuple(weight.shape)
            raise ValueError(f"'weight' must be [N, d] = "
                             f"[{segments.num_nodes}, d] on the fused path, "
                             f"got {shape}")
        # this process's sums, over every process's nodes when sharded
        pooled, sum_sq = segments.reduce(*self.accumulate(x, weight,
                                                          segments))
        return self.finish(pooled, sum_sq,
                           segments.total_counts() if self.mean else None)

    def applied_weight(self, weight: Tensor, segments: Segments) -> Tensor:
        r"""The fused path's weights ``[N, d]`` as this stage applies them,
        its :math:`1/m_k` included (except ``'mean'``'s :math:`1/L`), for
        :class:`~glore_pyg.nn.Projection`.  The forward pass itself scales
        the latent sums and never forms this :math:`N \times d` tensor."""
        return normalize_projection(weight, self.normalize, segments,
                                    eps=self.eps)

    def accumulate(self, x: Tensor, weight: Tensor,
                   segments: Segments) -> Tuple[Tensor, Optional[Tensor]]:
        r"""The fused path's per-sample sums, which add up over any split of
        a sample's visible nodes (the memory-lean chunked path and the
        sharded units rely on it): :math:`\sum_j w_{jk} \mathbf{x}_j`
        ``[S, d, C]`` and, for ``'l2_visible'``, :math:`\sum_j w_{jk}^2`
        ``[S, d]``, over the rows given (not reduced over processes)."""
        if self.normalize == 'l2_latent':  # per visible node: row-local
            weight = normalize_projection(weight, self.normalize,
                                          eps=self.eps)
        sum_sq = None
        if self.normalize == 'l2_visible':  # [S, d]
            sum_sq = segments.sum_of_squares(weight)
        return segments.pool(weight, x), sum_sq  # [S, d, C]

    def finish(self, pooled: Tensor, sum_sq: Optional[Tensor],
               counts: Optional[Tensor]) -> Tensor:
        """Applies :math:`1/m_k` to the sums of :meth:`accumulate`;
        ``counts`` (nodes per sample ``[S]``) is needed for ``'mean'``
        only."""
        if sum_sq is not None:  # 'l2_visible': divide by ||w_{:,k}||
            pooled = scale_rows(pooled,
                                inverse_norm(sum_sq, self.eps).unsqueeze(-1))
        if self.mean:
            pooled = pooled / counts.clamp(min=1).view(-1, 1, 1).to(
                pooled.dtype)
        return pooled

    def __repr__(self) -> str:
        norm = 'mean' if self.mean else self.normalize
        return f'{self.__class__.__name__}(normalize={norm!r})'

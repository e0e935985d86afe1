from typing import Optional

from torch import Tensor
from torch_geometric.typing import Adj

from ...functional.normalize import check_projection_norm, normalize_projection
from ...functional.checks import is_symbolic
from ...functional.segments import Segments
from .bipartite import BipartiteConv


class LatentToVisible(BipartiteConv):
    r"""Latent-to-visible propagation over a bipartite graph: step 3 of
    LatentGNN (`"Learning Efficient Non-local Relations for Visual
    Recognition" <https://arxiv.org/abs/1905.11634>`_, Eq. 9-10) and the
    reverse projection of GloRe (`"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_, :math:`Y = DZ` with
    :math:`D = B^\top`).

    .. math::
        \tilde{\mathbf{x}}_j = \sum_{k \in \mathcal{N}(j)}
        \tilde{w}_{jk}\, \tilde{\mathbf{z}}_k

    where :math:`\tilde{w}_{jk}` is the weight :math:`w_{jk}` after the
    normalisation chosen by ``normalize``.

    Two paths compute the same thing:

    * **fused** (``edge_index=None``): the complete bipartite graph of each
      sample; ``z`` holds the latent features of every sample
      ``[S, d, C]``, ``weight`` is dense ``[N, d]`` and the result is one
      batched matmul :math:`\Psi_s \tilde{\mathbf{Z}}_s` per sample.
    * **explicit** (``edge_index`` given): any bipartite graph as
      ``edge_index [2, E]`` (row 0 latent, row 1 visible; the reverse of a
      visible-to-latent ``edge_index`` is ``edge_index.flip(0)``) with
      ``weight [E]``, or a sparse ``adj_t [N, D]`` holding the weights.

    Args:
        normalize (str, optional): :obj:`None`: use :math:`w` as is (GloRe).
            :obj:`"l2_latent"`: divide the weights of each visible node
            :math:`j` by :math:`\lVert w_{j,:} \rVert_2` over its latent
            nodes (LatentGNN).  :obj:`"l2_visible"`: divide the weights of
            each latent node by their norm over its visible nodes.
            (default: :obj:`None`)
        eps (float, optional): lower bound of L2 norms. (default: :obj:`1e-12`)

    Shapes:
        - **input (fused):** latent features :math:`(S, d, C)`, weight
          :math:`(N, d)`, sample layout from ``batch`` :math:`(N)`, ``ptr``
          :math:`(S + 1)` or ``batch_size``
        - **output (fused):** visible features :math:`(N, C)`
        - **input (explicit):** latent features :math:`(D, C)`,
          ``edge_index`` :math:`(2, E)` and weight :math:`(E)`, or
          ``adj_t`` :math:`(N, D)`
        - **output (explicit):** visible features :math:`(N, C)`

    Raises:
        ValueError: an unknown ``normalize``; from :meth:`forward`, inputs
            that do not fit (see there).
    """
    visible_is_source = False

    def __init__(self, normalize: Optional[str] = None, eps: float = 1e-12):
        check_projection_norm(normalize)
        super().__init__(normalize=normalize, aggr='sum', eps=eps)

    def forward(
        self,
        z: Tensor,
        weight: Optional[Tensor],
        edge_index: Optional[Adj] = None,
        batch: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        batch_size: Optional[int] = None,
        num_visible: Optional[int] = None,
        segments: Optional[Segments] = None,
    ) -> Tensor:
        r"""
        Args:
            z (Tensor): latent features, :math:`(S, d, C)` (fused) or
                :math:`(D, C)` (explicit).
            weight (Tensor): projection weights, :math:`(N, d)` (fused) or
                :math:`(E)` (explicit; :obj:`None` for a sparse ``adj_t``).
            edge_index (Adj, optional): the bipartite graph, latent to
                visible.  :obj:`None` selects the fused path.
            batch, ptr, batch_size: the sample layout of the visible nodes
                (fused path).  ``batch_size`` defaults to ``z.size(0)``.
            num_visible (int, optional): number of visible nodes (explicit
                path; inferred from ``edge_index`` when omitted).
            segments (Segments, optional): a precomputed sample layout.

        Returns:
            Visible features :math:`\tilde{\mathbf{X}}`, :math:`(N, C)`.

        Raises:
            ValueError: fused path: ``z`` not :math:`(S, d, C)`, ``weight``
                not :math:`(N, d)`, a malformed ``batch`` / ``ptr`` /
                ``batch_size``, ``weight`` rows that do not match
                ``segments``, or a number of samples that differs from
                ``z.size(0)``.  Explicit path: ``z`` not a matrix, an
                ``edge_index`` that is neither :math:`(2, E)` nor a sparse
                adjacency, ``weight`` not :math:`(E)` (or given with a
                sparse adjacency), an adjacency of the wrong size, indices
                that are negative or out of range (beyond ``num_visible``
                when given); with a ``normalize``, a sparse layout other
                than COO, CSR, CSC or ``SparseTensor``.
            TypeError: fused path: ``batch_size`` not an int.
        """
        if edge_index is not None:
            return self.propagate_edges(z, edge_index, weight, num_visible)

        symbolic = is_symbolic(z)  # torch.fx: no values to check
        if not symbolic and z.dim() != 3:
            raise ValueError(f"'z' must be [S, d, C] on the fused path, got "
                             f"{tuple(z.shape)}")
        if symbolic:
            pass
        elif weight is None or weight.dim() != 2 or weight.size(1) != z.size(
                1):
            shape = None if weight is None else tuple(weight.shape)
            raise ValueError(f"'weight' must be [N, d] with d = {z.size(1)} "
                             f"on the fused path, got {shape}")
        if segments is None:
            if ptr is None and batch_size is None:
                batch_size = z.size(0)
            segments = Segments.from_batch(weight, batch, ptr, batch_size)
        elif symbolic:
            pass
        elif weight.size(0) != segments.num_nodes:
            raise ValueError(f"'weight' must be [{segments.num_nodes}, "
                             f"{z.size(1)}] for the given 'segments', got "
                             f"{tuple(weight.shape)}")
        if not symbolic and segments.num_samples != z.size(0):
            raise ValueError(f"'z' holds {z.size(0)} samples but the visible "
                             f"nodes form {segments.num_samples}")
        return segments.spread(self.applied_weight(weight, segments),
                               z)  # [N, C]

    def applied_weight(self, weight: Tensor, segments: Segments) -> Tensor:
        """The fused path's weights ``[N, d]`` as this stage applies them
        (normalised), for :class:`~glore_pyg.nn.Projection`."""
        return normalize_projection(weight, self.normalize, segments,
                                    eps=self.eps)

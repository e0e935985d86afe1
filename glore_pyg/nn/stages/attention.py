from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from ...functional.checks import is_symbolic
from .checks import check_edge_index


class AttentionConv(MessagePassing):
    r"""Softmax dot-product message passing, the relation shared by the
    non-local block (`"Non-local Neural Networks"
    <https://arxiv.org/abs/1711.07971>`_, Eq. 1 with the embedded Gaussian
    of Eq. 3) and LatentGNN's latent-to-latent step (`"Learning Efficient
    Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_, Eq. 6-8):

    .. math::
        \alpha_{ij} = \frac{\exp(\mathbf{q}_i^\top \mathbf{k}_j)}
        {\sum_{l \in \mathcal{N}(i)} \exp(\mathbf{q}_i^\top \mathbf{k}_l)},
        \qquad
        \mathbf{h}_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij}\,\mathbf{v}_j

    * **fused** (``edge_index=None``): the fully connected graph of each
      sample, inputs ``[S, n, *]``; one ``bmm``, a softmax and a ``bmm``.
    * **explicit** (``edge_index [2, E]``, row 0 source :math:`j`, row 1
      target :math:`i`): any graph over ``[n, *]`` node matrices, with
      :func:`torch_geometric.utils.softmax` over the incoming edges.

    It takes no constructor arguments and has no parameters: the queries,
    keys and values are computed by the caller (the non-local block's
    :math:`\theta, \phi, g`).  The arguments of a call are those of
    :meth:`forward`.

    Shapes:
        - **input:** queries :math:`(S, n, F)` or :math:`(n, F)`, keys the
          same, values :math:`(S, n, C)` or :math:`(n, C)`
        - **output:** :math:`(S, n, C)` or :math:`(n, C)`; with
          ``return_attention=True`` also the attention, :math:`(S, n, n)`
          (fused) or :math:`(E)` (explicit)

    Raises:
        ValueError: from :meth:`forward`, inputs of the wrong number of
            dimensions for the chosen path, a malformed ``edge_index`` or
            one that refers to a node that is not there.
    """
    def __init__(self):
        super().__init__(aggr='sum', node_dim=0)

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        edge_index: Optional[Tensor] = None,
        return_attention: bool = False,
        mask: Optional[Tensor] = None,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""
        Args:
            q (Tensor): queries :math:`\mathbf{q}_i`, :math:`(S, n, F)`
                (fused) or :math:`(n_{tgt}, F)` (explicit, one row per
                target node).
            k (Tensor): keys :math:`\mathbf{k}_j`, :math:`(S, n, F)`
                (fused) or :math:`(n_{src}, F)` (explicit, one row per
                source node).
            v (Tensor): values :math:`\mathbf{v}_j`, :math:`(S, n, C)`
                (fused) or :math:`(n_{src}, C)` (explicit).
            edge_index (Tensor, optional): :math:`(2, E)`, row 0 source
                :math:`j`, row 1 target :math:`i`; :obj:`None` selects the
                fused path (the complete graph of each sample, self-loops
                included). (default: :obj:`None`)
            return_attention (bool, optional): also return
                :math:`\alpha`. (default: :obj:`False`)
            mask (Tensor, optional): fused path: :math:`(S, n)` booleans,
                :obj:`False` at padding rows (samples of different sizes
                zero-padded to one length, as
                :meth:`glore_pyg.functional.Segments.pad` gives them): they
                are no keys (weight 0) and their own rows of the output and
                of :math:`\alpha` are 0. (default: :obj:`None`: no padding)

        Returns:
            :math:`\mathbf{h}`, :math:`(S, n, C)` (fused) or
            :math:`(n_{tgt}, C)` (explicit); with ``return_attention=True``
            the pair ``(h, alpha)``, ``alpha`` :math:`(S, n, n)` (entry
            ``[s, i, j]``) or :math:`(E)` (one weight per edge).

        Raises:
            ValueError: fused inputs that are not 3-D; explicit ``q`` or
                ``v`` that are not matrices, an ``edge_index`` that is not
                :math:`(2, E)`, negative, or refers to a row beyond ``v``
                (sources) or ``q`` (targets); explicit ``k`` with another
                number of rows than ``v`` (from PyG).
            RuntimeError: (from torch) other sizes of ``q``, ``k`` and
                ``v`` that do not fit together.
        """
        if edge_index is None:
            if not is_symbolic(q) and (q.dim() != 3 or k.dim() != 3
                                       or v.dim() != 3):
                raise ValueError(
                    f"The fused path takes [S, n, F] inputs, got "
                    f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
            logits = torch.bmm(q, k.transpose(1, 2))
            if mask is not None:  # finite: no NaN from an all-padding row
                logits = logits.masked_fill(
                    ~mask.unsqueeze(1), torch.finfo(logits.dtype).min)
            alpha = torch.softmax(logits, dim=-1)
            if mask is not None:
                alpha = alpha * mask.unsqueeze(2).to(alpha.dtype)
            out = torch.bmm(alpha, v)
        else:
            if q.dim() != 2 or v.dim() != 2:
                raise ValueError(
                    f"With 'edge_index', node features must be matrices "
                    f"[n, F], got {tuple(q.shape)} and {tuple(v.shape)}")
            if edge_index.dim() != 2 or edge_index.size(0) != 2:
                raise ValueError(f"'edge_index' must be [2, E], got "
                                 f"{tuple(edge_index.shape)}")
            check_edge_index(edge_index, v.size(0), q.size(0), 'latent',
                             'latent')
            out = self.propagate(edge_index, q=q, k=k, v=v,
                                 size=(v.size(0), q.size(0)))
            alpha = self._alpha
            self._alpha = None
        if return_attention:
            return out, alpha
        return out

    def message(self, q_i: Tensor, k_j: Tensor, v_j: Tensor, index: Tensor,
                ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        alpha = softmax((q_i * k_j).sum(dim=-1), index, ptr, size_i)
        self._alpha = alpha
        return alpha.unsqueeze(-1) * v_j

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'

import math
from typing import Optional

import torch
from torch import Tensor
from torch.nn import Linear, Parameter
from torch_geometric.nn import MessagePassing

from ...functional.checks import is_symbolic
from .checks import HINT, check_edge_index


class GloReGraphConv(MessagePassing):
    r"""Graph convolution over the fully connected latent graph of GloRe
    (`"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_, Eq. 3), with the ReLU and node bias
    of the published code:

    .. math::
        \mathbf{Z} = \mathrm{ReLU}\left((\mathbf{I} - \mathbf{A}_g)\mathbf{V}
        + \mathbf{b}\mathbf{1}^\top\right) \mathbf{W}_g

    :math:`\mathbf{A}_g \in \mathbb{R}^{d \times d}` (learned node mixing,
    shared by all samples; the published ``gcn.conv1`` stores
    :math:`-\mathbf{A}_g`), :math:`\mathbf{b} \in \mathbb{R}^d` and the state
    update :math:`\mathbf{W}_g \in \mathbb{R}^{C \times C}`.

    * **fused** (``edge_index=None``): ``v [S, d, C]``, the complete latent
      graph (self-loops included) of each sample.
    * **explicit**: ``v [S * d, C]`` with latent node :math:`k` of sample
      :math:`s` at row :math:`s d + k`, and ``edge_index [2, E]`` (row 0
      source :math:`j`, row 1 target :math:`k`, same sample); the message
      :math:`j \to k` is weighted by :math:`(\mathbf{I} - \mathbf{A}_g)_{kj}`
      (include self-loops for the identity term).

    Args:
        num_nodes (int): number of latent nodes :math:`d` per sample.
        channels (int): latent state size :math:`C`.
        bias (bool, optional): learn the node bias :math:`\mathbf{b}`.
            (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(S, d, C)` (fused) or :math:`(S d, C)` with
          ``edge_index`` :math:`(2, E)` (explicit)
        - **output:** the same shape as the input

    Raises:
        ValueError: from :meth:`forward`: a fused ``v`` that is not
            :math:`(S, d, C)`; an explicit ``v`` that is not a matrix of
            :math:`S d` rows; an ``edge_index`` that is not :math:`(2, E)`,
            negative or out of range.
        RuntimeError: (from torch) ``v`` with another number of channels
            than ``channels``.
    """
    def __init__(self, num_nodes: int, channels: int, bias: bool = True):
        super().__init__(aggr='sum')
        self.num_nodes = num_nodes
        self.channels = channels
        self.adjacency = Parameter(torch.empty(num_nodes, num_nodes))
        self.node_bias = Parameter(torch.empty(num_nodes)) if bias else None
        self.lin = Linear(channels, channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        r"""Initialises :math:`\mathbf{A}_g` as PyTorch initialises the
        published ``Conv1d`` that holds it (Kaiming uniform,
        :math:`a = \sqrt{5}`), :math:`\mathbf{b}` uniform in
        :math:`\pm 1 / \sqrt{d}` and :math:`\mathbf{W}_g` as a ``Linear``.
        """
        super().reset_parameters()
        # The published code learns A_g with a Conv1d over the node axis:
        # keep its default initialisation.
        torch.nn.init.kaiming_uniform_(self.adjacency, a=math.sqrt(5))
        if self.node_bias is not None:
            bound = 1 / math.sqrt(self.num_nodes)
            torch.nn.init.uniform_(self.node_bias, -bound, bound)
        self.lin.reset_parameters()

    def node_mixing(self) -> Tensor:
        r""":math:`\mathbf{I} - \mathbf{A}_g`, the weighted latent graph
        ``[d, d]`` (entry ``[k, j]`` weighs the message ``j -> k``)."""
        eye = torch.eye(self.num_nodes, dtype=self.adjacency.dtype,
                        device=self.adjacency.device)
        return eye - self.adjacency

    def forward(self, v: Tensor,
                edge_index: Optional[Tensor] = None) -> Tensor:
        r"""
        Args:
            v (Tensor): latent features :math:`\mathbf{V}`,
                :math:`(S, d, C)` (fused) or :math:`(S d, C)` (explicit,
                latent node :math:`k` of sample :math:`s` at row
                :math:`s d + k`).
            edge_index (Tensor, optional): :math:`(2, E)`, row 0 source
                :math:`j`, row 1 target :math:`k`, both in the same sample;
                :obj:`None` selects the fused path.
                (default: :obj:`None`)

        Returns:
            :math:`\mathbf{Z}`, the shape of ``v``.

        Raises:
            ValueError: a fused ``v`` that is not :math:`(S, d, C)`; an
                explicit ``v`` that is not a matrix of :math:`S d` rows; an
                ``edge_index`` that is not :math:`(2, E)`, negative or out
                of range.
        """
        d = self.num_nodes
        if edge_index is None:
            if not is_symbolic(v) and (v.dim() != 3 or v.size(1) != d):
                raise ValueError(f"The fused path takes 'v' of shape "
                                 f"[S, {d}, C], got {tuple(v.shape)}")
            h = torch.matmul(self.node_mixing(), v)  # [d, d] @ [S, d, C]
            bias = None if self.node_bias is None else self.node_bias.view(
                1, d, 1)
        else:
            if v.dim() != 2:
                raise ValueError(f"With 'edge_index', 'v' must be [S * {d}, "
                                 f"C], got {tuple(v.shape)}")
            if edge_index.dim() != 2 or edge_index.size(0) != 2:
                raise ValueError(f"'edge_index' must be [2, E], got "
                                 f"{tuple(edge_index.shape)}")
            check_edge_index(edge_index, v.size(0), v.size(0), 'latent',
                             'latent')
            if v.size(0) % d != 0:
                raise ValueError(f"With 'edge_index', 'v' must be [S * {d}, "
                                 f"C], got {tuple(v.shape)}. " + HINT)
            src, dst = edge_index[0], edge_index[1]
            weight = self.node_mixing()[dst % d, src % d]
            h = self.propagate(edge_index, x=v, edge_weight=weight,
                               size=(v.size(0), v.size(0)))
            bias = None if self.node_bias is None else self.node_bias.repeat(
                v.size(0) // d).view(-1, 1)
        if bias is not None:
            h = h + bias
        return self.lin(torch.relu(h))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_nodes={self.num_nodes}, '
                f'channels={self.channels})')

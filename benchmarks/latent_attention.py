"""A latent cross-attention block on ``scaled_dot_product_attention``: the
pattern a user might pick instead of LatentGNN (the induced set attention of
Set Transformer's ISAB, Perceiver's latent array).  The benchmarks compare it
with :class:`~glore_pyg.nn.LatentGNNConv` of the same size: ``d`` latent
nodes, ``C // channel_stride`` inner channels, one residual ``Linear +
BatchNorm`` back to ``C``.

Per sample: ``H = attn(L, K_x, V_x)`` (the ``d`` learned latents attend to
the sample's points), ``Y = attn(Q_x, K_h, V_h)`` (each point attends to the
latents), ``X' = X + BN(Y W_o)``.  Point clouds of different sizes are padded
with :func:`torch_geometric.utils.to_dense_batch` and the padding masked out
of the first attention, as Perceiver implementations do.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch


class LatentCrossAttention(nn.Module):
    def __init__(self, in_channels: int, num_latents: int,
                 channel_stride: int = 4):
        super().__init__()
        c = in_channels // channel_stride
        self.latents = nn.Parameter(torch.randn(num_latents, c) * c**-0.5)
        self.k_x = nn.Linear(in_channels, c)
        self.v_x = nn.Linear(in_channels, c)
        self.q_x = nn.Linear(in_channels, c)
        self.k_h = nn.Linear(c, c)
        self.v_h = nn.Linear(c, c)
        self.out = nn.Linear(c, in_channels)
        self.norm = nn.BatchNorm1d(in_channels)

    def forward(self, x: Tensor, batch: Tensor) -> Tensor:
        counts = torch.bincount(batch)
        n_max = int(counts.max())
        k, mask = to_dense_batch(self.k_x(x), batch, max_num_nodes=n_max)
        v, _ = to_dense_batch(self.v_x(x), batch, max_num_nodes=n_max)
        q, _ = to_dense_batch(self.q_x(x), batch, max_num_nodes=n_max)
        S = k.size(0)
        latents = self.latents.expand(S, *self.latents.shape)  # [S, d, c]
        # latents attend to the real points of their sample: [S, d, c]
        h = F.scaled_dot_product_attention(latents, k, v,
                                           attn_mask=mask.unsqueeze(1))
        # every point attends to the latents: [S, n_max, c]
        y = F.scaled_dot_product_attention(q, self.k_h(h), self.v_h(h))
        return x + self.norm(self.out(y[mask]))

"""The published dense formulations (1x1 convolutions + ``bmm``), written
from the equations of the papers' code, as baselines for the benchmarks.

Each module is built from one of our units and copies its weights (our
``Linear`` -> ``Conv2d`` 1x1, our ``BatchNorm1d`` -> ``BatchNorm2d``), so the
two compute the same function and their outputs can be compared.

* ``forward(x)``: a feature map ``[n, C, *spatial]``, as published.
* ``forward_padded(x, batch)``: point clouds of different sizes, ``x [N, C]``
  plus a sorted ``batch``: the 1x1 layers run node-wise on the ``N`` real
  nodes (so BatchNorm sees real nodes only), the latent math on the
  ``to_dense_batch`` padding ``[S, *, N_max]`` (padded rows zero), and the
  result is unpadded.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from glore_pyg.nn import node_unit


def conv1x1(lin: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(lin.in_features, lin.out_features, 1,
                     bias=lin.bias is not None, dtype=lin.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(lin.weight.view_as(conv.weight))
        if lin.bias is not None:
            conv.bias.copy_(lin.bias)
    return conv


def conv1d(weight: Tensor, bias=None) -> nn.Conv1d:
    conv = nn.Conv1d(weight.size(1), weight.size(0), 1, bias=bias is not None,
                     dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight.unsqueeze(-1))
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def bn2d(bn: nn.BatchNorm1d) -> nn.BatchNorm2d:
    out = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum,
                         dtype=bn.weight.dtype)
    out.load_state_dict(bn.state_dict())
    return out


def conv_bn(seq: nn.Sequential) -> nn.Sequential:
    """Our ``Linear + BatchNorm1d (+ ReLU)`` as the published
    ``Conv2d + BatchNorm2d (+ ReLU(inplace=True))``."""
    layers = [conv1x1(seq[0]), bn2d(seq[1])]
    if len(seq) > 2:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def pointwise(m: nn.Module, t: Tensor) -> Tensor:
    """A published 1x1 layer on a feature map ``[n, C, *spatial]``, or the
    same layer node-wise on a node matrix ``[N, C]`` (convolution as
    ``linear``, BatchNorm statistics over the nodes)."""
    if t.dim() != 2:
        return m(t)
    if isinstance(m, nn.Sequential):
        for layer in m:
            t = pointwise(layer, t)
        return t
    if isinstance(m, nn.Conv2d):
        return F.linear(t, m.weight.flatten(1), m.bias)
    if isinstance(m, nn.BatchNorm2d):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight,
                            m.bias, m.training, m.momentum, m.eps)
    return m(t)


class Padding:
    """Node matrices ``[N, F]`` as zero-padded ``[S, F, N_max]`` and
    back."""

    def __init__(self, batch: Tensor):
        self.batch = batch
        self.counts = torch.bincount(batch)
        self.max = int(self.counts.max())
        self.mask = None

    def pad(self, t: Tensor) -> Tensor:
        out, self.mask = to_dense_batch(t, self.batch,
                                        max_num_nodes=self.max)
        return out.transpose(1, 2)

    def unpad(self, t: Tensor) -> Tensor:
        return t.transpose(1, 2)[self.mask]


class DenseGloRe(nn.Module):
    """The published ``GloRe_Unit`` (with its ``GCN``), from a
    :class:`~glore_pyg.nn.GloReConv` or ``GloRe2d``."""

    def __init__(self, unit):
        super().__init__()
        unit = node_unit(unit)
        self.normalize = unit.normalize
        self.conv_state = conv1x1(unit.state)  # [n, 2m, *]
        self.conv_proj = conv1x1(unit.proj)  # [n, m, *]
        g = unit.latent_graph  # GCN: conv1 over nodes (-A_g), conv2 states
        self.conv1 = conv1d(-g.adjacency.detach(), g.node_bias)
        self.conv2 = conv1d(g.lin.weight.detach())
        self.conv_extend = conv1x1(unit.extend)
        self.blocker = bn2d(unit.norm)

    def reason(self, s: Tensor, p: Tensor, count) -> Tensor:
        """``s [n, 2m, L]``, ``p [n, m, L]`` -> ``[n, 2m, L]``."""
        v = torch.bmm(s, p.transpose(1, 2))  # [n, 2m, m]
        if self.normalize:
            v = v * (1. / count)
        h = self.conv1(v.permute(0, 2, 1).contiguous()).permute(0, 2, 1)
        h = F.relu(h + v, inplace=True)
        return torch.bmm(self.conv2(h), p)

    def output(self, x: Tensor, y: Tensor) -> Tensor:
        return x + pointwise(self.blocker, pointwise(self.conv_extend, y))

    def forward(self, x: Tensor) -> Tensor:
        n, L = x.size(0), x[0, 0].numel()
        s = self.conv_state(x).view(n, -1, L)
        p = self.conv_proj(x).view(n, -1, L)
        return self.output(x, self.reason(s, p, L).view(n, -1, *x.shape[2:]))

    def forward_padded(self, x: Tensor, batch: Tensor) -> Tensor:
        pad = Padding(batch)
        s = pad.pad(pointwise(self.conv_state, x))
        p = pad.pad(pointwise(self.conv_proj, x))
        y = self.reason(s, p, pad.counts.view(-1, 1, 1).to(x.dtype))
        return self.output(x, pad.unpad(y))


class DenseLatentGNN(nn.Module):
    """The published ``LatentGNNV1`` (asymmetric, without graph
    convolution), from a :class:`~glore_pyg.nn.LatentGNNConv` or
    ``LatentGNN2d``."""

    def __init__(self, unit):
        super().__init__()
        unit = node_unit(unit)
        if unit.mode != 'asymmetric' or unit.graph_conv:
            raise NotImplementedError('asymmetric, graph_conv=False only')
        self.down_channel_v2l = conv_bn(unit.down_v2l)
        self.down_channel_l2v = conv_bn(unit.down_l2v)
        self.psi_v2l = nn.ModuleList([conv_bn(s) for s in unit.psi_v2l])
        self.psi_l2v = nn.ModuleList([conv_bn(s) for s in unit.psi_l2v])
        self.up_channel = conv_bn(unit.up)
        self.gamma = nn.Parameter(unit.gamma.detach().clone())

    def project(self, x: Tensor):
        """The per-position part: features and adjacencies, ``[n, *, ...]``
        (or ``[N, *]``)."""
        f1 = F.normalize(pointwise(self.down_channel_v2l, x), dim=1)
        f2 = F.normalize(pointwise(self.down_channel_l2v, x), dim=1)
        return (f1, [pointwise(psi, f1) for psi in self.psi_v2l],
                [pointwise(psi, f2) for psi in self.psi_l2v])

    @staticmethod
    def kernel(f1: Tensor, a_v2l: Tensor, a_l2v: Tensor) -> Tensor:
        """``f1 [B, c, L]``, ``a [B, d, L]`` -> visible features
        ``[B, c, L]``."""
        a_v2l = F.normalize(a_v2l, dim=2)
        a_l2v = F.normalize(a_l2v, dim=1)
        z = torch.bmm(a_v2l, f1.permute(0, 2, 1))  # [B, d, c]
        zn = F.normalize(z, dim=-1)
        affinity = F.softmax(torch.bmm(zn, zn.permute(0, 2, 1)), dim=-1)
        z = torch.bmm(affinity, z)
        return torch.bmm(z.permute(0, 2, 1), a_l2v)

    def output(self, x: Tensor, o: Tensor) -> Tensor:
        return x + self.gamma * pointwise(self.up_channel, o)

    def forward(self, x: Tensor) -> Tensor:
        B, L = x.size(0), x[0, 0].numel()
        f1, av, al = self.project(x)
        o = [self.kernel(f1.view(B, -1, L), a.view(B, -1, L), b.view(B, -1, L))
             for a, b in zip(av, al)]
        return self.output(x, torch.cat(o, 1).view(B, -1, *x.shape[2:]))

    def forward_padded(self, x: Tensor, batch: Tensor) -> Tensor:
        pad = Padding(batch)
        f1, av, al = self.project(x)
        f1 = pad.pad(f1)
        o = [self.kernel(f1, pad.pad(a), pad.pad(b)) for a, b in zip(av, al)]
        return self.output(x, pad.unpad(torch.cat(o, 1)))


class Padded(nn.Module):
    """``forward(x, batch)`` of a dense module's padded variant."""

    def __init__(self, dense: nn.Module):
        super().__init__()
        self.dense = dense

    def forward(self, x: Tensor, batch: Tensor) -> Tensor:
        return self.dense.forward_padded(x, batch)

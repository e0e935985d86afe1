"""Independent re-implementations of the published modules, written in the
tests from the issue's description of their layouts and forward passes
(module and parameter names as published, so that their ``state_dict`` keys
are the published ones and ``load_state_dict(strict=True)`` checks ours).

* ``GloReUnit(num_in, num_mid, dims, normalize)``: ``GloRe_Unit_{1,2,3}D``
  of the GloRe repository (with its ``GCN``).
* ``LatentGNNV1(in_channels, latent_dims, channel_stride, mode,
  graph_conv, without_residual)``: ``LatentGNNV1`` of the LatentGNN
  repository (with its ``LatentGNN_Kernel``).
"""
import torch
import torch.nn.functional as F
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class GCN(nn.Module):
    def __init__(self, num_state, num_node):
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)
        self.conv2 = nn.Conv1d(num_state, num_state, kernel_size=1,
                               bias=False)

    def forward(self, v):  # v [n, num_state, num_node]
        # conv1 along the node axis: v as [n, num_node, num_state]
        h = self.conv1(v.permute(0, 2, 1)).permute(0, 2, 1)
        h = h + v
        return self.conv2(F.relu(h))


class GloReUnit(nn.Module):
    def __init__(self, num_in, num_mid, dims=2, normalize=False):
        super().__init__()
        self.normalize = normalize
        self.num_s, self.num_n = 2 * num_mid, num_mid
        self.conv_state = CONV[dims](num_in, self.num_s, kernel_size=1)
        self.conv_proj = CONV[dims](num_in, self.num_n, kernel_size=1)
        self.gcn = GCN(self.num_s, self.num_n)
        self.conv_extend = CONV[dims](self.num_s, num_in, kernel_size=1,
                                      bias=False)
        self.blocker = BN[dims](num_in, eps=1e-4)

    def forward(self, x):
        n = x.size(0)
        s = self.conv_state(x).view(n, self.num_s, -1)  # [n, 2m, L]
        p = self.conv_proj(x).view(n, self.num_n, -1)  # [n, m, L]
        v = torch.matmul(s, p.permute(0, 2, 1))  # [n, 2m, m]
        if self.normalize:
            v = v * (1. / s.size(2))
        r = self.gcn(v)
        y = torch.matmul(r, p).view(n, self.num_s, *x.shape[2:])
        return x + self.blocker(self.conv_extend(y))


def conv_bn(cin, cout, relu):
    layers = [nn.Conv2d(cin, cout, kernel_size=1, bias=False),
              nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LatentGNNKernel(nn.Module):
    def __init__(self, channels, latent_dim, mode, graph_conv):
        super().__init__()
        self.mode = mode
        if mode == 'asymmetric':
            self.psi_v2l = conv_bn(channels, latent_dim, True)
            self.psi_l2v = conv_bn(channels, latent_dim, True)
        else:
            self.psi = conv_bn(channels, latent_dim, True)
        if graph_conv:
            self.GraphConvWeight = conv_bn(channels, channels, True)
        self.graph_conv = graph_conv

    def forward(self, f1, f2):
        B, c, H, W = f1.shape
        if self.mode == 'asymmetric':
            a_v2l = self.psi_v2l(f1).view(B, -1, H * W)
            a_l2v = self.psi_l2v(f2).view(B, -1, H * W)
            a_v2l = F.normalize(a_v2l, dim=-1)  # over positions
            a_l2v = F.normalize(a_l2v, dim=1)  # over latent nodes
        else:
            a = F.normalize(self.psi(f1).view(B, -1, H * W), dim=1)
            a_v2l = a_l2v = a
        z = torch.bmm(a_v2l, f1.view(B, c, -1).permute(0, 2, 1))  # [B, d, c]
        zn = F.normalize(z, dim=-1)
        affinity = F.softmax(torch.bmm(zn, zn.permute(0, 2, 1)), dim=-1)
        z = torch.bmm(affinity, z)
        out = torch.bmm(z.permute(0, 2, 1), a_l2v).view(B, c, H, W)
        if self.graph_conv:
            out = self.GraphConvWeight(out)
        return out


class LatentGNNV1(nn.Module):
    def __init__(self, in_channels, latent_dims, channel_stride=4,
                 mode='asymmetric', graph_conv=False,
                 without_residual=False):
        super().__init__()
        self.mode, self.without_residual = mode, without_residual
        c = in_channels // channel_stride
        if mode == 'asymmetric':
            self.down_channel_v2l = conv_bn(in_channels, c, False)
            self.down_channel_l2v = conv_bn(in_channels, c, False)
        else:
            self.down_channel = conv_bn(in_channels, c, False)
        for i, d in enumerate(latent_dims):
            self.add_module(f'LatentGNN_Kernel_{i}',
                            LatentGNNKernel(c, d, mode, graph_conv))
        self.num_kernels = len(latent_dims)
        self.up_channel = conv_bn(c * len(latent_dims), in_channels, False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if self.mode == 'asymmetric':
            f1 = F.normalize(self.down_channel_v2l(x), dim=1)
            f2 = F.normalize(self.down_channel_l2v(x), dim=1)
        else:
            f1 = f2 = F.normalize(self.down_channel(x), dim=1)
        outs = [getattr(self, f'LatentGNN_Kernel_{i}')(f1, f2)
                for i in range(self.num_kernels)]
        out = self.up_channel(torch.cat(outs, dim=1))
        if self.without_residual:
            return out
        return x + self.gamma * out


def randomize(module, seed=0):
    """Random weights, BatchNorm affine and running statistics, non-zero
    gamma: every parameter and buffer matters for the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith('num_batches_tracked'):
                t.fill_(int(torch.randint(1, 100, (1, ), generator=g)))
            elif name.endswith('running_var') or name.endswith('.weight') \
                    and t.dim() == 1:
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=g))
    return module

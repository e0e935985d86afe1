"""Fused complete-bipartite path vs naive per-edge message passing.

Times forward + backward of LatentGNN's three stages (visible -> latent,
latent affinity, latent -> visible) on the same inputs, once through the
fused per-sample matmuls and once through PyG's per-edge ``MessagePassing``
over an explicit complete bipartite ``edge_index`` (``E = N * d`` messages of
``C`` channels each).  Both are run alternately in one process and the ratio
of medians is printed.

    python benchmarks/fused_vs_naive.py --clouds 8 --points 16000 \
        --channels 128 --latent 64
"""
import argparse
import platform
import statistics
import time

import torch

from glore_pyg.nn import LatentAffinityConv, LatentToVisible, VisibleToLatent
from glore_pyg.functional import complete_bipartite_graph, complete_latent_graph


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--clouds', type=int, default=4)
    p.add_argument('--points', type=int, default=2000,
                   help='points of the largest cloud; cloud i has '
                   'points * (i + 1) / clouds points')
    p.add_argument('--channels', type=int, default=64)
    p.add_argument('--latent', type=int, default=32)
    p.add_argument('--repeat', type=int, default=5)
    args = p.parse_args(argv)

    torch.manual_seed(0)
    sizes = [max(1, args.points * (i + 1) // args.clouds)
             for i in range(args.clouds)]
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    N, C, d, S = batch.numel(), args.channels, args.latent, len(sizes)
    x = torch.randn(N, C, requires_grad=True)
    w_v2l = torch.rand(N, d, requires_grad=True)
    w_l2v = torch.rand(N, d, requires_grad=True)
    v2l = VisibleToLatent('l2_visible')
    aff = LatentAffinityConv()
    l2v = LatentToVisible('l2_latent')
    edges = complete_bipartite_graph(x, d, batch)
    latent_edges = complete_latent_graph(S, d)

    def fused():
        z = aff(v2l(x, w_v2l, batch=batch))
        return l2v(z, w_l2v, batch=batch)

    def naive():
        z = v2l(x, w_v2l.reshape(-1), edges, num_latent=S * d)
        z = aff(z, latent_edges)
        return l2v(z, w_l2v.reshape(-1), edges.flip(0), num_visible=N)

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        out.square().sum().backward()
        return time.perf_counter() - t

    ref, alt = fused(), naive()
    err = (ref - alt).abs().max().item()
    for fn in (fused, naive):  # warm-up
        timed(fn)
    tf, tn = [], []
    for _ in range(args.repeat):
        tf.append(timed(fused))
        tn.append(timed(naive))
    mf, mn = statistics.median(tf), statistics.median(tn)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{platform.processor() or platform.machine()}')
    print(f'{S} clouds, N={N} points, C={C}, d={d}, E=N*d={N * d} edges; '
          f'max |fused - naive| = {err:.2e}')
    print(f'fused  (per-sample matmul) fwd+bwd: {mf * 1e3:9.1f} ms')
    print(f'naive  (per-edge messages) fwd+bwd: {mn * 1e3:9.1f} ms')
    print(f'naive / fused time ratio: {mn / mf:.1f}x')


if __name__ == '__main__':
    main()

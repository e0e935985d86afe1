"""glore_pyg.ops' CPU fallback against brute force and torch_cluster.

Times, on a batch of clouds of uniform points in the unit cube (3-D), our
fallback (scipy's ``cKDTree`` per cloud when scipy is importable, else the
chunked torch path; fps in torch, all clouds advancing together) against:

* brute force: per cloud, ``torch.cdist`` + ``topk`` (knn; radius with the
  points beyond ``r`` masked out first) or the one-cloud-at-a-time FPS loop
  that pyg-lib's and torch_cluster's CPU kernels run, in torch;
* our torch path (what GPU tensors take), forced on CPU;
* torch_cluster, when installed.

Times are medians of alternating runs after a warm-up (the order rotating
from round to round, as ``measure.time_side_by_side`` runs them, without
its ``gc.collect`` between runs: these ops make no cyclic garbage, and a
collection costs 0.2 s here); ``agree`` says whether our edges have the
brute-force distances (and fps the same picks).

    python benchmarks/ops.py            # 8 clouds x 8,192 points
    python benchmarks/ops.py --quick    # tiny sizes (the tests run this)
"""
import argparse
import platform
import statistics
import time
from typing import Callable, Dict, List

import torch

from glore_pyg.ops import _backend, fps, knn, radius

FULL = dict(clouds=8, points=8192, repeat=3)
QUICK = dict(clouds=2, points=300, repeat=2)
K, R, MAX_NN, RATIO = 16, 0.2, 64, 0.25


def median_times(fns: Dict[str, Callable], repeat: int) -> Dict[str, float]:
    """Median seconds of each closure, run alternately after one warm-up
    round."""
    names, times = list(fns), {name: [] for name in fns}
    for r in range(1 + repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t = time.perf_counter()
            fns[name]()
            if r > 0:
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def brute_knn(pos: torch.Tensor, ptr: List[int], k: int) -> torch.Tensor:
    edges = []
    for b in range(len(ptr) - 1):
        p = pos[ptr[b]:ptr[b + 1]]
        idx = torch.cdist(p, p).topk(k, dim=1, largest=False).indices
        row = torch.arange(p.size(0))[:, None].expand_as(idx)
        edges.append(torch.stack([row.reshape(-1), idx.reshape(-1)]) + ptr[b])
    return torch.cat(edges, dim=1)


def brute_radius(pos: torch.Tensor, ptr: List[int], r: float,
                 max_nn: int) -> torch.Tensor:
    edges = []
    for b in range(len(ptr) - 1):
        p = pos[ptr[b]:ptr[b + 1]]
        d = torch.cdist(p, p)
        d.masked_fill_(d >= r, float('inf'))
        d, idx = d.topk(min(max_nn, p.size(0)), dim=1, largest=False)
        row = torch.arange(p.size(0))[:, None].expand_as(idx)
        keep = d.isfinite()
        edges.append(torch.stack([row[keep], idx[keep]]) + ptr[b])
    return torch.cat(edges, dim=1)


def brute_fps(pos: torch.Tensor, ptr: List[int],
              ratio: float) -> torch.Tensor:
    out = []
    for b in range(len(ptr) - 1):
        p = pos[ptr[b]:ptr[b + 1]]
        m = int(torch.ceil(torch.tensor(p.size(0) * ratio)))
        picks = [0]
        nearest = (p - p[0]).pow(2).sum(1)
        for _ in range(m - 1):
            picks.append(int(nearest.argmax()))
            nearest = torch.minimum(nearest,
                                    (p - p[picks[-1]]).pow(2).sum(1))
        out.append(torch.tensor(picks) + ptr[b])
    return torch.cat(out)


def same_distances(pos: torch.Tensor, a: torch.Tensor,
                   b: torch.Tensor) -> bool:
    """Same queries and, per query, the same sorted neighbour distances."""
    if a.shape != b.shape:
        return False

    def keyed(e):
        d = (pos[e[0]] - pos[e[1]]).norm(dim=1).double()
        order = torch.argsort(e[0].double() * 16 + d / (d.max() + 1))
        return e[0][order], d[order]
    (ra, da), (rb, db) = keyed(a), keyed(b)
    return bool(torch.equal(ra, rb)) and torch.allclose(da, db, atol=1e-5)


def main(argv=None) -> List[Dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='tiny sizes')
    args = p.parse_args(argv)
    size = QUICK if args.quick else FULL

    torch.manual_seed(0)
    n, clouds = size['points'], size['clouds']
    pos = torch.rand(clouds * n, 3)
    batch = torch.arange(clouds).repeat_interleave(n)
    ptr = [b * n for b in range(clouds + 1)]
    ours = 'scipy' if _backend.ckdtree() is not None else 'torch'
    cluster = _backend.torch_cluster()

    def forced(name, fn):
        def run():
            with _backend.forced(name):
                return fn()
        return run

    cases = {
        'knn': dict(
            ours=forced(ours, lambda: knn(pos, pos, K, batch, batch)),
            torch=forced('torch', lambda: knn(pos, pos, K, batch, batch)),
            brute=lambda: brute_knn(pos, ptr, K),
            cluster=cluster and (lambda: cluster.knn(pos, pos, K, batch,
                                                     batch))),
        'radius': dict(
            ours=forced(ours, lambda: radius(pos, pos, R, batch, batch,
                                             MAX_NN)),
            torch=forced('torch', lambda: radius(pos, pos, R, batch, batch,
                                                 MAX_NN)),
            brute=lambda: brute_radius(pos, ptr, R, MAX_NN),
            cluster=cluster and (lambda: cluster.radius(
                pos, pos, R, batch, batch, max_num_neighbors=MAX_NN))),
        'fps': dict(
            ours=forced('torch', lambda: fps(pos, batch, RATIO, False)),
            brute=lambda: brute_fps(pos, ptr, RATIO),
            cluster=cluster and (lambda: cluster.fps(pos, batch, RATIO,
                                                     False))),
    }
    labels = {'knn': f'knn k={K}', 'radius': f'radius r={R} max={MAX_NN}',
              'fps': f'fps ratio={RATIO}'}

    rows = []
    for op, fns in cases.items():
        fns = {name: fn for name, fn in fns.items() if fn}
        a, b = fns['ours'](), fns['brute']()
        agree = bool(torch.equal(a, b)) if op == 'fps' else \
            same_distances(pos, a, b)
        t = median_times(fns, size['repeat'])
        rows.append(dict(
            op=op, label=labels[op], ours_path=ours if op != 'fps' else
            'torch', ours_s=t['ours'], brute_s=t['brute'],
            brute_over_ours=t['brute'] / t['ours'],
            torch_path_s=t.get('torch'),
            torch_cluster_s=t.get('cluster'),
            cluster_over_ours=(t['cluster'] / t['ours'] if 'cluster' in t
                               else None),
            agree=agree, clouds=clouds, points=n))

    def ms(v):
        return '-' if v is None else f'{v * 1e3:.1f} ms'
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{platform.processor() or platform.machine()}; '
          f'{clouds} clouds x {n} points, 3-D uniform; '
          f'torch_cluster: {"installed" if cluster else "not installed"}')
    print()
    print('| op | ours | ours, torch path | brute force | brute / ours '
          '| torch_cluster | torch_cluster / ours | agree |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        tc = ms(r['torch_cluster_s']) if cluster else 'not installed'
        tc_ratio = '-' if r['cluster_over_ours'] is None else \
            f"{r['cluster_over_ours']:.2f}x"
        print(f"| {r['label']} | {ms(r['ours_s'])} ({r['ours_path']}) | "
              f"{ms(r['torch_path_s'])} | {ms(r['brute_s'])} | "
              f"{r['brute_over_ours']:.1f}x | {tc} | {tc_ratio} | "
              f"{'yes' if r['agree'] else 'NO'} |")
    return rows


if __name__ == '__main__':
    main()

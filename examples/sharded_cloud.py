"""Exact global reasoning over one large point cloud split across processes.

Each process holds 1/P of the points of one cloud; a network of per-point
layers and global units (``LatentGNNConv`` on the memory-lean chunked path,
then ``GloReConv``), sharded with :func:`glore_pyg.nn.shard_units`, gives
every process the rows of the output one process would compute on the whole
cloud.  Run it under torchrun for one P::

    torchrun --nproc-per-node 2 examples/sharded_cloud.py --points 1000000

or without torchrun, which launches torchrun for each P of ``--processes``
and prints one table (P = 1 first: its output is the reference)::

    python examples/sharded_cloud.py --points 1000000 --processes 1,2,3

Per process it reports the time of a training step (forward + backward,
median), the peak resident memory above the process's baseline after
building the model, the bytes its units hand to collectives per step
(counted by the profiler on a step over the process's first 4,096 rows: the
bytes do not depend on the number of rows), and the largest difference to
the single-process output (of the first training step).
Memory is the process's peak RSS (``getrusage``), so on a GPU it reads the
host side; ``torch.cuda.max_memory_allocated`` is printed there too.
"""
import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn

from glore_pyg.nn import (GloReConv, LatentGNNConv,
                          convert_distributed_batchnorm, shard_units)

#: points generated per seed: every process makes only its own blocks
BLOCK = 65536
#: rows per process of the step whose collectives the profiler counts
PROFILED_ROWS = 4096


class GlobalCloudNet(nn.Module):
    """Per-point layers around global units (by default a LatentGNN unit on
    the memory-lean chunked path, then a GloRe unit), then per-point
    logits."""

    def __init__(self, in_channels: int = 6, channels: int = 64,
                 latent: int = 64, classes: int = 8,
                 chunk_size: int = 262144,
                 units: Sequence[str] = ('latentgnn', 'glore')):
        super().__init__()
        self.channels = channels
        self.embed = nn.Sequential(nn.Linear(in_channels, channels),
                                   nn.BatchNorm1d(channels), nn.ReLU())
        make = dict(latentgnn=lambda: LatentGNNConv(
            channels, [latent], chunk_size=chunk_size),
                    glore=lambda: GloReConv(channels, latent, normalize=True))
        unknown = sorted(set(units) - set(make))
        if unknown or not units:
            raise ValueError(f"'units' must name some of {sorted(make)}, "
                             f"got {list(units)}")
        self.units = nn.ModuleList([make[u]() for u in units])
        self.head = nn.Linear(channels, classes)

    def forward(self, x, batch_size: int = 1):
        h = self.embed(x)
        for unit in self.units:
            h = unit(h, batch_size=batch_size)
        return self.head(h)


def make_points(start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the cloud ``[N, 6]`` (position and a colour
    that depends on it), the same whichever process makes them."""
    rows = []
    for block in range(start // BLOCK, -(-stop // BLOCK)):
        g = torch.Generator().manual_seed(block)
        pos = torch.rand(BLOCK, 3, generator=g) * 10
        colour = torch.sin(pos * torch.tensor([1.0, 2.0, 3.0])) + \
            0.1 * torch.randn(BLOCK, 3, generator=g)
        a, b = max(start - block * BLOCK, 0), min(stop - block * BLOCK,
                                                  BLOCK)
        rows.append(torch.cat([pos, colour], 1)[a:b])
    return torch.cat(rows) if rows else torch.zeros(0, 6)


def shard_bounds(n: int, world: int, rank: int):
    """This process's contiguous rows of ``n``: as even as possible."""
    per, extra = divmod(n, world)
    start = rank * per + min(rank, extra)
    return start, start + per + (rank < extra)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reduced_bytes(model, x) -> int:
    """Bytes of the tensors this process hands to collectives in one
    forward + backward (all-reduces and the metadata all-gather), from the
    profiler's record of each backend call (``gloo:all_reduce``, ...) and
    its input's shape and dtype."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 record_shapes=True) as prof:
        model(x).sum().backward()
    total = 0
    for e in prof.events():
        backend, _, op = e.name.partition(':')
        if backend in ('gloo', 'nccl') and op in ('all_reduce',
                                                  'all_gather'):
            numel = 1
            for dim in e.input_shapes[0]:
                numel *= dim
            total += numel * ITEMSIZE[e.input_dtypes[0]]
    return total


ITEMSIZE = {'float': 4, 'double': 8, 'long int': 8, 'c10::Half': 2,
            'c10::BFloat16': 2, 'int': 4}


def run(args) -> dict:
    """One process of a run under torchrun: builds the sharded network,
    times training steps on its rows and compares its output with the
    reference file (P = 1) when there is one."""
    distributed = 'RANK' in os.environ
    if distributed:
        dist.init_process_group('gloo',
                                timeout=timedelta(seconds=args.timeout))
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = torch.float64 if args.double else torch.float32
    model = GlobalCloudNet(chunk_size=args.chunk_size,
                           units=args.units.split(',')).to(dtype)
    if distributed:
        shard_units(model)
        convert_distributed_batchnorm(model)  # the per-point BatchNorm too
    start, stop = shard_bounds(args.points, world, rank)
    x = make_points(start, stop).to(dtype)
    base = peak_rss()
    times, first = [], None
    for _ in range(args.steps):
        model.zero_grad()
        t = time.perf_counter()
        out = model(x)
        out.sum().backward()
        times.append(time.perf_counter() - t)
        if first is None:  # training mode: batch statistics everywhere
            first = out.detach()
    peak = peak_rss() - base
    # the bytes do not depend on the number of rows (docs/scaling.md), and
    # the profiler's records of a full step would cost gigabytes
    sent = reduced_bytes(model, x[:PROFILED_ROWS]) if distributed else 0
    out = first
    reference = Path(args.out) / 'reference.pt'
    diff = None
    if world == 1:
        torch.save(out, reference)
    elif reference.exists():
        ref = torch.load(reference)[start:stop]
        diff = (out - ref).abs().max().item() if len(out) else 0.0
    result = dict(rank=rank, world=world, rows=stop - start,
                  step_s=statistics.median(times[1:] or times),
                  peak_bytes=peak,
                  # the [N_p, C] features the units receive
                  input_bytes=(stop - start) * model.channels *
                  x.element_size(),
                  reduced_bytes=sent, max_diff=diff)
    with open(Path(args.out) / f'p{world}_rank{rank}.json', 'w') as f:
        json.dump(result, f)
    if distributed:
        dist.destroy_process_group()
    return result


def launch(args, argv) -> None:
    """Runs torchrun once per P with this script's arguments ``argv`` and
    prints the table."""
    out = Path(args.out or tempfile.mkdtemp(prefix='sharded_cloud_'))
    out.mkdir(parents=True, exist_ok=True)
    worlds = [int(p) for p in args.processes.split(',')]
    if worlds[0] != 1:
        worlds = [1] + worlds  # the reference
    script = _without(argv, '--processes', '--out')
    rows = []
    for world in sorted(set(worlds)):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, '-m', 'torch.distributed.run',
               f'--nproc-per-node={world}', f'--master-port={port}',
               __file__, *script, '--out', str(out)]
        if world == 1:  # the reference runs without sharding
            cmd = [sys.executable, __file__, *script, '--out', str(out)]
        subprocess.run(cmd, check=True, timeout=args.timeout)
        for rank in range(world):
            with open(out / f'p{world}_rank{rank}.json') as f:
                rows.append(json.load(f))
    print(f'\n{args.points:,} points, units {args.units}, C=64, d=64, '
          f'chunk_size='
          f'{args.chunk_size}, {"float64" if args.double else "float32"}, '
          f'{args.threads} thread(s) per process; "x features": peak memory '
          f'over the bytes of the [N_p, 64] features the units receive\n')
    print('| P | rank | points | step (s) | peak memory | x features | '
          'all-reduced per step | max diff to P=1 |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        diff = '-' if r['max_diff'] is None else f"{r['max_diff']:.2e}"
        print(f"| {r['world']} | {r['rank']} | {r['rows']:,} | "
              f"{r['step_s']:.3f} | {r['peak_bytes'] / 2**20:.0f} MiB | "
              f"{r['peak_bytes'] / max(r['input_bytes'], 1):.1f} | "
              f"{r['reduced_bytes']:,} B | {diff} |")


def _without(argv, *flags):
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        if any(a.startswith(f + '=') for f in flags):
            continue
        out.append(a)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--points', type=int, default=1_000_000)
    p.add_argument('--chunk-size', type=int, default=262144)
    p.add_argument('--steps', type=int, default=3,
                   help='training steps timed (the first is a warm-up)')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads per process')
    p.add_argument('--units', default='latentgnn,glore',
                   help='the global units in order: latentgnn (chunked), '
                   'glore')
    p.add_argument('--double', action='store_true',
                   help='float64 (differences to P=1 at rounding level)')
    p.add_argument('--processes', default=None,
                   help='launch torchrun for each P, e.g. 1,2,3')
    p.add_argument('--out', default=None, help='folder of the results')
    p.add_argument('--timeout', type=float, default=3600,
                   help='seconds before a collective, or one run of '
                   'torchrun, gives up (an error, never a hang)')
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.processes:
        launch(args, argv)
        return
    if args.out is None:
        p.error('--out is needed when run under torchrun directly')
    Path(args.out).mkdir(parents=True, exist_ok=True)
    r = run(args)
    print(f"P={r['world']} rank {r['rank']}: {r['rows']:,} points, step "
          f"{r['step_s']:.3f} s, peak {r['peak_bytes'] / 2**20:.0f} MiB, "
          f"all-reduced {r['reduced_bytes']:,} B"
          + ('' if r['max_diff'] is None else
             f", max diff to P=1 {r['max_diff']:.2e}"))


if __name__ == '__main__':
    main()

"""What the process's memory allocator does to the units on CPU.

How memory is allocated is the process's choice, not a layer's: glore-pyg
allocates with plain torch operations.  This script runs the same forward +
backward steps in a fresh process per allocator setting and prints the
median step time and the peak resident memory of each:

* glibc's defaults;
* jemalloc and tcmalloc, loaded with ``LD_PRELOAD`` (Debian packages
  ``libjemalloc2`` and ``libtcmalloc-minimal4``; a setting whose library is
  missing is reported as skipped);
* ``THP_MEM_ALLOC_ENABLE=1``: PyTorch's own switch that asks for
  transparent huge pages for CPU allocations of 2 MB or more;
* ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=...``:
  glibc keeps freed memory in the process instead of returning every block
  over 32 MB to the kernel.

Times use a dense random gradient into the output (``fwd_bwd``); the peak is
the resident-memory increment over the process's state before the input
was made (the input, activations and gradients).

    python benchmarks/allocators.py            # the table (about 10 minutes)
    python benchmarks/allocators.py --quick    # tiny sizes, every path
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIB = Path('/usr/lib/x86_64-linux-gnu')
SETTINGS = {
    'glibc (default)': {},
    'jemalloc (LD_PRELOAD)': {'LD_PRELOAD': str(LIB / 'libjemalloc.so.2')},
    'tcmalloc (LD_PRELOAD)': {
        'LD_PRELOAD': str(LIB / 'libtcmalloc_minimal.so.4')},
    'THP_MEM_ALLOC_ENABLE=1': {'THP_MEM_ALLOC_ENABLE': '1'},
    'GLIBC_TUNABLES (keep freed memory)': {
        'GLIBC_TUNABLES': 'glibc.malloc.mmap_max=0:'
                          'glibc.malloc.trim_threshold=68719476736'},
}
CASES = {  # name -> suite.build arguments (full, quick)
    'clouds': (dict(case='clouds', unit='latentgnn',
                    sizes=[2000 * (i + 1) for i in range(8)], C=128, d=64),
               dict(case='clouds', unit='latentgnn', sizes=[20, 40], C=16,
                    d=4)),
    'points': (dict(case='points', N=1_000_000, C=64, d=64,
                    channel_stride=1),
               dict(case='points', N=1000, C=8, d=4, channel_stride=1)),
    'chunked': (dict(case='points', N=1_000_000, C=64, d=64,
                     channel_stride=1, chunk_size=65536),
                dict(case='points', N=1000, C=8, d=4, channel_stride=1,
                     chunk_size=256)),
}
STEPS = {'clouds': 7, 'points': 3, 'chunked': 2}  # timed, after a warm-up


def describe(case, quick=False):
    if quick:
        return f'{case} (--quick sizes)'
    return {'clouds': '8 clouds of 2,000-16,000 points, '
                      'LatentGNNConv(128, [64])',
            'points': '1,000,000 points, LatentGNNConv(64, [64], '
                      'channel_stride=1)',
            'chunked': '1,000,000 points, LatentGNNConv(64, [64], '
                       'channel_stride=1, chunk_size=65536)'}[case]


def child(case, quick, steps):
    sys.path.insert(0, str(HERE))
    import torch
    from measure import fwd_bwd, rss_bytes
    from suite import build
    kw = CASES[case][1 if quick else 0]
    module, make = build(impl='ours', **kw)
    base = rss_bytes()  # the libraries and the module, before the input
    run = fwd_bwd(module, make(False))
    times = []
    for _ in range(steps + 1):  # the first one is the warm-up
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    print(json.dumps(dict(
        seconds=statistics.median(times[1:]), first=times[0],
        peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 -
        base,
        threads=torch.get_num_threads())))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true')
    p.add_argument('--steps', type=int, default=None)
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.quick, args.steps)
    results = {}
    for case in CASES:
        for name, env in SETTINGS.items():
            preload = env.get('LD_PRELOAD')
            if preload and not Path(preload).exists():
                results[case, name] = None
                continue
            steps = args.steps or (2 if args.quick else STEPS[case])
            out = subprocess.run(
                [sys.executable, __file__, '--child', case, '--steps',
                 str(steps)] + (['--quick'] if args.quick else []),
                env=dict(os.environ, **env), check=True, text=True,
                stdout=subprocess.PIPE).stdout
            results[case, name] = json.loads(out.splitlines()[-1])
            print(f'{case}, {name}: {results[case, name]}', file=sys.stderr,
                  flush=True)
    lines = ['| Case | Allocator | Step (median) | vs glibc | First step | '
             'Peak RSS increment |', '|---' * 6 + '|']
    for case in CASES:
        base = results[case, 'glibc (default)']
        for name in SETTINGS:
            r = results[case, name]
            if r is None:
                lines.append(f'| {describe(case, args.quick)} | {name} | skipped '
                             f'(library not installed) | - | - | - |')
                continue
            lines.append(
                f"| {describe(case, args.quick)} | {name} | {r['seconds'] * 1e3:.0f} ms "
                f"| {r['seconds'] / base['seconds']:.2f}x | "
                f"{r['first'] * 1e3:.0f} ms | {r['peak'] / 1e9:.2f} GB |")
    print('\n'.join(lines))
    return results


if __name__ == '__main__':
    main()

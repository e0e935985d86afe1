"""Forward + backward of an L2 normalisation over the channels of a
``[1e6, 64]`` node matrix: ``F.normalize`` against ``l2_normalize`` (a new
output, and in place), each run on a fresh temporary ``x * 1`` (timed alone
in the last row).  Medians of 5 alternating rounds.

    python benchmarks/normalize.py [--rows 1000000] [--channels 64]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from glore_pyg.functional.normalize import l2_normalize


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=1_000_000)
    p.add_argument('--channels', type=int, default=64)
    p.add_argument('--repeat', type=int, default=5)
    args = p.parse_args(argv)
    x = torch.randn(args.rows, args.channels, requires_grad=True)
    g = torch.randn(args.rows, args.channels)
    cases = {
        'F.normalize': lambda: F.normalize(x * 1, dim=1).backward(g),
        'l2_normalize': lambda: l2_normalize(x * 1, dim=1).backward(g),
        'l2_normalize(inplace=True)':
            lambda: l2_normalize(x * 1, dim=1, inplace=True).backward(g),
        'x * 1 alone': lambda: (x * 1).backward(g),
    }
    times = {name: [] for name in cases}
    for r in range(args.repeat + 1):  # round 0: warm-up
        for name, fn in cases.items():
            x.grad = None
            t = time.perf_counter()
            fn()
            if r:
                times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f'{name:28s} {sorted(ts)[len(ts) // 2] * 1e3:8.1f} ms')
    return times


if __name__ == '__main__':
    main()

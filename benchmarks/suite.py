"""The benchmark suite: our units against the published dense formulation,
naive per-edge message passing, padded dense batches, the dense non-local
block and ``torch.mm``, forward + backward on CPU (float32).

    python benchmarks/suite.py            # print the table
    python benchmarks/suite.py --write    # and regenerate docs/benchmarks.md
    python benchmarks/suite.py --quick    # every code path on tiny sizes

Times are medians of alternating in-process runs, so each ratio is measured
side by side; memory is the peak RSS increment of a fresh process per case
(see ``measure.py``).
"""
import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch_geometric
from torch.nn.modules.batchnorm import _BatchNorm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dense_reference import DenseGloRe, DenseLatentGNN, Padded  # noqa: E402
from measure import (GiB, count_flops, fwd_bwd, memory_limit,  # noqa: E402
                     peak_rss, profile_matmuls, replay, time_side_by_side)
from naive import naive  # noqa: E402

from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNN2d,  # noqa: E402
                          LatentGNNConv, NonLocalConv)

BUILDER = (str(Path(__file__).resolve()), 'build')

FULL = dict(
    grid=dict(B=4, C=256, H=64, W=64, d=64),
    clouds=dict(sizes=[2000 * (i + 1) for i in range(8)], C=128, d=64),
    points=dict(C=64, d=64, channel_stride=1),
    scale_n=4_000_000, dense_n=1_000_000, compute_n=1_000_000,
    nonlocal_=dict(C=64, d=64, start=4096, memory=20 * GiB, seconds=300),
    repeat=7, naive_repeat=5, compute_repeat=3, memory_steps=5,
    scale_memory_steps=2)
QUICK = dict(
    grid=dict(B=2, C=16, H=6, W=5, d=4),
    clouds=dict(sizes=[20, 40, 60], C=16, d=4),
    points=dict(C=8, d=4, channel_stride=1),
    scale_n=4000, dense_n=1000, compute_n=1000,
    nonlocal_=dict(C=8, d=4, start=256, memory=int(1.2 * GiB), seconds=60),
    repeat=2, naive_repeat=1, compute_repeat=1, memory_steps=2,
    scale_memory_steps=2)


# -- cases: build(**kwargs) -> (module, make_inputs(tiny)) --------------------
def randomize(unit, seed=0):
    """Non-trivial BatchNorm affine parameters and LatentGNN ``gamma``: a
    fresh unit returns its input, which would make comparing outputs
    meaningless."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in unit.modules():
            if isinstance(m, _BatchNorm):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
        if hasattr(unit, 'gamma'):
            unit.gamma.fill_(0.7)
    return unit


def randn(*shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    return x.requires_grad_()


def cloud_inputs(sizes, C):
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    return randn(batch.numel(), C), batch


def build(case, impl, unit='latentgnn', seed=0, **kw):
    torch.manual_seed(seed)
    C, d = kw['C'], kw['d']
    dense = {'latentgnn': DenseLatentGNN, 'glore': DenseGloRe}[unit]
    if case == 'grid':
        u = LatentGNN2d(C, [d]) if unit == 'latentgnn' else GloRe2d(C, d)
        u = randomize(u, seed)
        module = u if impl == 'ours' else dense(u)
        B, H, W = kw['B'], kw['H'], kw['W']
        return module, lambda tiny: (randn(1, C, 3, 2) if tiny else
                                     randn(B, C, H, W), )
    if case == 'clouds':
        u = randomize(LatentGNNConv(C, [d]) if unit == 'latentgnn' else
                      GloReConv(C, d, normalize=True), seed)
        module = {'ours': lambda: u, 'naive': lambda: naive(u),
                  'padded': lambda: Padded(dense(u))}[impl]()
        return module, lambda tiny: cloud_inputs(
            [2, 3] if tiny else kw['sizes'], C)
    if case == 'points':  # one sample of N points
        extra = {} if kw.get('chunk_size') is None else dict(
            chunk_size=kw['chunk_size'])
        u = randomize(LatentGNNConv(C, [d], channel_stride=kw[
            'channel_stride'], **extra), seed)
        if impl == 'ours':
            return u, lambda tiny: (randn(16 if tiny else kw['N'], C), )
        return dense(u), lambda tiny: (randn(1, C, 16 if tiny else kw['N'],
                                             1), )
    if case == 'nonlocal':  # one sample of N points
        module = NonLocalConv(C) if impl == 'nonlocal' else randomize(
            LatentGNNConv(C, [d]), seed)
        return module, lambda tiny: (randn(16 if tiny else kw['N'], C), )
    raise ValueError(case)


# -- formatting ---------------------------------------------------------------
def fmt_time(s):
    return f'{s * 1e3:.1f} ms' if s < 1 else f'{s:.2f} s'


def fmt_bytes(b):
    return f'{b / 1e6:.0f} MB' if b < 1e9 else f'{b / 1e9:.2f} GB'


def fmt_ratio(r):
    return '-' if r is None else f'{r:.3g}x'


def fmt_mem(r):
    if not r['ok']:
        return 'out of memory'
    if r['first_increment'] == r['increment']:
        return fmt_bytes(r['increment'])
    return (f"{fmt_bytes(r['increment'])} (first step "
            f"{fmt_bytes(r['first_increment'])})")


def row(rows, key, comparison, ours, ref, ratio, target=None, met=None,
        diff=None):
    rows.append(dict(key=key, comparison=comparison, ours=ours, ref=ref,
                     ratio=ratio, target=target, met=met, diff=diff))
    print(f'  {comparison}: {ours} vs {ref}, ratio {fmt_ratio(ratio)}'
          f'{"" if target is None else f" (target {target}: {met})"}',
          file=sys.stderr, flush=True)


def table(rows):
    lines = ['| Comparison | Ours | Reference | Ratio | Target | Met | '
             'max \\|ours - ref\\| |', '|---' * 7 + '|']
    for r in rows:
        ratio = fmt_ratio(r['ratio'])
        met = {True: 'yes', False: '**no**', None: '-'}.get(r['met'],
                                                          r['met'])
        diff = '-' if r['diff'] is None else f"{r['diff']:.1e}"
        lines.append(f"| {r['comparison']} | {r['ours']} | {r['ref']} | "
                     f"{ratio} | {r['target'] or '-'} | {met} | {diff} |")
    return '\n'.join(lines)


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr,
          flush=True)


def max_diff(a, b, inputs):
    with torch.no_grad():
        return (a(*inputs) - b(*inputs)).abs().max().item()


def memory(impl, limit, steps=1, **kw):
    r = peak_rss(BUILDER, dict(impl=impl, **kw), limit, steps)
    if not r['ok'] and not r['oom']:
        raise RuntimeError(f'{impl} {kw}: {r["error"]}')
    return r


def memory_ratio(a, b):  # None if out of memory (or tiny --quick sizes)
    ok = a['ok'] and b['ok'] and b['increment'] > 0
    return a['increment'] / b['increment'] if ok else None


def gib(b):
    return f'{b / GiB:.1f} GiB'


# -- sections -----------------------------------------------------------------
def grid_section(cfg, rows, limit):
    g = cfg['grid']
    for unit, name in (('latentgnn', 'LatentGNN2d'), ('glore', 'GloRe2d')):
        log(f'grid {name}')
        kw = dict(case='grid', unit=unit, **g)
        ours, make = build(impl='ours', **kw)
        dense = build(impl='dense', **kw)[0]
        inputs = make(False)
        diff = max_diff(ours, dense, inputs)
        t = time_side_by_side({'ours': fwd_bwd(ours, inputs),
                               'dense': fwd_bwd(dense, inputs)},
                              cfg['repeat'])
        del ours, dense, inputs
        gc.collect()
        m = {impl: memory(impl, limit, cfg['memory_steps'], **kw)
             for impl in ('ours', 'dense')}
        what = (f"{name}, B={g['B']}, C={g['C']}, {g['H']}x{g['W']}, "
                f"d={g['d']}")
        ratio = t['ours'] / t['dense']
        row(rows, f'grid-{unit}-time', f'{what}: time', fmt_time(t['ours']),
            f"dense published {fmt_time(t['dense'])}", ratio, '<= 1.15x',
            ratio <= 1.15, diff)
        ratio = memory_ratio(m['ours'], m['dense'])
        row(rows, f'grid-{unit}-memory', f'{what}: peak memory',
            fmt_mem(m['ours']), f"dense published {fmt_mem(m['dense'])}",
            ratio, '<= 1.0x', ratio is not None and ratio <= 1.0)


CLOUD_UNITS = ('latentgnn', 'glore')


def cloud_unit_name(c, unit):
    return (f"LatentGNNConv({c['C']}, [{c['d']}])" if unit == 'latentgnn'
            else f"GloReConv({c['C']}, {c['d']}, normalize=True)")


def cloud_case(c, unit):
    return (f"{len(c['sizes'])} clouds of {c['sizes'][0]}-"
            f"{c['sizes'][-1]} points, {cloud_unit_name(c, unit)}")


def naive_times(cfg, ours, nv, inputs, warmup=0):
    """Median seconds of ours, the naive version and the replay of our
    matrix products alone, which bounds any speed-up over the naive
    version (it runs the same row-wise projections)."""
    calls = profile_matmuls(fwd_bwd(ours, inputs))[1]
    return time_side_by_side({'ours': fwd_bwd(ours, inputs),
                              'naive': fwd_bwd(nv, inputs),
                              'products': lambda: replay(calls)},
                             cfg['naive_repeat'], warmup=warmup,
                             build=['products'])


def naive_row(rows, key, what, tn, ours, ref, diff=None):
    speedup = tn['naive'] / tn['ours']
    row(rows, key, f'{what}: speed-up over naive per-edge MessagePassing',
        ours, ref, speedup, '>= 20x', speedup >= 20, diff)


def clouds_section(cfg, rows, limit):
    c = cfg['clouds']
    for unit in CLOUD_UNITS:
        log(f'clouds {cloud_unit_name(c, unit)}')
        kw = dict(case='clouds', unit=unit, **c)
        ours, make = build(impl='ours', **kw)
        padded, nv = build(impl='padded', **kw)[0], build(impl='naive',
                                                          **kw)[0]
        inputs = make(False)
        diff_p, diff_n = (max_diff(ours, padded, inputs),
                          max_diff(ours, nv, inputs))
        t = time_side_by_side({'ours': fwd_bwd(ours, inputs),
                               'padded': fwd_bwd(padded, inputs)},
                              cfg['repeat'])
        tn = naive_times(cfg, ours, nv, inputs)  # all warm by now
        del ours, padded, nv, inputs
        gc.collect()
        m = {impl: memory(impl, limit, cfg['memory_steps'], **kw)
             for impl in ('ours', 'padded', 'naive')}
        what = cloud_case(c, unit)
        naive_row(rows, f'clouds-{unit}-naive', what, tn,
                  f"{fmt_time(tn['ours'])} (memory {fmt_mem(m['ours'])})",
                  f"naive {fmt_time(tn['naive'])} (memory "
                  f"{fmt_mem(m['naive'])})", diff_n)
        row(rows, f'clouds-{unit}-bound', f'{what}: speed-up over naive '
            'if the unit took no more than its own matrix products (their '
            '`torch.mm` replay; for comparison)',
            f"{fmt_time(tn['products'])} ({fmt_time(tn['ours'])} for the "
            f"whole unit)", f"naive {fmt_time(tn['naive'])}",
            tn['naive'] / tn['products'])
        ratio = t['ours'] / t['padded']
        row(rows, f'clouds-{unit}-time', f'{what}: time',
            fmt_time(t['ours']), f"padded dense bmm {fmt_time(t['padded'])}",
            ratio, '<= 1.3x', ratio <= 1.3, diff_p)
        ratio = memory_ratio(m['ours'], m['padded'])
        row(rows, f'clouds-{unit}-memory', f'{what}: peak memory',
            fmt_mem(m['ours']), f"padded dense bmm {fmt_mem(m['padded'])}",
            ratio, '<= 1.0x', ratio is not None and ratio <= 1.0)


def scale_section(cfg, rows, limit, chunk_size):
    p = cfg['points']
    unit = (f"LatentGNNConv({p['C']}, [{p['d']}], channel_stride="
            f"{p['channel_stride']}")
    runs = [('scale-lean', cfg['scale_n'], 'ours', chunk_size),
            ('scale-plain-1m', cfg['dense_n'], 'ours', None),
            ('scale-dense-1m', cfg['dense_n'], 'dense', None)]
    runs.insert(1, ('scale-lean-1m', cfg['dense_n'], 'ours', chunk_size))
    for key, n, impl, chunk in runs:
        log(f'scale {key}')
        r = memory(impl, limit, cfg['scale_memory_steps'], case='points',
                   N=n, chunk_size=chunk, **p)
        name = ('published LatentGNN (dense, 1x1 conv + bmm)'
                if impl == 'dense' else unit +
                (f', chunk_size={chunk})' if chunk else ')'))
        ratio = r['increment'] / r['input_bytes'] if r['ok'] else None
        detail = (f"peak RSS {fmt_bytes(r['peak'])}, increment "
                  f"{fmt_mem(r)}" if r['ok'] else
                  f'out of memory (limit {gib(limit)})')
        input_bytes = fmt_bytes(n * p['C'] * 4)
        if key == 'scale-lean':
            met = ratio is not None and ratio <= 6
            row(rows, key, f'{name} on {n:,} points: peak memory / input',
                detail, f'input {input_bytes}', ratio, '<= 6x', met)
        else:
            row(rows, key, f'{name} on {n:,} points: peak memory / input '
                '(for comparison)', detail, f'input {input_bytes}', ratio)


# glibc returns every block over 32 MB to the kernel when it is freed, so each
# new large tensor is fresh memory whose pages fault in one by one (about
# 70 ms per 256 MB here).  This setting keeps freed memory in the process,
# as jemalloc / tcmalloc (PyTorch's CPU tuning advice) or a GPU caching
# allocator do.
MALLOC_REUSE = ('glibc.malloc.mmap_max=0:'
                'glibc.malloc.trim_threshold=68719476736')


def malloc_reuse_rows(cfg, rows):
    """The rows measured again under MALLOC_REUSE (in a child process):
    the plain path's FLOP rate, and LatentGNNConv against the naive version
    on the clouds (whose per-edge tensors fault in hundreds of MB of fresh
    memory per step under glibc's defaults)."""
    compute_rows(cfg, rows, [None])
    c = cfg['clouds']
    log('clouds ' + cloud_unit_name(c, 'latentgnn'))
    kw = dict(case='clouds', unit='latentgnn', **c)
    ours, make = build(impl='ours', **kw)
    tn = naive_times(cfg, ours, build(impl='naive', **kw)[0], make(False),
                     warmup=1)
    naive_row(rows, 'clouds-latentgnn-naive', cloud_case(c, 'latentgnn'),
              tn, fmt_time(tn['ours']), f"naive {fmt_time(tn['naive'])}")


def compute_section(cfg, rows, chunk_size, quick=False):
    compute_rows(cfg, rows, [None, chunk_size])
    # Again in a child process whose allocator keeps freed memory (it must
    # be set before the process starts).
    log('compute and clouds, GLIBC_TUNABLES=' + MALLOC_REUSE)
    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_REUSE)
    out = subprocess.run(
        [sys.executable, __file__, '--malloc-reuse-child'] +
        (['--quick'] if quick else []), env=env, check=True,
        stdout=subprocess.PIPE, text=True).stdout
    for r in json.loads(out.splitlines()[-1]):
        r['key'] += '-malloc-reuse'
        r['comparison'] += (' (allocator keeping freed memory: '
                            f'`GLIBC_TUNABLES={MALLOC_REUSE}`)')
        rows.append(r)


def compute_rows(cfg, rows, chunks):
    p, n = cfg['points'], cfg['compute_n']
    for chunk in chunks:
        log(f'compute chunk_size={chunk}')
        unit, make = build('points', 'ours', N=n, chunk_size=chunk, **p)
        run = fwd_bwd(unit, make(False))
        flops, calls = profile_matmuls(run)  # also the warm-up
        mm_flops = count_flops(replay(calls))
        t = time_side_by_side({'unit': run, 'mm': lambda: replay(calls)},
                              cfg['compute_repeat'], warmup=0, build=['mm'])
        rate, rate_mm = flops / t['unit'], mm_flops / t['mm']
        ratio = rate / rate_mm
        what = (f"LatentGNNConv({p['C']}, [{p['d']}], channel_stride="
                f"{p['channel_stride']}" + (f', chunk_size={chunk}' if chunk
                                            else '') + f") on {n:,} points")
        row(rows, 'compute-lean' if chunk else 'compute-plain',
            f'{what}: FLOP rate vs torch.mm on the same shapes' +
            (' (the FLOPs include the recomputation)' if chunk else ''),
            f'{rate / 1e9:.1f} GFLOP/s ({flops / 1e9:.1f} GFLOP in '
            f"{fmt_time(t['unit'])})",
            f'torch.mm {rate_mm / 1e9:.1f} GFLOP/s ({mm_flops / 1e9:.1f} '
            f"GFLOP in {fmt_time(t['mm'])})", ratio, '>= 0.5x', ratio >= 0.5)
        del unit, run
        gc.collect()


def nonlocal_section(cfg, rows, limit):
    nl = cfg['nonlocal_']
    limit = min(limit, nl['memory'])
    kw = dict(case='nonlocal', C=nl['C'], d=nl['d'])
    trials, start = {}, time.time()

    def fits(n):
        log(f'non-local N={n}')
        trials[n] = memory('nonlocal', limit, N=n, **kw)
        return trials[n]['ok']

    lo, hi, n = None, None, nl['start']
    while time.time() - start < nl['seconds']:  # doubling
        if not fits(n):
            hi = n
            break
        lo, n = n, 2 * n
    while (lo and hi and hi > 1.1 * lo
           and time.time() - start < nl['seconds']):  # bisection
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    what = f"NonLocalConv({nl['C']}), one sample"
    found = (f'N = {lo:,}' + ('' if hi else ' (search stopped, time)')
             if lo else f"none (N = {nl['start']:,} fails)")
    row(rows, 'nonlocal-max-n', f'{what}: largest N whose forward + '
        f'backward fits in {gib(limit)} (address space)', found,
        f"fails at N = {hi:,}" if hi else '-', None)
    if lo:
        r, nl_r = memory('latentgnn', limit, N=lo, **kw), trials[lo]
        ratio = memory_ratio(r, nl_r)
        row(rows, 'nonlocal-latentgnn-memory',
            f"LatentGNNConv({nl['C']}, [{nl['d']}]) at N = {lo:,}: peak "
            f"memory (one forward + backward: {fmt_time(r['seconds'])} vs "
            f"{fmt_time(nl_r['seconds'])})", fmt_mem(r),
            f'NonLocalConv {fmt_mem(nl_r)}', ratio)


# -- main ---------------------------------------------------------------------
def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def write_doc(path, command, rows, seconds):
    doc = f"""# Benchmarks

* command: `{command}` ({seconds / 60:.1f} minutes, {datetime.date.today()})
* machine: {os.cpu_count()} CPU cores ({cpu_name()}),
  {torch.get_num_threads()} torch threads
* torch {torch.__version__}, torch_geometric {torch_geometric.__version__}
* float32, forward + backward (`loss = out.sum()`), BatchNorm in training
  mode

{table(rows)}

Ratios are ours / reference, except the speed-up over naive message passing
(naive / ours) and the FLOP-rate ratio (ours / `torch.mm`).  The last column
is the largest absolute difference between the outputs of our unit and of
the reference on the benchmark input (same weights).

## Method

* **Time**: the cases of one comparison run in one process, alternately,
  the order rotating from round to round (ours, reference; reference,
  ours; ...: what ran just before a case changes its time by several
  percent here), after a warm-up run; each figure is the
  median of {FULL['repeat']} rounds
  ({FULL['naive_repeat']} against the naive version,
  {FULL['compute_repeat']} against the matmul replay).  The machine is
  shared and noisy: compare the ratios, which are measured side by side,
  rather than the absolute times.
* **Memory**: each case runs in a fresh process (forked from a server that
  has only imported the libraries) under an address-space limit, so that
  running out of memory is reported instead of taking the machine down.
  The child builds the module, runs a tiny forward + backward, records its
  resident memory (`/proc/self/statm`) as the baseline, creates the full
  input and runs {FULL['memory_steps']} forward + backward passes on it, as
  a training loop would ({FULL['scale_memory_steps']} for the
  million-point cases, one for the non-local search); the figure is the
  peak RSS (`getrusage`) over all of them minus the baseline, so it
  *includes* the input tensor, the activations kept for backward and the
  gradients, but not the interpreter and the libraries.  Where the first
  pass peaked lower, its figure follows in parentheses: freed blocks of one
  step do not always fit the next step's requests, so an allocator's
  footprint can grow over the first few steps (glibc's, for every
  implementation here).  "Peak memory / input" divides that increment by
  the bytes of the input tensor.
* **References** (`benchmarks/`): `dense_reference.py` holds the published
  formulations (1x1 convolutions + `bmm`, written from the equations) built
  from our unit's weights, and their padded-dense variant for point clouds
  (`to_dense_batch`); `naive.py` swaps the unit's two bipartite stages for
  PyG `MessagePassing` over an explicit complete bipartite `edge_index`
  (built once, outside the timing).
* **Compute**: FLOPs of one forward + backward are counted with
  `torch.utils.flop_counter.FlopCounterMode` (plus the in-place
  `addmm_`/`baddbmm_`, missing from its table); every `mm`/`bmm`/`addmm`/
  `baddbmm` (in place or not) the unit runs is logged (shapes and strides)
  and replayed with
  `torch.mm`/`torch.bmm` on random tensors, timed side by side with the
  unit.  The replay's operands are built before each of its rounds and
  freed after it (untimed), so that they are not resident while the unit
  runs: on this machine a few GB of extra resident memory make every page
  fault, and so every new large tensor, markedly slower.  The ratio of the
  two FLOP rates says how close the unit runs to the machine's matmul
  speed on its own matrix shapes.
* **Allocator**: glibc returns every freed block over 32 MB to the kernel,
  so each new large tensor faults its pages in again (about 70 ms per
  256 MB here), in the `torch.mm` replay, in the naive version and in
  autograd's own tensors inside the unit; the unit's own buffers over
  8 MB come from its buffer cache (`glore_pyg.functional.memory`), which
  hands them out again without new faults.  The two rows marked
  "allocator keeping freed memory" repeat the plain path's FLOP rate and
  the speed-up over the naive version in a child process started with
  `GLIBC_TUNABLES={MALLOC_REUSE}`, which keeps freed memory in the process
  (what jemalloc or tcmalloc, PyTorch's CPU tuning advice, do).  Much of
  the naive version's time under glibc's defaults is its per-edge tensors
  (one row per edge, `E = N * d`: hundreds of MB each) faulting in fresh
  memory; with an allocator that keeps freed memory it runs several times
  faster, and the speed-up over it is correspondingly smaller (compare the
  two rows).
* **Non-local**: the largest `N` is searched by doubling, then bisection to
  about 10%, each trial in a fresh process under the address-space limit.
"""
    Path(path).write_text(doc)


SECTIONS = ('grid', 'clouds', 'scale', 'compute', 'nonlocal')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--write', action='store_true',
                   help='regenerate docs/benchmarks.md')
    p.add_argument('--quick', action='store_true',
                   help='tiny sizes: check that every path runs')
    p.add_argument('--chunk-size', type=int, default=None,
                   help='chunk_size of the lean path (default: 65536; '
                   '1024 with --quick)')
    p.add_argument('--only', default=','.join(SECTIONS),
                   help='comma-separated sections to run (default: all: '
                   f'{",".join(SECTIONS)}); --write needs all of them')
    p.add_argument('--malloc-reuse-child', action='store_true',
                   help=argparse.SUPPRESS)  # see compute_section
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.malloc_reuse_child:
        if args.quick:
            torch.set_num_threads(1)
        rows = []
        malloc_reuse_rows(cfg, rows)
        print(json.dumps(rows))
        return rows
    only = args.only.split(',')
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        p.error(f'unknown section(s) {unknown}; choose from {SECTIONS}')
    if args.write and set(only) != set(SECTIONS):
        p.error('--write regenerates the whole table: run every section')
    chunk = args.chunk_size or (1024 if args.quick else 65536)
    limit = memory_limit()
    start, rows = time.time(), []
    threads = torch.get_num_threads()
    if args.quick:  # tiny ops: spare threads only wait on each other
        torch.set_num_threads(1)
    try:
        sections = {
            'grid': lambda: grid_section(cfg, rows, limit),
            'clouds': lambda: clouds_section(cfg, rows, limit),
            'scale': lambda: scale_section(cfg, rows, limit, chunk),
            'compute': lambda: compute_section(cfg, rows, chunk, args.quick),
            'nonlocal': lambda: nonlocal_section(cfg, rows, limit),
        }
        for name in SECTIONS:
            if name in only:
                sections[name]()
    finally:
        torch.set_num_threads(threads)
    seconds = time.time() - start
    print(table(rows))
    print(f'\n{os.cpu_count()} cores, {torch.get_num_threads()} threads, '
          f'torch {torch.__version__}, torch_geometric '
          f'{torch_geometric.__version__}; {seconds:.0f} s')
    if args.write:
        command = 'python benchmarks/suite.py --write' + (
            ' --quick' if args.quick else '') + (
            f' --chunk-size {args.chunk_size}' if args.chunk_size else '')
        write_doc(HERE.parent / 'docs' / 'benchmarks.md', command, rows,
                  seconds)
    return rows


if __name__ == '__main__':
    main()

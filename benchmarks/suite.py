"""The benchmark suite: our units against the published dense formulation
(eager and compiled), padded dense batches, a latent cross-attention block
on ``scaled_dot_product_attention``, naive per-edge message passing and the
dense non-local block, forward + backward on CPU (float32).

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
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch_geometric
from torch.nn.modules.batchnorm import _BatchNorm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dense_reference import DenseGloRe, DenseLatentGNN, Padded  # noqa: E402
from latent_attention import LatentCrossAttention  # noqa: E402
from measure import (GiB, fwd_bwd, memory_limit, peak_rss,  # noqa: E402
                     time_in_fresh_processes, time_side_by_side)
from naive import naive  # noqa: E402

from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNN2d,  # noqa: E402
                          LatentGNNConv, NonLocalConv, node_unit)

BUILDER = (str(Path(__file__).resolve()), 'build')

FULL = dict(
    grid=dict(B=4, C=256, H=64, W=64, d=64),
    clouds=dict(sizes=[2000 * (i + 1) for i in range(8)], C=128, d=64),
    points=dict(C=64, d=64, channel_stride=1),
    scale_n=4_000_000, dense_n=1_000_000,
    nonlocal_=dict(C=64, d=64, start=4096, memory=20 * GiB, seconds=300),
    repeat=7, naive_repeat=3, memory_steps=5, scale_memory_steps=2,
    processes=5, memory_processes=3)
QUICK = dict(
    grid=dict(B=2, C=16, H=6, W=5, d=4),
    clouds=dict(sizes=[20, 40, 60], C=16, d=4),
    points=dict(C=8, d=4, channel_stride=1),
    scale_n=4000, dense_n=1000,
    nonlocal_=dict(C=8, d=4, start=256, memory=int(1.2 * GiB), seconds=60),
    repeat=2, naive_repeat=1, memory_steps=2, scale_memory_steps=2,
    processes=1, memory_processes=1)


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
        inner = node_unit(unit)
        if hasattr(inner, 'gamma'):
            inner.gamma.fill_(0.7)
    return unit


def randn(*shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    return x.requires_grad_()


def cloud_inputs(sizes, C):
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    return randn(batch.numel(), C), batch


def build(case, impl, unit='latentgnn', seed=0, compiled=False, **kw):
    """``(module, make_inputs(tiny))`` of one case; ``compiled`` wraps the
    module in ``torch.compile`` (its compilation is part of the warm-up)."""
    module, make = _build(case, impl, unit, seed, **kw)
    return (torch.compile(module) if compiled else module), make


def _build(case, impl, unit, seed, **kw):
    torch.manual_seed(seed)
    C, d = kw['C'], kw['d']
    dense = {'latentgnn': DenseLatentGNN, 'glore': DenseGloRe}[unit]
    if case == 'grid':
        u = LatentGNN2d(C, [d]) if unit == 'latentgnn' else GloRe2d(C, d)
        u = randomize(u, seed)
        module = u if impl == 'ours' else dense(u)
        B, H, W = kw['B'], kw['H'], kw['W']
        layout = {'contiguous': torch.contiguous_format,
                  'channels_last': torch.channels_last}[
            kw.get('memory_format', 'contiguous')]
        return module, lambda tiny: ((randn(1, C, 3, 2) if tiny else
                                      randn(B, C, H, W)).contiguous(
            memory_format=layout), )
    if case == 'clouds':
        u = randomize(LatentGNNConv(C, [d]) if unit == 'latentgnn' else
                      GloReConv(C, d, normalize=True), seed)
        module = {'ours': lambda: u, 'naive': lambda: naive(u),
                  'padded': lambda: Padded(dense(u)),
                  'attention': lambda: LatentCrossAttention(C, d)}[impl]()
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


def fmt_spread(r):
    ratio = fmt_ratio(r['ratio'])
    if r.get('spread') is None:
        return ratio
    lo, hi = r['spread']
    return f'{ratio} ({lo:.3g}-{hi:.3g})'


def row(rows, key, comparison, ours, ref, ratio, target=None, met=None,
        diff=None, spread=None):
    rows.append(dict(key=key, comparison=comparison, ours=ours, ref=ref,
                     ratio=ratio, target=target, met=met, diff=diff,
                     spread=spread))
    print(f'  {comparison}: {ours} vs {ref}, ratio {fmt_spread(rows[-1])}'
          f'{"" if target is None else f" (target {target}: {met})"}',
          file=sys.stderr, flush=True)


def table(rows):
    lines = ['| Comparison | Ours | Reference | Ratio | Target | Met | '
             'max \\|ours - ref\\| |', '|---' * 7 + '|']
    for r in rows:
        ratio = fmt_spread(r)
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
def side_by_side(cfg, kw, compiled=False):
    """Our unit and the dense published formulation on the same input,
    timed side by side in ``cfg['processes']`` fresh processes: the median
    over the processes of each process's ratio, its spread (lowest,
    highest), the medians of the times and the largest output
    difference."""
    r = time_in_fresh_processes(
        BUILDER, {impl: dict(impl=impl, **kw) for impl in ('ours', 'dense')},
        cfg['processes'], cfg['repeat'], compiled=compiled)
    t = r['times']
    ratios = [a / b for a, b in zip(t['ours'], t['dense'])]
    return dict(ratio=statistics.median(ratios),
                spread=(min(ratios), max(ratios)),
                ours=statistics.median(t['ours']),
                dense=statistics.median(t['dense']), diff=r['diff'])


GRID_FORMATS = ('contiguous', 'channels_last')


def grid_section(cfg, rows, limit):
    g = cfg['grid']
    for unit, name in (('latentgnn', 'LatentGNN2d'), ('glore', 'GloRe2d')):
        for layout in GRID_FORMATS:
            kw = dict(case='grid', unit=unit, memory_format=layout, **g)
            key = f'grid-{unit}' + ('' if layout == 'contiguous' else '-cl')
            what = (f"{name}, B={g['B']}, C={g['C']}, {g['H']}x{g['W']}, "
                    f"d={g['d']}, {layout.replace('_', ' ')}")
            log(f'grid {name} {layout}')
            t = side_by_side(cfg, kw)
            row(rows, f'{key}-time', f'{what}: time (eager)',
                fmt_time(t['ours']), f"dense published {fmt_time(t['dense'])}",
                t['ratio'], '<= 1.0x', t['ratio'] <= 1.0, t['diff'],
                spread=t['spread'])
            log(f'grid {name} {layout}, compiled')
            t = side_by_side(cfg, kw, compiled=True)
            row(rows, f'{key}-compiled', f'{what}: time, both '
                '`torch.compile`d', fmt_time(t['ours']),
                f"dense published compiled {fmt_time(t['dense'])}",
                t['ratio'], '<= 1.0x', t['ratio'] <= 1.0, t['diff'],
                spread=t['spread'])
            m = grid_memory(cfg, limit, kw)
            row(rows, f'{key}-memory', f'{what}: peak memory',
                fmt_mem(m['ours']), f"dense published {fmt_mem(m['dense'])}",
                m['ratio'], '<= 1.0x',
                m['ratio'] is not None and m['ratio'] <= 1.0,
                spread=m['spread'])


def grid_memory(cfg, limit, kw):
    """Peak memory of our unit and the dense published formulation, each
    in its own fresh process, ``cfg['memory_processes']`` pairs: the median
    of the pairs' ratios and its spread, and the pair with the median
    ratio."""
    pairs = []
    for _ in range(cfg['memory_processes']):
        m = {impl: memory(impl, limit, cfg['memory_steps'], **kw)
             for impl in ('ours', 'dense')}
        pairs.append((memory_ratio(m['ours'], m['dense']), m))
    if any(r is None for r, _ in pairs):
        return dict(ratio=None, spread=None, **pairs[0][1])
    pairs.sort(key=lambda p: p[0])
    ratios = [r for r, _ in pairs]
    mid = pairs[len(pairs) // 2]
    return dict(ratio=mid[0], spread=(ratios[0], ratios[-1]), **mid[1])


CLOUD_UNITS = ('latentgnn', 'glore')


def cloud_unit_name(c, unit):
    return (f"LatentGNNConv({c['C']}, [{c['d']}])" if unit == 'latentgnn'
            else f"GloReConv({c['C']}, {c['d']}, normalize=True)")


def cloud_case(c, unit):
    return (f"{len(c['sizes'])} clouds of {c['sizes'][0]}-"
            f"{c['sizes'][-1]} points, {cloud_unit_name(c, unit)}")


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
        tn = time_side_by_side({'ours': fwd_bwd(ours, inputs),
                                'naive': fwd_bwd(nv, inputs)},
                               cfg['naive_repeat'], warmup=0)
        log(f'clouds {cloud_unit_name(c, unit)}, compiled')
        ours_c = torch.compile(ours)
        diff_c = max_diff(ours_c, ours, inputs)
        tc = time_side_by_side({'compiled': fwd_bwd(ours_c, inputs),
                                'ours': fwd_bwd(ours, inputs)},
                               cfg['repeat'])
        ta = None
        if unit == 'latentgnn':
            att = build(impl='attention', **kw)[0]
            ta = time_side_by_side({'ours': fwd_bwd(ours, inputs),
                                    'attention': fwd_bwd(att, inputs)},
                                   cfg['repeat'])
            del att
        del ours, ours_c, padded, nv, inputs
        gc.collect()
        torch.compiler.reset()
        impls = ('ours', 'padded', 'naive') + (
            ('attention', ) if unit == 'latentgnn' else ())
        m = {impl: memory(impl, limit, cfg['memory_steps'], **kw)
             for impl in impls}
        what = cloud_case(c, unit)
        ratio = t['ours'] / t['padded']
        row(rows, f'clouds-{unit}-time', f'{what}: time (eager)',
            fmt_time(t['ours']), f"padded dense bmm {fmt_time(t['padded'])}",
            ratio, '<= 0.5x', ratio <= 0.5, diff_p)
        ratio = memory_ratio(m['ours'], m['padded'])
        row(rows, f'clouds-{unit}-memory', f'{what}: peak memory',
            fmt_mem(m['ours']), f"padded dense bmm {fmt_mem(m['padded'])}",
            ratio, '<= 1.0x', ratio is not None and ratio <= 1.0)
        row(rows, f'clouds-{unit}-compiled', f'{what}: time, '
            '`torch.compile`d (one graph break: the sample sizes)',
            fmt_time(tc['compiled']), f"eager {fmt_time(tc['ours'])}",
            tc['compiled'] / tc['ours'], diff=diff_c)
        if ta is not None:
            row(rows, f'clouds-{unit}-attention', f'{what}: time, against '
                'latent cross-attention on `scaled_dot_product_attention` '
                f"(ISAB / Perceiver, {c['d']} latents, {c['C'] // 4} "
                'channels)', fmt_time(ta['ours']),
                f"latent attention {fmt_time(ta['attention'])}",
                ta['ours'] / ta['attention'])
            row(rows, f'clouds-{unit}-attention-memory', f'{what}: peak '
                'memory, against the latent cross-attention block',
                fmt_mem(m['ours']),
                f"latent attention {fmt_mem(m['attention'])}",
                memory_ratio(m['ours'], m['attention']))
        speedup = tn['naive'] / tn['ours']
        row(rows, f'clouds-{unit}-naive', f'{what}: speed-up over naive '
            'per-edge MessagePassing (informative)',
            f"{fmt_time(tn['ours'])} (memory {fmt_mem(m['ours'])})",
            f"naive {fmt_time(tn['naive'])} (memory "
            f"{fmt_mem(m['naive'])})", speedup, diff=diff_n)


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
* float32, forward + backward, BatchNorm in training mode; times with a
  dense random gradient into the output (as from a real loss), memory with
  `loss = out.sum()` (no gradient tensor)

{table(rows)}

Ratios are ours / reference, except the speed-up over naive message passing
(naive / ours).  The last column is the largest absolute difference between
the outputs of our unit and of the reference on the benchmark input (same
weights; for the compiled point-cloud row, between compiled and eager).
Rows without a target are informative.

## Method

* **Time**: the cases of one comparison run in one process, alternately,
  the order rotating from round to round (what ran just before a case
  changes its time by several percent here), after a warm-up run (for
  `torch.compile`d modules the warm-up includes compilation); each figure
  is the median of {FULL['repeat']} rounds ({FULL['naive_repeat']} against
  the naive version).  The grid rows run so in each of
  {FULL['processes']} fresh processes, one after the other (after 2
  warm-up rounds): the ratio is the median of the {FULL['processes']}
  processes' ratios, and the lowest and highest of them follow in
  parentheses (a process's allocator state and memory layout move a ratio
  by several percent here; a fresh process per measurement keeps one of
  them from deciding the row).  Compare the ratios, which are measured
  side by side, rather than the absolute times.
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
  gradients, but not the interpreter and the libraries.  The grid rows
  measure {FULL['memory_processes']} such pairs (ours, published) and show
  the median pair's figures and ratio, with the lowest and highest ratio in
  parentheses.  Where the first
  pass peaked lower, its figure follows in parentheses: freed blocks of one
  step do not always fit the next step's requests, so an allocator's
  footprint can grow over the first few steps.  "Peak memory / input"
  divides that increment by the bytes of the input tensor.  The process
  runs with glibc's default allocator; what other allocators change is in
  `docs/performance.md`.
* **References** (`benchmarks/`): `dense_reference.py` holds the published
  formulations (1x1 convolutions + `bmm`, written from the equations) built
  from our unit's weights, and their padded-dense variant for point clouds
  (`to_dense_batch`); `latent_attention.py` a latent cross-attention block
  (ISAB / Perceiver) on `torch.nn.functional.scaled_dot_product_attention`
  with the same number of latents and inner channels; `naive.py` swaps the
  unit's two bipartite stages for PyG `MessagePassing` over an explicit
  complete bipartite `edge_index` (built once, outside the timing).
* **Non-local**: the largest `N` is searched by doubling, then bisection to
  about 10%, each trial in a fresh process under the address-space limit.
"""
    Path(path).write_text(doc)


SECTIONS = ('grid', 'clouds', 'scale', 'nonlocal')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--write', action='store_true',
                   help='regenerate docs/benchmarks.md')
    p.add_argument('--quick', action='store_true',
                   help='tiny sizes: check that every path runs')
    p.add_argument('--chunk-size', type=int, default=None,
                   help='chunk_size of the lean path (default: 262144; '
                   '1024 with --quick)')
    p.add_argument('--only', default=','.join(SECTIONS),
                   help='comma-separated sections to run (default: all: '
                   f'{",".join(SECTIONS)}); --write needs all of them')
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    only = args.only.split(',')
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        p.error(f'unknown section(s) {unknown}; choose from {SECTIONS}')
    if args.write and set(only) != set(SECTIONS):
        p.error('--write regenerates the whole table: run every section')
    chunk = args.chunk_size or (1024 if args.quick else 262144)
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

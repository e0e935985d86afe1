"""The benchmark suite's grid and cloud rows on a CUDA device: our units
against the published dense formulation built from the same weights
(``benchmarks/suite.py``'s cases), forward + backward, eager and
``torch.compile``d, contiguous and ``channels_last`` maps, float32 and
bfloat16 autocast; the time is the median of interleaved rounds (CUDA
events around each step, after warm-up), the memory
``torch.cuda.max_memory_allocated`` of one step above what the inputs and
weights hold.

    python benchmarks/cuda_rows.py                 # the full sizes
    python benchmarks/cuda_rows.py --quick         # a smoke run

Prints a Markdown table; exits with an error without a CUDA device.
"""
import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import FULL, QUICK, build  # noqa: E402


def _step(module, inputs, autocast):
    """One forward + backward with a fixed dense output gradient."""
    grad = []

    def run():
        for t in inputs:
            if isinstance(t, torch.Tensor) and t.requires_grad:
                t.grad = None
        for p in module.parameters():
            p.grad = None
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=autocast):
            out = module(*inputs)
        if not grad:
            grad.append(torch.randn(out.shape, device=out.device,
                                    dtype=out.dtype))
        out.backward(grad[0])
    return run


def _cases(cfg):
    """name -> (case, impl, unit, kwargs, channels_last, compiled,
    autocast); each pair of rows compares ours with the reference."""
    grid, clouds = cfg['grid'], cfg['clouds']
    out = {}
    for unit in ('latentgnn', 'glore'):
        for layout in ('contiguous', 'channels_last'):
            for compiled in (False, True):
                for autocast in (False, True):
                    tag = (f"{unit} grid {layout}"
                           f"{' compiled' if compiled else ''}"
                           f"{' bf16' if autocast else ''}")
                    for impl in ('ours', 'dense'):
                        out[(tag, impl)] = ('grid', impl, unit, grid,
                                            layout == 'channels_last',
                                            compiled, autocast)
        for impl in ('ours', 'padded'):
            out[(f'{unit} clouds', impl)] = ('clouds', impl, unit, clouds,
                                             False, False, False)
    return out


def _prepare(spec):
    case, impl, unit, kw, channels_last, compiled, autocast = spec
    module, make = build(case, impl, unit=unit, compiled=compiled, **kw)
    module = module.cuda()
    inputs = [t.detach().cuda().requires_grad_(t.requires_grad)
              if isinstance(t, torch.Tensor) else t
              for t in make(tiny=False)]
    if channels_last:
        inputs[0] = inputs[0].detach().contiguous(
            memory_format=torch.channels_last).requires_grad_()
    return _step(module, inputs, autocast)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true')
    p.add_argument('--rounds', type=int, default=20)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit('cuda_rows.py: no CUDA device')
    cfg = QUICK if args.quick else FULL
    cases = _cases(cfg)
    steps = {key: _prepare(spec) for key, spec in cases.items()}
    for run in steps.values():  # warm-up (compilation included)
        run()
        run()
    torch.cuda.synchronize()
    times = {key: [] for key in steps}
    keys = list(steps)
    for r in range(args.rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            steps[key]()
            end.record()
            torch.cuda.synchronize()
            times[key].append(start.elapsed_time(end))
    memory = {}
    for key, run in steps.items():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        memory[key] = torch.cuda.max_memory_allocated() - base
    print(f'device: {torch.cuda.get_device_name()}, torch {torch.__version__}'
          f', {args.rounds} interleaved rounds')
    print('| row | ours ms | reference ms | time ratio | ours MB | '
          'reference MB | memory ratio |')
    print('|---|---|---|---|---|---|---|')
    tags = dict.fromkeys(tag for tag, _ in cases)
    for tag in tags:
        ref = 'padded' if 'clouds' in tag else 'dense'
        t_o = statistics.median(times[(tag, 'ours')])
        t_r = statistics.median(times[(tag, ref)])
        m_o, m_r = memory[(tag, 'ours')], memory[(tag, ref)]
        print(f'| {tag} (reference: {ref}) | {t_o:.2f} | {t_r:.2f} | '
              f'{t_o / t_r:.2f}x | {m_o / 2**20:.0f} | {m_r / 2**20:.0f} | '
              f'{m_o / max(m_r, 1):.2f}x |')


if __name__ == '__main__':
    main()

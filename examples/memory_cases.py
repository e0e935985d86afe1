"""One memory / time measurement of a unit, in a fresh process under a
memory limit: the cases of ``gnn_vs_latentgnn_memory.ipynb``.

    python examples/memory_cases.py '{"unit": "nonlocal", "layout": "grid",
                                      "n": 4096, "channels": 64, "d": 64}'

prints one JSON line: ``ok``, ``oom``, the peak memory of the forward pass
and of forward + backward (bytes over the process's state before the input
was made: resident memory on CPU, ``torch.cuda.max_memory_allocated`` on a
GPU), their times (seconds, the second of two runs), and the bytes autograd
saved for backward (exact, from ``torch.autograd.graph.saved_tensors_hooks``:
the distinct storages the saved tensors keep alive, each counted once; the
activation memory the equations imply, free of allocator effects).
:func:`measure` runs it from Python with a memory limit (``RLIMIT_AS``), so
that running out of memory is a result, not a crash.
"""
import json
import os
import resource
import subprocess
import sys
import time

UNITS = ('nonlocal', 'latentgnn', 'latentgnn_chunked', 'glore')


def build(unit: str, layout: str, channels: int, d: int):
    from glore_pyg.nn import create_unit
    spec = {'nonlocal': f'nonlocal:inter_channels={max(channels // 2, 1)}',
            'latentgnn': f'latentgnn:d={d},channel_stride=1',
            'latentgnn_chunked': f'latentgnn:d={d},channel_stride=1,'
                                 f'chunk_size=262144',
            'glore': f'glore:num_mid={d}'}[unit]
    return create_unit(spec, channels, dims=2 if layout == 'grid' else 0)


def _rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(case: dict) -> dict:
    import torch
    torch.manual_seed(0)
    cuda = case.get('device', 'cpu') == 'cuda'
    dev = torch.device('cuda' if cuda else 'cpu')
    n, c = case['n'], case['channels']
    unit = build(case['unit'], case['layout'], c, case['d']).to(dev)

    def make():
        if case['layout'] == 'grid':  # one square image of n positions
            side = int(round(n ** 0.5))
            return torch.randn(1, c, side, side, device=dev,
                               requires_grad=True)
        return torch.randn(n, c, device=dev, requires_grad=True)

    tiny = (torch.randn(1, c, 2, 2, device=dev) if case['layout'] == 'grid'
            else torch.randn(4, c, device=dev)).requires_grad_()
    unit(tiny).sum().backward()  # lazy state of the libraries
    result = dict(case, ok=False, oom=False)
    try:
        for repeat in range(2):  # the second run is timed
            x = make()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            elif repeat == 0:
                base = _rss()
            saved = {}  # storage -> bytes: a tensor saved twice counts once

            def pack(t):
                storage = t.untyped_storage()
                saved[storage.data_ptr()] = storage.nbytes()
                return t
            t0 = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = unit(x)
            if cuda:
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            fwd = (torch.cuda.max_memory_allocated() if cuda else _peak())
            out.sum().backward()
            if cuda:
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            both = (torch.cuda.max_memory_allocated() if cuda else _peak())
            result.update(forward_bytes=fwd - base, total_bytes=both - base,
                          forward_seconds=t1 - t0, total_seconds=t2 - t0,
                          saved_bytes=sum(saved.values()),
                          input_bytes=x.nbytes)
            del x, out
        result['ok'] = True
    except (MemoryError, RuntimeError) as e:
        text = str(e)
        result['oom'] = isinstance(e, MemoryError) or any(
            m in text for m in ("can't allocate", 'out of memory',
                                'bad_alloc', 'DefaultCPUAllocator'))
        if not result['oom']:
            raise
        result['error'] = text.splitlines()[0][:200]
    return result


def measure(case: dict, limit_bytes: int, timeout: float = 900) -> dict:
    """Runs ``case`` in a fresh process whose address space is limited to
    ``limit_bytes`` (CPU); returns the child's result, with ``oom=True``
    when it ran out of memory or was killed."""
    def limit():  # in the child, before Python starts
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), json.dumps(case)],
        capture_output=True, text=True, timeout=timeout,
        preexec_fn=None if case.get('device') == 'cuda' else limit)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    return dict(case, ok=False, oom=True,
                error=(proc.stderr.strip().splitlines() or ['killed'])[-1])


if __name__ == '__main__':
    print(json.dumps(run(json.loads(sys.argv[1]))))

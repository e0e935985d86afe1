"""Measurement helpers of the benchmarks.

* :func:`time_side_by_side`: forward + backward (:func:`fwd_bwd`) of
  several cases in one process, alternating case after case each round,
  after warm-up; the median of each.  Ratios of medians taken this way are
  robust to a noisy machine, absolute times much less so.
* :func:`time_in_fresh_processes`: the same in each of several fresh
  processes, one median per case and process: what one process's allocator
  and memory layout happened to be no longer decides a ratio, and the
  spread over the processes says how far one run can be trusted.
* :func:`peak_rss`: peak resident memory of one case in a fresh process (a
  fork of a server that has only imported the libraries).  The child builds
  the module, runs a tiny forward + backward (lazy library state), records
  its current RSS as the baseline, creates the full input, runs forward +
  backward and reports ``getrusage`` peak RSS.  The *increment* (peak -
  baseline) includes the input tensor and the gradients; it is what the
  comparisons use.  An address-space limit (``RLIMIT_AS``) turns running
  out of memory into a reported failure instead of an OOM-killed machine.
"""
import gc
import importlib.util
import multiprocessing
import os
import resource
import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from glore_pyg.functional.checks import check_int

GiB = 1 << 30


def fwd_bwd(module: Callable, inputs: Sequence,
            dense_grad: bool = True) -> Callable[[], None]:
    """One forward + backward of ``module(*inputs)``, as a closure.

    ``dense_grad``: the output's gradient is a fixed random tensor (made at
    the first call, seeded, not timed), as a downstream layer and a real
    loss send it; else ``out.sum()``, whose gradient is an expanded
    (stride-0) tensor that no extra memory holds, which the memory
    measurements use (several CPU kernels, BatchNorm's backward among
    them, run an expanded gradient much more slowly than a dense one)."""
    params = [p for p in getattr(module, 'parameters', list)()]
    grad = []

    def run():
        for t in list(inputs) + params:
            if isinstance(t, torch.Tensor):
                t.grad = None
        out = module(*inputs)
        if not dense_grad:
            out.sum().backward()
            return
        if not grad:
            g = torch.Generator().manual_seed(2)
            grad.append(torch.randn(out.shape, generator=g, dtype=out.dtype))
        out.backward(grad[0])
    return run


def time_side_by_side(fns: Dict[str, Callable], repeat: int = 5,
                      warmup: int = 1,
                      build: Sequence[str] = ()) -> Dict[str, float]:
    """Median seconds of each closure, run alternately, the order rotating
    from round to round (what runs just before a case, and what it left in
    the allocator, changes its time by several percent here).  For the
    names in ``build``, ``fns[name]`` is a factory: each round builds the
    closure (untimed) and drops it after its run, so that its data is not
    resident while the other cases run (a few GB resident make page faults,
    and so every large new tensor, markedly slower on this machine)."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(warmup + repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            if name in build:
                fn = fn()
            t = time.perf_counter()
            fn()
            t = time.perf_counter() - t
            del fn
            gc.collect()
            if r >= warmup:
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


# -- peak RSS in a fresh process ---------------------------------------------
def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def memory_limit(cap: int = 20 * GiB) -> int:
    """``cap``, or less if the machine has less memory available."""
    with open('/proc/meminfo') as f:
        avail = next(int(line.split()[1]) * 1024 for line in f
                     if line.startswith('MemAvailable'))
    return min(cap, avail - GiB)


_context = None


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context('forkserver')
        _context.set_forkserver_preload(['torch', 'torch_geometric',
                                         'glore_pyg.nn'])
    return _context


def load_builder(path: str, name: str) -> Callable:
    spec = importlib.util.spec_from_file_location('_benchmark_builder', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _child(conn, builder: Tuple[str, str], kwargs: dict, limit: int,
           threads: int, steps: int):
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        torch.set_num_threads(threads)
        module, make_inputs = load_builder(*builder)(**kwargs)
        fwd_bwd(module, make_inputs(tiny=True), dense_grad=False)()
        gc.collect()
        base = rss_bytes()
        inputs = make_inputs(tiny=False)
        step = fwd_bwd(module, inputs, dense_grad=False)
        peaks, t = [], time.perf_counter()
        for i in range(steps):
            step()
            if i == 0:
                t = time.perf_counter() - t
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                         * 1024)
        conn.send(dict(ok=True, peak=peaks[-1], base=base,
                       increment=peaks[-1] - base,
                       first_increment=peaks[0] - base,
                       input_bytes=inputs[0].nbytes, seconds=t))
    except Exception as e:  # noqa: BLE001 -- reported to the parent
        oom = isinstance(e, MemoryError) or any(
            m in str(e) for m in ("can't allocate", 'bad_alloc'))
        conn.send(dict(ok=False, oom=oom, error=f'{type(e).__name__}: '
                       f'{str(e).splitlines()[0][:200]}'))


def peak_rss(builder: Tuple[str, str], kwargs: dict, limit: int,
             steps: int = 1) -> dict:
    """Runs ``builder(**kwargs) -> (module, make_inputs)`` in a fresh
    process under an address-space ``limit``, with the caller's number of
    threads, for ``steps`` forward + backward passes on the full input;
    returns ``ok``, and ``peak`` (over all steps), ``base``, ``increment``
    (``peak - base``), ``first_increment`` (the same after the first step),
    ``input_bytes`` (bytes), ``seconds`` (the first forward + backward), or
    ``oom`` and ``error``.  (The allocator's footprint can grow over the
    first few steps: freed blocks of one step do not always fit the
    next step's requests.)  As with any ``multiprocessing`` start method
    but fork, the calling script needs an ``if __name__ == '__main__':``
    guard."""
    steps = check_int(steps, 'steps', minimum=1)
    ctx = _forkserver()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, builder, kwargs, limit,
                                             torch.get_num_threads(), steps))
    child.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:  # crashed, or killed (SIGKILL: the kernel's OOM killer)
        result = None
    child.join()
    return result or dict(ok=False, oom=child.exitcode == -9,
                          error=f'child exited with {child.exitcode}')


# -- times in fresh processes --------------------------------------------------
def _time_child(conn, builder: Tuple[str, str], cases: Dict[str, dict],
                threads: int, repeat: int, warmup: int, compiled: bool):
    try:
        torch.set_num_threads(threads)
        build = load_builder(*builder)
        modules, inputs = {}, None
        for name, kwargs in cases.items():
            module, make_inputs = build(**kwargs)
            modules[name] = torch.compile(module) if compiled else module
            if inputs is None:  # the same input for every case
                inputs = make_inputs(tiny=False)
        names = list(modules)
        with torch.no_grad():
            outs = [modules[n](*inputs) for n in names[:2]]
            diff = (outs[0] - outs[1]).abs().max().item() if len(outs) == 2 \
                else None
        del outs
        times = time_side_by_side(
            {n: fwd_bwd(m, inputs) for n, m in modules.items()}, repeat,
            warmup)
        conn.send(dict(ok=True, times=times, diff=diff))
    except Exception as e:  # noqa: BLE001 -- reported to the parent
        conn.send(dict(ok=False, error=f'{type(e).__name__}: '
                       f'{str(e).splitlines()[0][:200]}'))


def time_in_fresh_processes(builder: Tuple[str, str], cases: Dict[str, dict],
                            processes: int = 3, repeat: int = 7,
                            warmup: int = 2, compiled: bool = False
                            ) -> Dict[str, object]:
    """:func:`time_side_by_side` of the cases ``builder(**cases[name]) ->
    (module, make_inputs)`` (all on the first case's input), in each of
    ``processes`` fresh processes one after the other, with the caller's
    number of threads; ``compiled`` wraps each module in
    :func:`torch.compile` (compilation is part of the warm-up).  Returns
    ``times``: per case, the list of per-process medians (seconds), and
    ``diff``: the largest absolute difference between the first two cases'
    outputs (first process).

    Raises:
        RuntimeError: a process failed (its error message)."""
    processes = check_int(processes, 'processes', minimum=1)
    ctx = _forkserver()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    diff = None
    for _ in range(processes):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_time_child, args=(
            send, builder, cases, torch.get_num_threads(), repeat, warmup,
            compiled))
        child.start()
        send.close()
        try:
            result = receive.recv()
        except EOFError:
            result = dict(ok=False, error='the process died')
        child.join()
        if not result['ok']:
            raise RuntimeError(f'{cases}: {result["error"]}')
        for name, t in result['times'].items():
            times[name].append(t)
        if diff is None:
            diff = result['diff']
    return dict(times=times, diff=diff)

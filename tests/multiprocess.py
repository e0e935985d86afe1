"""Runs a test case on several gloo processes on this machine: each process
imports the test module and calls ``module.CASES[case](rank, world,
*args)``; the test fails with the first rank's traceback, or after a
timeout (a case that would hang fails, it never blocks the run)."""
import importlib
import os
import socket
import tempfile
import time
import traceback
from datetime import timedelta

import pytest

TIMEOUT = 120  # seconds for a whole multi-process case
COLLECTIVE_TIMEOUT = 60  # seconds before a collective gives up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, module, case, args, folder):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)  # several processes share the machine
    try:
        dist.init_process_group(
            'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
            world_size=world, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT))
        importlib.import_module(module).CASES[case](rank, world, *args)
        dist.barrier()
    except Exception:  # noqa: BLE001 - reported to the test through a file
        with open(os.path.join(folder, f'rank{rank}.err'), 'w') as f:
            f.write(traceback.format_exc())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run(module: str, case: str, world: int, *args,
        timeout: float = TIMEOUT) -> None:
    """Runs ``CASES[case]`` of the test module ``module`` (its import name)
    on ``world`` gloo processes."""
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory() as folder:
        ctx = mp.start_processes(_worker, args=(world, free_port(), module,
                                                case, args, folder),
                                 nprocs=world, join=False,
                                 start_method='spawn')
        deadline = time.monotonic() + timeout
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail(f'{case} on {world} processes did not end in '
                            f'{timeout} s')
        errors = sorted(f for f in os.listdir(folder) if f.endswith('.err'))
        if errors:
            with open(os.path.join(folder, errors[0])) as f:
                pytest.fail(f'{errors[0]}:\n{f.read()}')

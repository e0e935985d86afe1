"""Training on one and on two processes, measured side by side: the epoch
times of the two applications' presets, and what the processes send each
other per training step.

    python benchmarks/distributed.py                 # both parts
    python benchmarks/distributed.py --part bytes    # communication only
    python benchmarks/distributed.py --part times --epochs 3

**Communication** is counted by the PyTorch profiler: every
``gloo:all_reduce`` / ``gloo:broadcast`` of one training step of the
network the command line trains (its BatchNorms replaced by
:class:`~glore_pyg.nn.DistributedBatchNorm`, wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` with Lightning's
defaults), its elements times 4 bytes, on 2 CPU processes over gloo.  The
expected all-reduced count is printed beside it: DDP's gradient
all-reduce (every parameter), 4 all-reduces of ``4C+2`` numbers in all
per BatchNorm of ``C`` channels (sums and count, then squared deviations,
forward; their gradients, backward) and the one number of the loss's
count.  DDP also broadcasts the buffers from the first process before each
forward (``broadcast_buffers=True``, Lightning's default).  The seconds per
step (forward and backward, mean of 10) compare the synchronised
BatchNorms with the same network whose BatchNorms stay per process.

**Times** are ``seconds_per_epoch`` of ``result.json`` (Lightning's
``Timer``: training only) of ``glore-pyg segment fit`` (synthetic preset)
and ``glore-pyg classify fit`` (digits preset), one process with batch
``B`` against two processes of ``B/2``, run one after the other in fresh
processes: do not run anything else meanwhile.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# bytes per step
# --------------------------------------------------------------------------
def _application(name: str):
    """``(task, batch)`` of the preset the command line trains, with a
    unit (the docs' examples), and a half global batch."""
    if name == 'segment':
        from glore_pyg.apps.segmentation.task import (SegmentationData,
                                                      SegmentationTask)
        data = SegmentationData('synthetic', num_points=2048, train_size=8,
                                val_size=2, batch_size=4)
        task = SegmentationTask(units={'sa3': 'glore'},
                                in_channels=data.in_channels,
                                num_classes=data.num_classes,
                                class_weights=data.class_weights)
        batch = data.collate(data.train_set)(
            [data.train_set[i] for i in range(4)])
    else:
        from glore_pyg.apps.classification.task import (ClassificationData,
                                                        ClassificationTask)
        data = ClassificationData('digits', train_size=64, val_size=8,
                                  batch_size=32)
        task = ClassificationTask(arch='digits', units={'layer3': 'glore'},
                                  num_classes=data.num_classes,
                                  in_channels=data.in_channels)
        batch = torch.utils.data.default_collate(
            [data.train_set[i] for i in range(32)])
    return task, batch


def _worker(rank: int, port: int, name: str, out: str) -> None:
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile

    from glore_pyg.nn import DistributedBatchNorm, convert_distributed_batchnorm
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    # as Lightning does: the cores shared out between the processes
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    torch.manual_seed(0)
    task, batch = _application(name)
    convert_distributed_batchnorm(task)
    task.train()
    model = torch.nn.parallel.DistributedDataParallel(task)

    def step():
        total, count = task.loss_terms(model(batch), batch)
        count = count.detach().clone()
        dist.all_reduce(count)
        (total / count).backward()

    step()  # DDP's first step builds its buckets
    import time
    times = {}
    for label, train_norms in (('synchronised', True), ('per process', None)):
        if train_norms is None:  # the same network, BatchNorm unsynchronised
            task_local, _ = _application(name)
            task_local.train()
            local = torch.nn.parallel.DistributedDataParallel(task_local)
            local(batch)  # builds DDP's buckets
            run = (lambda: task_local.loss_terms(local(batch), batch)[0]
                   .backward())
        else:
            run = step
        dist.barrier()
        start = time.perf_counter()
        for _ in range(10):
            run()
        dist.barrier()
        times[label] = (time.perf_counter() - start) / 10
    with profile(activities=[ProfilerActivity.CPU],
                 record_shapes=True) as prof:
        step()
    counted = {}
    for event in prof.events():
        if event.name.startswith('gloo:'):
            # a 0-d tensor (the loss's count) has the shape []
            numel = sum(torch.Size(s).numel() for s in event.input_shapes)
            calls, elements = counted.get(event.name, (0, 0))
            counted[event.name] = (calls + 1, elements + numel)
    norms = [m.num_features for m in task.modules()
             if isinstance(m, DistributedBatchNorm)]
    params = sum(p.numel() for p in task.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in task.buffers())
    if rank == 0:
        Path(out).write_text(json.dumps(dict(
            counted=counted, seconds_per_step=times, params=params, buffers=buffers,
            norms=len(norms), norm_channels=sum(norms),
            expected_all_reduce=params + sum(4 * c + 2 for c in norms) + 1)))
    dist.destroy_process_group()


def bytes_per_step(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / 'bytes.json')
        port = _free_port()
        procs = [subprocess.Popen([sys.executable, __file__, '--worker',
                                   str(rank), str(port), name, out])
                 for rank in (0, 1)]
        for p in procs:
            if p.wait(timeout=600) != 0:
                raise SystemExit(f'the {name} worker failed')
        return json.loads(Path(out).read_text())


# --------------------------------------------------------------------------
# epoch times
# --------------------------------------------------------------------------
PRESETS = {'segment': ('synthetic', 8), 'classify': ('digits', 64)}


def epoch_time(command: str, processes: int, epochs: int) -> float:
    preset, batch = PRESETS[command]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, '-m', 'glore_pyg.apps.cli', command, 'fit',
               '--config', preset, '--trainer.max_epochs', str(epochs),
               '--trainer.enable_progress_bar', 'false',
               '--trainer.accelerator', 'cpu',
               '--trainer.devices', str(processes),
               '--data.batch_size', str(batch // processes),
               '--model.units', '{%s: glore}' % (
                   'sa3' if command == 'segment' else 'layer3'),
               '--out', str(Path(tmp) / 'run')]
        if command == 'classify':  # the cosine schedule spans the run
            cmd += ['--model.lr_scheduler.init_args.T_max', str(epochs)]
        if processes > 1:
            cmd += ['--trainer.strategy', 'ddp']
        subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        result = json.loads((Path(tmp) / 'run' / 'result.json').read_text())
        return result['seconds_per_epoch']


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--part', choices=['bytes', 'times', 'both'],
                   default='both')
    p.add_argument('--epochs', type=int, default=3)
    args = p.parse_args(argv)
    print(f'torch {torch.__version__}, {os.cpu_count()} CPU cores, '
          f'{torch.get_num_threads()} threads')
    if args.part in ('bytes', 'both'):
        print('\n| network | parameters | BatchNorms (channels) | '
              'all-reduced: calls, numbers | expected numbers | buffers | '
              'broadcast: calls, numbers | MB per step | s per step, '
              'BatchNorm synchronised / per process |\n'
              '|---|---|---|---|---|---|---|---|---|')
        for name, label in (('segment', 'PointNet++ small + GloRe at sa3'),
                            ('classify', 'digits ResNet + GloRe at layer3')):
            r = bytes_per_step(name)
            ar = r['counted'].get('gloo:all_reduce', (0, 0))
            bc = r['counted'].get('gloo:broadcast', (0, 0))
            sent = ar[1] + bc[1]
            print(f"| {label} | {r['params']:,} | {r['norms']} "
                  f"({r['norm_channels']:,}) | {ar[0]}, {ar[1]:,} | "
                  f"{r['expected_all_reduce']:,} | {r['buffers']:,} | "
                  f"{bc[0]}, {bc[1]:,} | {sent * 4 / 1e6:.2f} | "
                  f"{r['seconds_per_step']['synchronised']:.3f} / "
                  f"{r['seconds_per_step']['per process']:.3f} |")
    if args.part in ('times', 'both'):
        print(f'\n| command | 1 process (s/epoch) | 2 processes (s/epoch) '
              f'| ratio |\n|---|---|---|---|')
        for command in PRESETS:
            one = epoch_time(command, 1, args.epochs)
            two = epoch_time(command, 2, args.epochs)
            print(f'| {command} ({PRESETS[command][0]}, global batch '
                  f'{PRESETS[command][1]}) | {one:.2f} | {two:.2f} | '
                  f'{two / one:.2f} |')


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--worker':
        _worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        main()

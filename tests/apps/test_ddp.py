"""The commands on two CPU processes (Lightning's DDP over gloo): each
process trains on its half of every epoch, BatchNorm moments are
all-reduced (DistributedBatchNorm: SyncBatchNorm refuses CPU tensors), the
run folder is written once.  The launch is a real one: Lightning starts
the second process by running the same command again."""
import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip('lightning')
from tests.apps.helpers import QUIET, TINY  # noqa: E402


def test_segment_fit_on_two_cpu_processes(tmp_path):
    run = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'glore_pyg.apps.cli', 'segment', 'fit',
           '--config', 'synthetic', *TINY['synthetic'], *QUIET,
           '--trainer.devices', '2', '--trainer.strategy', 'ddp',
           '--trainer.max_epochs', '2', '--model.units', '{sa3: glore}',
           '--out', str(run)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ('2 processes on cpu: BatchNorm moments all-reduced with '
            'glore_pyg.nn.DistributedBatchNorm') in done.stderr
    state = torch.load(run / 'checkpoints' / 'last.ckpt', weights_only=False)
    # 8 rooms, batch 4, 2 processes: one step per process and epoch
    assert state['global_step'] == 2
    assert [p.name for p in (run / 'checkpoints').iterdir()] == ['last.ckpt']
    assert [p.name for p in (run / 'logs').iterdir()] == ['version_0']
    result = json.loads((run / 'result.json').read_text())
    assert result['epochs'] == 2 and 0 <= result['metrics']['val_miou'] <= 1

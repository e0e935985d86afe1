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


def _fit(run, *args):
    cmd = [sys.executable, '-m', 'glore_pyg.apps.cli', 'classify', 'fit',
           '--config', 'digits', '--data.train_size', '48',
           '--data.val_size', '32', *QUIET, '--trainer.max_epochs', '2',
           '--model.units', '{layer3: latentgnn:d=4}', '--out', str(run),
           *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          cwd=run.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(run / 'checkpoints' / 'last.ckpt', weights_only=False)


def test_two_processes_train_what_one_process_trains(tmp_path):
    """The same global batch of 16 mosaics, on 1 process or 2 x 8: the
    order splits each batch between the processes, the gradients are
    averaged by DDP and the BatchNorms (backbone and unit) normalise over
    both halves, so the weights after 6 Adam steps agree to float
    precision and the validation metrics are the same."""
    pytest.importorskip('sklearn')
    one = _fit(tmp_path / 'one', '--data.batch_size', '16')
    two = _fit(tmp_path / 'two', '--data.batch_size', '8',
               '--trainer.devices', '2', '--trainer.strategy', 'ddp')
    assert one['global_step'] == two['global_step'] == 6
    for key, value in one['state_dict'].items():
        torch.testing.assert_close(two['state_dict'][key], value, rtol=1e-4,
                                   atol=1e-4, msg=key)
    a = json.loads((tmp_path / 'one' / 'result.json').read_text())['metrics']
    b = json.loads((tmp_path / 'two' / 'result.json').read_text())['metrics']
    assert a['val_acc'] == b['val_acc']
    assert a['val_loss'] == pytest.approx(b['val_loss'], abs=1e-5)


def test_resume_with_two_processes_is_exact(tmp_path):
    """A 2-process run stopped after its first epoch and continued to the
    second ends bit-identical to one that ran both epochs."""
    pytest.importorskip('sklearn')
    ddp = ['--data.batch_size', '8', '--trainer.devices', '2',
           '--trainer.strategy', 'ddp']
    whole = _fit(tmp_path / 'whole', *ddp)
    _fit(tmp_path / 'cut', *ddp, '--trainer.max_epochs', '1')
    resumed = _fit(tmp_path / 'cut', *ddp)
    assert resumed['global_step'] == whole['global_step'] == 6
    for key, value in whole['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=0,
                                   atol=0, msg=key)


def _torchrun(tmp_path, node_args=((), ())):
    """``glore-pyg classify fit`` under ``torchrun --nnodes 2
    --nproc_per_node 1`` on localhost, one launch per node (as on two
    machines), ``node_args[r]`` added on node r; the exit statuses and
    outputs."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    nodes = [subprocess.Popen(
        [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2',
         '--nproc_per_node', '1', '--node_rank', str(rank), '--master_addr',
         '127.0.0.1', '--master_port', str(port), '-m', 'glore_pyg.apps.cli',
         'classify', 'fit', '--config', 'digits', '--data.train_size', '48',
         '--data.val_size', '32', '--data.batch_size', '8', *QUIET,
         '--trainer.max_epochs', '2', '--trainer.num_nodes', '2',
         '--trainer.devices', '1', '--trainer.strategy', 'ddp',
         '--out', str(tmp_path / 'run'), *node_args[rank]], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    return [node.returncode for node in nodes], outputs


def test_torchrun_two_nodes_of_one_process(tmp_path):
    """``torchrun --nnodes 2 --nproc_per_node 1`` on localhost, one launch
    per node, as on two machines: Lightning reads torchrun's environment,
    the two nodes train one run."""
    pytest.importorskip('sklearn')
    codes, outputs = _torchrun(tmp_path)
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    state = torch.load(tmp_path / 'run' / 'checkpoints' / 'last.ckpt',
                       weights_only=False)
    assert state['global_step'] == 6  # 48 mosaics / (2 nodes x 8) x 2
    assert 'BatchNorm moments all-reduced' in outputs[0]


def test_processes_with_other_options_stop_with_one_error(tmp_path):
    """Two nodes started with other data: both stop with the same clear
    error (one small collective on the configs), neither hangs."""
    pytest.importorskip('sklearn')
    codes, outputs = _torchrun(tmp_path, ((), ('--data.train_size', '40')))
    assert codes[0] != 0 and codes[1] != 0
    for out in outputs:
        assert ('process 1 runs another configuration than process 0 '
                '(data.train_size: 48 there, 40 on process 1)') in out


def test_more_processes_than_samples_is_refused(tmp_path):
    pytest.importorskip('sklearn')
    codes, outputs = _torchrun(tmp_path, (('--data.train_size', '1'),
                                          ('--data.train_size', '1')))
    assert codes[0] != 0 and codes[1] != 0
    assert '2 processes need at least 2 training samples, the data has 1' \
        in outputs[0]

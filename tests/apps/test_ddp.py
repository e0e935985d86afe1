"""The commands on two CPU processes (Lightning's DDP over gloo): each
process trains on its half of every epoch, BatchNorm moments are
all-reduced (DistributedBatchNorm: SyncBatchNorm refuses CPU tensors), the
run folder is written once.  The launch is a real one: Lightning starts
the second process by running the same command again."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('lightning')
from tests.apps.helpers import QUIET, TINY, fit, glore, weights  # noqa: E402

#: the checkout, so that the processes find ``tests.apps.helpers``
ROOT = str(Path(__file__).resolve().parents[2])


def _run(args, cwd, timeout=300):
    """``python -m glore_pyg.apps.cli ARGS`` in a fresh process (so that
    Lightning can start the second one by running it again)."""
    env = {k: v for k, v in os.environ.items() if k not in (
        'MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK',
        'NODE_RANK')}
    done = subprocess.run([sys.executable, '-m', 'glore_pyg.apps.cli',
                           *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd,
                          env={**env, 'PYTHONPATH': ROOT})
    return done


DDP = ['--trainer.devices', '2', '--trainer.strategy', 'ddp']

#: exit statuses of a run stopped by a failed collective: 1 from the
#: command, or -SIGKILL when Lightning's launcher ended the first process
#: (it checks the processes it started every 5 s) after the line was printed
STOPPED = (1, -9)


def _assert_close_weights(a, b, tol):
    assert a.keys() == b.keys()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=tol, atol=tol,
                                   msg=key)


def _same_json(a, b, loss_keys=()):
    """Two ``test.json`` files: equal, losses to float precision."""
    a, b = (json.loads(p.read_text()) for p in (a, b))
    for key in loss_keys:
        assert a.pop(key) == pytest.approx(b.pop(key), rel=1e-5)
    assert a == b


def test_segmentation_on_two_processes_equals_one(tmp_path):
    """PointNet++ with a GloRe unit, 6 rooms in global batches of 4 and 2:
    one process, and two processes of 2 and 1 (the run made by
    ``compare`` on 2 processes).  With the random draws that depend on how
    a batch is split switched off (dropout, random FPS starts), the loss
    is the mean over the global batch and the BatchNorms normalise over
    both processes, so the weights agree to float precision.  (Few steps:
    this network's max pooling amplifies rounding, as much on one process
    with the rooms of a batch in another order, see docs/training.md.)
    The test table of the 2-process run is the same from 1 or 2
    processes, and so are its predictions."""
    data = ['--data.train_size', '6', '--data.val_size', '5']
    common = [*data, '--model.dropout', '0', '--model.random_start',
              'false', '--model.optimizer', 'torch.optim.SGD',
              '--model.optimizer.lr', '0.002', '--trainer.max_epochs', '1']
    assert fit('segment', 'synthetic', tmp_path / 'one', *common,
               '--model.units', '{sa3: glore}') == 0
    done = _run(['segment', 'compare', '--config', 'synthetic',
                 *TINY['synthetic'], *QUIET, *common, *DDP,
                 '--data.batch_size', '2', '--only', '+GloRe', '--seeds',
                 '0', '--out', tmp_path / 'cmp'], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    two = tmp_path / 'cmp' / 'GloRe' / 'seed0'
    assert ('2 processes on cpu: BatchNorm moments all-reduced with '
            'glore_pyg.nn.DistributedBatchNorm') in done.stderr
    a, b = weights(tmp_path / 'one'), weights(two)
    assert a[1:] == b[1:] == (0, 2)  # one epoch of 2 steps either way
    _assert_close_weights(a[0], b[0], 1e-4)
    assert [p.name for p in (two / 'checkpoints').iterdir()] == ['last.ckpt']
    assert [p.name for p in (two / 'logs').iterdir()] == ['version_0']
    result = json.loads((two / 'result.json').read_text())
    assert result['epochs'] == 1

    # the table and predictions of one checkpoint: 1 process, 2 processes
    # (5 rooms: 3 on one process, 2 on the other)
    for job in ('test', 'predict'):
        assert glore('segment', job, '--config', 'synthetic',
                     *TINY['synthetic'], *QUIET, *data, '--out', two,
                     '--trainer.strategy', 'auto') == 0
        (two / 'one').mkdir()
        for name in ('test.json', 'predictions'):
            if (two / name).exists():
                (two / name).rename(two / 'one' / name)
        done = _run(['segment', job, '--config', 'synthetic',
                     *TINY['synthetic'], *QUIET, *data, *DDP, '--out', two],
                    tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        if job == 'test':
            _same_json(two / 'one' / 'test.json', two / 'test.json',
                       ['test_loss'])
        else:
            clouds = sorted(p.name for p in (two / 'predictions').glob(
                'cloud*.npy'))
            assert clouds == [f'cloud{i}.npy' for i in range(5)]
            for name in clouds:
                np.testing.assert_array_equal(
                    np.load(two / 'predictions' / name),
                    np.load(two / 'one' / 'predictions' / name))
        shutil.rmtree(two / 'one')


def _fit(run, *args, check=True):
    done = _run(['classify', 'fit', '--config', 'digits', '--data.train_size',
                 '50', '--data.val_size', '33', *QUIET,
                 '--trainer.max_epochs', '2', '--model.units',
                 '{layer3: latentgnn:d=4}', '--out', run, *args], run.parent)
    if not check:
        return done
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(run / 'checkpoints' / 'last.ckpt', weights_only=False)


def test_two_processes_train_what_one_process_trains(tmp_path):
    """The same global batches of 16 mosaics (50 per epoch: the last one
    2), on 1 process or 2 x 8: each batch is dealt out between the
    processes, the loss is the mean over the global batch and the
    BatchNorms (backbone and unit) normalise over both halves, so the
    weights after 8 SGD steps agree to float precision (Adam would turn
    the rounding of gradients that are nearly zero into steps of its
    learning rate).  The test table and the predictions of the 33
    validation mosaics (17 on one process, 16 on the other) are those of
    one process."""
    pytest.importorskip('sklearn')
    sgd = ['--model.optimizer', 'torch.optim.SGD', '--model.optimizer.lr',
           '0.05', '--model.optimizer.momentum', '0.9']
    one = _fit(tmp_path / 'one', '--data.batch_size', '16', *sgd)
    two = _fit(tmp_path / 'two', '--data.batch_size', '8', *DDP, *sgd)
    assert one['global_step'] == two['global_step'] == 8
    _assert_close_weights(one['state_dict'], two['state_dict'], 1e-5)

    run = tmp_path / 'two'
    args = ['--config', 'digits', '--data.train_size', '50',
            '--data.val_size', '33', *QUIET, '--out', run]
    for job in ('test', 'predict'):
        assert glore('classify', job, *args, '--trainer.strategy',
                     'auto') == 0
        (run / 'one').mkdir()
        for name in ('test.json', 'predictions'):
            if (run / name).exists():
                (run / name).rename(run / 'one' / name)
        done = _run(['classify', job, *args, *DDP], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        if job == 'test':
            _same_json(run / 'one' / 'test.json', run / 'test.json',
                       ['test_loss'])
        else:
            for name in ('predictions.npy', 'labels.npy'):
                a = np.load(run / 'one' / 'predictions' / name)
                assert a.shape == (33,)
                np.testing.assert_array_equal(
                    np.load(run / 'predictions' / name), a)
        shutil.rmtree(run / 'one')


def test_a_dead_process_stops_the_run_and_resume_is_exact(tmp_path):
    """The second process dies a step into epoch 2 (``os._exit``): the
    first stops at once with one line naming the kept checkpoint, no
    process is left behind, and the same command without the fault
    resumes to weights bit-identical to an uninterrupted 2-process run."""
    pytest.importorskip('sklearn')
    ddp = ['--data.batch_size', '8', *DDP]
    whole = _fit(tmp_path / 'whole', *ddp)
    cut = tmp_path / 'cut'
    done = _fit(cut, *ddp, '--trainer.callbacks',
                'tests.apps.helpers.DieOnRank1', check=False)
    # 1, or Lightning's launcher ended it (SIGKILL) after the line
    assert done.returncode in STOPPED, done.stderr[-3000:]
    line = [t for t in done.stderr.splitlines() if 'collective' in t]
    assert len(line) == 1, done.stderr[-3000:]
    assert line[0].startswith(
        'glore-pyg classify fit: process 0 of 2: a collective failed, '
        'another process of the run died or stopped answering (')
    assert line[0].endswith(
        f'; {cut}/checkpoints/last.ckpt (after epoch 1) is kept: start every '
        f'process again with the same command to resume')
    assert 'Traceback' not in done.stderr
    resumed = _fit(cut, *ddp)
    assert resumed['global_step'] == whole['global_step'] == 8
    for key, value in whole['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=0,
                                   atol=0, msg=key)


def test_a_hung_process_ends_in_the_timeout(tmp_path):
    """The second process stops answering: after the strategy's
    ``timeout`` both processes stop with the one-line error (the hung one
    is stopped by the first), none is left waiting."""
    pytest.importorskip('sklearn')
    run = tmp_path / 'run'
    done = _fit(run, '--data.batch_size', '8', '--trainer.devices', '2',
                '--trainer.strategy', 'lightning.pytorch.strategies'
                '.DDPStrategy', '--trainer.strategy.timeout', '0:00:10',
                '--trainer.callbacks', 'tests.apps.helpers.HangOnRank1',
                check=False)
    assert done.returncode in STOPPED, done.stderr[-3000:]
    assert 'glore-pyg classify fit: process 0 of 2: a collective failed' \
        in done.stderr
    assert torch.load(run / 'checkpoints' / 'last.ckpt',
                      weights_only=False)['epoch'] == 0


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

"""What the tests of the application layer share: tiny configs of each
data set, running the console script in this process, reading a run's
checkpoint."""
import pickle

import lightning as L
import numpy as np
import pytest
import torch

from glore_pyg.apps.cli import main

#: the smallest settings of each preset that still train
TINY = {
    'synthetic': ['--data.train_size', '8', '--data.val_size', '4',
                  '--data.num_points', '256', '--data.batch_size', '4'],
    'frog': ['--data.train_size', '6', '--data.val_size', '3',
             '--data.num_points', '256', '--data.batch_size', '3'],
    'scannet': ['--data.num_points', '256', '--data.batch_size', '2',
                '--model.preset', 'small'],
    'digits': ['--data.train_size', '48', '--data.val_size', '32',
               '--data.batch_size', '16'],
    'folder': ['--data.image_size', '16', '--data.batch_size', '4',
               '--model.arch', 'digits'],
}
QUIET = ['--trainer.enable_progress_bar', 'false', '--trainer.accelerator',
         'cpu']


def glore(*args) -> int:
    """``glore-pyg ARGS`` in this process; the exit status."""
    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def fit(command, preset, out, *extra, root=None):
    """A tiny ``fit`` of ``preset`` into ``out``; the exit status."""
    args = [command, 'fit', '--config', preset, *TINY[preset], *QUIET,
            '--out', out]
    if root is not None:
        args += ['--data.root', root]
    return glore(*args, *extra)


def command_of(preset):
    return 'classify' if preset in ('digits', 'folder') else 'segment'


def weights(folder):
    """``(state_dict, epoch, global_step)`` of a run's last checkpoint."""
    state = torch.load(folder / 'checkpoints' / 'last.ckpt',
                       map_location='cpu', weights_only=False)
    return state['state_dict'], state['epoch'], state['global_step']


def assert_same_weights(a, b):
    """Two ``weights()`` results are identical, bit for bit."""
    assert a[1:] == b[1:] and a[0].keys() == b[0].keys()
    for key in a[0]:
        torch.testing.assert_close(a[0][key], b[0][key], rtol=0, atol=0,
                                   msg=key)


def scannet_root(folder):
    """PointNet++-format pickles of two small random scenes."""
    rng = np.random.default_rng(0)
    scenes = [((rng.random((n, 3)) * (2.0, 2.0, 1.5)).astype(np.float32),
               rng.integers(0, 21, n).astype(np.int32)) for n in (900, 700)]
    for split in ('train', 'test'):
        with open(folder / f'scannet_{split}.pickle', 'wb') as f:
            pickle.dump([p for p, _ in scenes], f, protocol=2)
            pickle.dump([y for _, y in scenes], f, protocol=2)
    return folder


def image_root(folder):
    """A folder of two classes of six small images each."""
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for cls, level in (('cats', 60), ('dogs', 190)):
        (folder / cls).mkdir(parents=True)
        for i in range(6):
            pixels = (torch.rand(20, 24, 3, generator=g) * 60 + level)
            Image.fromarray(pixels.byte().numpy()).save(
                folder / cls / f'{i}.png')
    return folder


def root_of(preset, tmp_path):
    """The data folder a preset needs (None: none)."""
    if preset == 'scannet':
        return str(scannet_root(tmp_path))
    if preset == 'folder':
        return str(image_root(tmp_path / 'images'))
    if preset == 'frog':
        pytest.importorskip('pyvista')
    if preset in ('digits', 'folder'):
        pytest.importorskip('sklearn')
    return None


class Interrupt(L.Callback):
    """A Lightning callback that stops the run at the start of the second
    epoch, after the first epoch's checkpoint was written (as a killed
    process would); given to ``fit`` as ``--trainer.callbacks``."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise RuntimeError('interrupted')


class DieOnRank1(L.Callback):
    """A Lightning callback that kills the second process (``os._exit``,
    as a crashed machine would) a step into the second epoch, after the
    first epoch's checkpoint was written.  It waits a second first, so
    that the first process is already waiting for it in a collective."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        import os
        import time
        if trainer.current_epoch == 1 and batch_idx == 1 and \
                trainer.global_rank == 1:
            time.sleep(1)
            os._exit(3)


class HangOnRank1(L.Callback):
    """Like :class:`DieOnRank1`, but the second process stops answering
    (sleeps) instead of dying."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        import time
        if trainer.current_epoch == 1 and batch_idx == 1 and \
                trainer.global_rank == 1:
            time.sleep(600)

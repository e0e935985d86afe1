"""What the training applications (point-cloud segmentation, image
classification) share around Lightning (``pip install "glore-pyg[train]"``):
the seeded per-epoch sample order that makes resumed runs end where
uninterrupted ones do, the trainer with its checkpoints and CSV log, the
check that a checkpoint belongs to the configuration about to be trained,
and the per-epoch timer.
"""
import resource
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import torch

try:
    import lightning as L
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("Training needs Lightning: pip install "
                      "\"glore-pyg[train]\"") from e


class EpochOrder(torch.utils.data.Sampler):
    """A random order of ``n`` samples drawn, when iterated, from ``(seed,
    the trainer's current epoch)``: the same order for an epoch whether the
    run was resumed or not.

    Args:
        n (int): number of samples.
        seed (int): the run's seed.
        trainer (lightning.Trainer, optional): whose ``current_epoch`` is
            read; :obj:`None` reads epoch 0.
    """

    def __init__(self, n: int, seed: int, trainer=None):
        self.n, self.seed, self.trainer = n, seed, trainer

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        epoch = self.trainer.current_epoch if self.trainer else 0
        g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class EpochTimer(L.Callback):
    """Wall-clock seconds of each training epoch (validation excluded)."""

    def __init__(self):
        self.times = []
        self._start = None

    def on_train_epoch_start(self, trainer, module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        if self._start is not None:
            self.times.append(time.perf_counter() - self._start)

    def seconds_per_epoch(self) -> Optional[float]:
        """Mean seconds per epoch trained in this process, or :obj:`None`
        when none was."""
        return sum(self.times) / len(self.times) if self.times else None


class EpochLog(L.Callback):
    """One line per epoch on standard error (for runs without a progress
    bar): the epoch, the logged metrics and the epoch's seconds."""

    def __init__(self, timer: EpochTimer):
        self.timer = timer

    def on_train_epoch_end(self, trainer, module):
        # after the epoch's validation and after the timer (listed before)
        if not self.timer.times:
            return
        metrics = ', '.join(f'{k} {float(v):.4f}' for k, v in sorted(
            trainer.callback_metrics.items()))
        print(f'epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: '
              f'{metrics} ({self.timer.times[-1]:.1f} s)', file=sys.stderr,
              flush=True)


def check_checkpoint(path, hparams: Mapping, keys: Sequence[str]) -> None:
    """Refuses a checkpoint written for another configuration, naming the
    differences.

    Args:
        path (str or Path): a Lightning checkpoint (loaded on the CPU with
            ``weights_only=False``: only open checkpoints you trust).
        hparams (Mapping): the hyper-parameters of the task about to be
            trained (``task.hparams``).
        keys (sequence of str): the hyper-parameters that must agree.

    Raises:
        ValueError: the differences, or an unreadable checkpoint.
    """
    try:
        state = torch.load(path, map_location='cpu', weights_only=False)
        saved = state['hyper_parameters']
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise ValueError(f"Cannot read checkpoint {path} as a checkpoint of "
                         f"this task: {e}") from e
    diff = {k: (saved.get(k), hparams.get(k)) for k in keys
            if _plain(saved.get(k)) != _plain(hparams.get(k))}
    if diff:
        raise ValueError(
            f"Checkpoint {path} belongs to another configuration: "
            + ', '.join(f'{k} is {a!r} there, {b!r} here'
                        for k, (a, b) in diff.items())
            + ". Use another output folder or resume=False (--no-resume)")


def _plain(v):
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, (list, tuple)):
        return list(v)
    return v


def make_trainer(out_dir: str, epochs: int, precision: Optional[str] = None,
                 progress: bool = True, accelerator: str = 'auto',
                 callbacks: Optional[Iterable] = None
                 ) -> Tuple['L.Trainer', EpochTimer]:
    """A Lightning ``Trainer`` writing ``out_dir``: ``checkpoints/last.ckpt``
    after every epoch, ``metrics.csv`` (CSV logger); and its
    :class:`EpochTimer`.

    Args:
        out_dir (str): the run folder.
        epochs (int): ``max_epochs``.
        precision (str, optional): Lightning's ``precision``, e.g.
            ``'bf16-mixed'``. (default: :obj:`None`: float32)
        progress (bool, optional): the progress bar; without it, one line
            per epoch on standard error (:class:`EpochLog`).
            (default: :obj:`True`)
        accelerator (str, optional): ``'cpu'``, ``'cuda'`` or ``'auto'``.
            (default: :obj:`'auto'`)
        callbacks (iterable, optional): further callbacks.

    Returns:
        ``(trainer, timer)``.
    """
    out = Path(out_dir)
    timer = EpochTimer()
    log = [] if progress else [EpochLog(timer)]
    trainer = L.Trainer(
        max_epochs=epochs, default_root_dir=str(out),
        accelerator=accelerator, devices=1, precision=precision,
        logger=L.pytorch.loggers.CSVLogger(str(out), name='', version=''),
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(
            dirpath=str(out / 'checkpoints'), filename='{epoch}',
            save_last=True, save_top_k=1, every_n_epochs=1),
            timer] + log + list(callbacks or []),
        enable_progress_bar=progress, enable_model_summary=False,
        deterministic=False, log_every_n_steps=1)
    return trainer, timer


def resume_from(out_dir: str, resume: bool, hparams: Mapping,
                keys: Sequence[str]) -> Optional[str]:
    """The checkpoint to resume from: ``out_dir/checkpoints/last.ckpt``
    when ``resume`` and it exists (checked by :func:`check_checkpoint`),
    else :obj:`None`.

    Raises:
        ValueError: a checkpoint of another configuration.
    """
    ckpt = Path(out_dir) / 'checkpoints' / 'last.ckpt'
    if resume and ckpt.exists():
        check_checkpoint(ckpt, hparams, keys)
        return str(ckpt)
    return None


def load_run(out_dir, task_cls, command: str):
    """The trained task of a run folder (its ``checkpoints/last.ckpt``,
    loaded on the CPU, in evaluation mode) and its ``result.json``
    configuration.

    Args:
        out_dir (str or Path): the run folder.
        task_cls (type): the :class:`lightning.LightningModule` class.
        command (str): the command that trains such runs, for the error
            message (``'segment'``, ``'classify'``).

    Returns:
        ``(task, config)``.

    Raises:
        FileNotFoundError: no ``result.json`` or checkpoint in ``out_dir``.
    """
    import json
    out = Path(out_dir)
    config_path, ckpt = out / 'result.json', out / 'checkpoints' / 'last.ckpt'
    for path in (config_path, ckpt):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: train the run first (glore-pyg {command} "
                f"train --out {out})")
    config = json.loads(config_path.read_text())['config']
    task = task_cls.load_from_checkpoint(str(ckpt), map_location='cpu')
    return task.eval(), config


def peak_rss_bytes() -> int:
    """The process's peak resident memory in bytes (Linux' ``ru_maxrss``
    is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


__all__ = ['EpochOrder', 'EpochTimer', 'EpochLog', 'check_checkpoint',
           'make_trainer', 'resume_from', 'load_run', 'peak_rss_bytes']

"""The application base that segmentation and classification share
(``pip install "glore-pyg[train]"``): a :class:`Task` (LightningModule) with
the optimiser and learning-rate scheduler taken from the config, per-step
seeding and torchmetrics metrics logged per stage; a :class:`DataModule`
whose training order and random crops are a function of ``(seed, epoch)``;
the rules of a run folder (:func:`prepare_fit`); and the callbacks that
keep a run's cost across resumes.  The command line that puts them
together is :mod:`glore_pyg.apps.cli`.

**Exact resume.**  Nothing that decides what the next batch holds is kept
in a random generator's history: the order of epoch ``e`` comes from
:class:`EpochSampler` (``(seed, e)``), each random-crop data set draws item
``i`` of epoch ``e`` from ``(seed, e, i)`` (its ``set_epoch``), and the
random draws of training step ``s`` (farthest-point-sampling starts,
dropout) from ``(seed, s, rank)``.  A checkpoint holds the epoch, the step and
the seed (``hyper_parameters`` and the data module's state), so a run
resumed from ``checkpoints/last.ckpt`` ends bit-identical to an
uninterrupted one.
"""
import json
import resource
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import Tensor

try:
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("Training needs Lightning: pip install "
                      "\"glore-pyg[train]\"") from e


class RunFolderError(ValueError):
    """A run folder that cannot be trained as asked (another configuration
    in it, a smaller epoch budget than it holds); the message is one line
    naming the option that resolves it."""


class ProcessGroupError(RuntimeError):
    """A run on several processes stopped because a collective failed:
    another process died, or stopped answering for longer than the
    strategy's ``timeout``.  The message is one line; the last checkpoint
    is kept, and the same command resumes from it.  ``reported``: the line
    was printed already (by :class:`CollectiveFailureReport`)."""

    def __init__(self, message: str, reported: bool = False):
        super().__init__(message)
        self.reported = reported


def is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failed collective of ``torch.distributed``
    (a :class:`torch.distributed.DistError`, or gloo's / NCCL's
    ``RuntimeError`` about a closed or timed-out connection)."""
    import torch.distributed as dist
    if isinstance(error, getattr(dist, 'DistError', ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        word in text for word in ('gloo', 'NCCL', 'Connection reset',
                                  'Connection closed', 'timeout'))


# --------------------------------------------------------------------------
# data: order and crops from (seed, epoch)
# --------------------------------------------------------------------------
class EpochSampler(torch.utils.data.Sampler):
    """The training order of epoch ``e``: a permutation of the data set
    drawn from ``(seed, e)`` (the same one as the shuffle of PyTorch's
    :class:`~torch.utils.data.DistributedSampler` on one process), whatever
    the number of processes (:class:`ProcessBatches` splits it).
    :meth:`set_epoch`, which Lightning calls before every epoch (also the
    first one after a resume), passes the epoch on to the data set when it
    has a ``set_epoch`` of its own (the random-crop data sets), so that
    what item ``i`` holds is a function of ``(seed, e, i)`` too.

    Args:
        dataset (Dataset): the training set.
        seed (int): the run's seed.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, 'set_epoch'):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.dataset), generator=g).tolist())

    def __len__(self) -> int:
        return len(self.dataset)


class ProcessBatches(torch.utils.data.Sampler):
    """The batches of one process out of ``num_replicas``: the order of
    ``sampler`` cut into global batches of ``batch_size * num_replicas``
    samples, each dealt out in turn (sample ``j`` of a global batch to
    process ``j mod num_replicas``).  Nothing is repeated or dropped: the
    processes' batches of a step are a partition of the global batch that
    one process with ``batch_size * num_replicas`` would take, and over an
    epoch of every sample once.

    * ``train=True``: every process must take part in every step (DDP
      all-reduces the gradients), so a last global batch smaller than
      ``num_replicas`` joins the one before it; the processes' batch sizes
      of a step differ by at most one.  The loss of a step is the mean over
      the global batch (:meth:`Task.training_step`), so unequal shares
      train what one process would.
    * ``train=False`` (evaluation): processes may take different numbers
      of batches; an empty share is skipped.

    Lightning finds :attr:`sampler` and calls its ``set_epoch``.

    Args:
        sampler (Sampler): the order of the whole data set
            (:class:`EpochSampler` in training, sequential in evaluation).
        batch_size (int): samples per process and step.
        num_replicas (int, optional): processes. (default: ``1``)
        rank (int, optional): this process. (default: ``0``)
        train (bool, optional): see above. (default: ``True``)

    Raises:
        ValueError: ``rank`` outside ``[0, num_replicas)``, ``batch_size``
            or ``num_replicas`` below 1.
    """

    def __init__(self, sampler, batch_size: int, num_replicas: int = 1,
                 rank: int = 0, train: bool = True):
        from ..functional.checks import check_int
        self.sampler = sampler
        self.batch_size = check_int(batch_size, 'batch_size', 1)
        self.num_replicas = check_int(num_replicas, 'num_replicas', 1)
        self.rank = check_int(rank, 'rank', 0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"'rank': {rank} is not below num_replicas="
                             f"{num_replicas}")
        self.train = bool(train)

    def _global_batches(self, n: int) -> List[range]:
        size = self.batch_size * self.num_replicas
        bounds = list(range(0, n, size)) + [n]
        if self.train and len(bounds) > 2 and \
                bounds[-1] - bounds[-2] < self.num_replicas:
            del bounds[-2]  # a tail too small to feed every process
        return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def __iter__(self):
        order = list(self.sampler)
        for span in self._global_batches(len(order)):
            share = [order[j] for j in span[self.rank::self.num_replicas]]
            if share:
                yield share

    def __len__(self) -> int:
        return sum(1 for span in self._global_batches(len(self.sampler))
                   if len(span[self.rank::self.num_replicas]) > 0)


class DataModule(L.LightningDataModule):
    """The data module pattern of both applications: data sets chosen by
    ``name`` (:attr:`datasets`), ``train_set`` / ``val_set`` (and
    ``test_set``, the validation split unless an application sets another)
    built by :meth:`build`, loaders of ``batch_size`` with
    :class:`EpochSampler` for training, and the facts a task needs
    (``num_classes``, ``in_channels``, ``class_names``).

    Args:
        name (str): one of :attr:`datasets`.
        root (str, optional): the data folder of the data sets that read
            one.
        batch_size (int): samples per batch.
        num_workers (int, optional): DataLoader worker processes (the
            samples do not depend on it). (default: ``0``)
        seed (int, optional): seed of the data and of the order (set from
            ``seed_everything`` by the command line). (default: ``0``)

    Raises:
        ValueError: an unknown ``name``, a missing ``root``, a negative
            ``seed`` / ``num_workers`` or ``batch_size < 1``.
        TypeError: non-int sizes.
    """

    #: data set name -> what its ``root`` must hold (None: no root)
    datasets: Dict[str, Optional[str]] = {}

    def __init__(self, name: str, root: Optional[str], batch_size: int,
                 num_workers: int = 0, seed: int = 0):
        super().__init__()
        from ..functional.checks import check_int
        if name not in self.datasets:
            raise ValueError(f"'name': unknown data set {name!r}; choose one "
                             f"of {list(self.datasets)}")
        if self.datasets[name] is not None and root is None:
            raise ValueError(f"'root': the {name!r} data set needs "
                             f"{self.datasets[name]}")
        self.name, self.root = name, root
        self.batch_size = check_int(batch_size, 'batch_size', 1)
        self.num_workers = check_int(num_workers, 'num_workers', 0)
        self.seed = check_int(seed, 'seed', 0)
        self.train_set, self.val_set = self.build()
        self.test_set = self.val_set

    def build(self):  # pragma: no cover - abstract
        """``(train_set, val_set)``."""
        raise NotImplementedError

    @property
    def info(self):
        """The object holding ``num_classes``, ``in_channels`` and
        ``class_names`` (the training set, or its ``dataset`` for a
        subset)."""
        return getattr(self.train_set, 'dataset', self.train_set)

    @property
    def num_classes(self) -> int:
        return int(self.info.num_classes)

    @property
    def class_names(self) -> List[str]:
        return list(getattr(self.info, 'class_names',
                            range(self.num_classes)))

    def _share(self, dataset, train: bool, batch_size=None):
        """This process's :class:`ProcessBatches` of ``dataset``."""
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        if train and world > len(dataset):
            raise RunFolderError(
                f"{world} processes need at least {world} training samples, "
                f"the data has {len(dataset)}: use fewer processes or more "
                f"data")
        order = EpochSampler(dataset, self.seed) if train else \
            torch.utils.data.SequentialSampler(dataset)
        return ProcessBatches(order, batch_size or self.batch_size, world,
                              rank, train=train)

    def _loader(self, dataset, train: bool, batch_size=None,
                batched: bool = True):
        """A loader of this process's share of ``dataset`` (see
        :class:`ProcessBatches`); ``batched=False``: one item at a time,
        uncollated."""
        batches = self._share(dataset, train, batch_size)
        if not batched:
            return torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=self.num_workers,
                sampler=[i for share in batches for i in share])
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, num_workers=self.num_workers,
            collate_fn=self.collate(dataset))

    def predict_indices(self) -> List[int]:
        """The indices of the test set that this process predicts, in the
        order of its predictions."""
        return [i for share in self._share(self.test_set, False)
                for i in share]

    def collate(self, dataset):
        """The loaders' ``collate_fn`` (:obj:`None`: PyTorch's default)."""
        return None

    def train_dataloader(self):
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return self._loader(self.val_set, False)

    def test_dataloader(self):
        return self._loader(self.test_set, False)

    def predict_dataloader(self):
        return self._loader(self.test_set, False)

    def state_dict(self) -> Dict[str, Any]:
        # everything random in the data is a function of the seed and the
        # epoch (the trainer's loops hold the epoch)
        return {'seed': self.seed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get('seed', self.seed) != self.seed:
            raise RunFolderError(
                f"The checkpoint's data seed is {state['seed']}, this run's "
                f"is {self.seed}: pass --seed_everything {state['seed']}")


# --------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------
class Task(L.LightningModule):
    """The LightningModule base of both applications.  An application
    supplies the network (``self.model``), :meth:`loss`,
    :meth:`make_metrics` (a :class:`torchmetrics.Metric` whose ``compute``
    returns a dict of scalars, plus optionally ``iou_per_class``) and
    :meth:`update_metrics`; the base does the rest: the optimiser and
    scheduler given in the config, ``train_loss`` / ``val_loss`` and the
    metrics logged per epoch (reduced over processes by torchmetrics), the
    per-step seeding that makes resumed runs exact, and the per-class table
    of ``test``.

    Args:
        optimizer (callable, optional): ``params -> Optimizer``, e.g.
            ``torch.optim.AdamW`` or ``functools.partial(torch.optim.SGD,
            lr=0.1)``; in a config, ``class_path`` / ``init_args``.
            (default: :class:`torch.optim.Adam` with its defaults)
        lr_scheduler (callable, optional): ``optimizer -> LRScheduler``,
            stepped once per epoch. (default: :obj:`None`: constant)
        seed (int, optional): seed of the per-step random draws (set from
            ``seed_everything`` by the command line). (default: ``0``)
    """

    #: the entry of the metrics' ``compute()`` that holds per-class values
    per_class_key = 'iou_per_class'
    #: what they are, for the table of ``test``
    per_class_title = 'IoU'

    def __init__(self, optimizer: Optional[OptimizerCallable] = None,
                 lr_scheduler: Optional[LRSchedulerCallable] = None,
                 seed: int = 0):
        super().__init__()
        from ..functional.checks import check_int
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.seed = check_int(seed, 'seed', 0)
        self.val_metrics = self.make_metrics()
        self.test_metrics = self.make_metrics()
        #: the last validation's / test's IoU (or accuracy) per class
        self.per_class: Dict[str, float] = {}

    # -- what an application supplies --------------------------------------
    def make_metrics(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_terms(self, logits: Tensor, batch):  # pragma: no cover
        """``(total, count)``: the batch's summed loss and what it is a
        mean over (samples, points or summed weights), so that a mean over
        several processes' batches is ``sum(total) / sum(count)``."""
        raise NotImplementedError

    def loss(self, logits: Tensor, batch) -> Tensor:
        """The mean loss of one batch, ``total / count``."""
        total, count = self.loss_terms(logits, batch)
        return total / count.clamp_min(1e-12)

    def update_metrics(self, metrics, logits: Tensor, batch) -> None:
        raise NotImplementedError  # pragma: no cover

    # -- shared --------------------------------------------------------------
    #: the run's config (set by the command line): on several processes,
    #: :meth:`setup` checks that every process runs the same one
    run_config: Optional[Mapping] = None

    def setup(self, stage: str) -> None:
        """On several processes: one small collective compares the run's
        config of every process with the first one's (leaving out
        :data:`RESUMABLE_KEYS`), so that processes started with other
        options or data stop with the same one-line error, none waiting
        for the others.

        Raises:
            RunFolderError: a process runs another configuration.
        """
        import torch.distributed as dist
        if self.run_config is None or not (dist.is_available() and
                                           dist.is_initialized()):
            return
        configs = [None] * dist.get_world_size()
        dist.all_gather_object(configs, dict(self.run_config))
        for rank, config in enumerate(configs[1:], 1):
            diff = config_differences(configs[0], config)
            if diff:
                key, (a, b) = next(iter(diff.items()))
                raise RunFolderError(
                    f"process {rank} runs another configuration than process "
                    f"0 ({key}: {a!r} there, {b!r} on process {rank}): start "
                    f"every process with the same options")

    def configure_optimizers(self):
        """The config's optimiser over all parameters and, if given, its
        scheduler (stepped per epoch)."""
        optimizer = (self.optimizer or torch.optim.Adam)(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return dict(optimizer=optimizer,
                    lr_scheduler=self.lr_scheduler(optimizer))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # farthest-point-sampling starts and dropout: a function of the
        # step (and the process), not of the generator's history, so that a
        # resumed run draws what an uninterrupted one would
        torch.manual_seed(self.seed * 1_000_003 + self.global_step * 1_009
                          + self.global_rank)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        """The mean loss over the step's global batch: on several
        processes, each one's ``total`` over the ``count`` all-reduced over
        the processes (one number), times the number of processes, which
        DDP's averaging of the gradients divides out again; processes with
        unequal shares (:class:`ProcessBatches`) so train what one process
        would on the whole batch."""
        total, count = self.loss_terms(self(batch), batch)
        # logged as a mean weighted by count: over the epoch and the
        # processes, sum(total) / sum(count)
        self.log('train_loss', total.detach() / count.clamp_min(1e-12),
                 on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=float(count), sync_dist=True)
        world = self.trainer.world_size
        if world > 1:
            count = self.trainer.strategy.reduce(count.detach().clone(),
                                                 reduce_op='sum') / world
        return total / count.clamp_min(1e-12)

    def _eval_step(self, stage: str, batch) -> None:
        logits = self(batch)
        total, count = self.loss_terms(logits, batch)
        self.log(f'{stage}_loss', total / count.clamp_min(1e-12),
                 on_epoch=True, batch_size=float(count), sync_dist=True)
        self.update_metrics(getattr(self, f'{stage}_metrics'), logits, batch)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step('val', batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step('test', batch)

    def _log_metrics(self, stage: str) -> None:
        metrics = getattr(self, f'{stage}_metrics')
        values = dict(metrics.compute())
        per_class = values.pop(self.per_class_key, None)
        # torchmetrics reduced them over the processes already: the same
        # value everywhere, which sync_dist averages to itself
        self.log_dict({f'{stage}_{k}': float(v) for k, v in values.items()},
                      sync_dist=True)
        if per_class is not None:
            names = getattr(self, 'class_names', None) or [
                str(i) for i in range(len(per_class))]
            self.per_class = {str(n): float(v)
                              for n, v in zip(names, per_class)}
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics('val')

    def on_test_epoch_end(self) -> None:
        self._log_metrics('test')
        if self.per_class and self.trainer.is_global_zero:
            print(per_class_table(self.per_class, self.per_class_title),
                  flush=True)


def per_class_table(values: Mapping[str, float], title: str = 'IoU') -> str:
    """A Markdown table of per-class values in % (``-``: a class that was
    not evaluated)."""
    lines = [f'| class | {title} |', '|---|---|']
    for name, v in values.items():
        lines.append(f"| {name} | {'-' if v != v else f'{100 * v:.1f}'} |")
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# callbacks: cost of a run, kept across resumes
# --------------------------------------------------------------------------
class PeakMemory(Callback):
    """The peak resident memory of the processes that trained a run (and,
    on CUDA, the peak allocated device memory), read after every epoch and
    kept in the checkpoint, so that a resumed run reports the largest of
    all its processes, not only the last one's.  (Time is Lightning's
    :class:`~lightning.pytorch.callbacks.Timer`, whose state the checkpoint
    keeps too.)"""

    def __init__(self):
        self.peak_rss_bytes = 0
        self.peak_cuda_bytes = 0

    def on_train_epoch_end(self, trainer, module):
        self.peak_rss_bytes = max(self.peak_rss_bytes, peak_rss_bytes())
        device = trainer.strategy.root_device
        if device.type == 'cuda':
            self.peak_cuda_bytes = max(self.peak_cuda_bytes,
                                       torch.cuda.max_memory_allocated(device))

    def state_dict(self) -> Dict[str, Any]:
        return dict(peak_rss_bytes=self.peak_rss_bytes,
                    peak_cuda_bytes=self.peak_cuda_bytes)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.peak_rss_bytes = int(state.get('peak_rss_bytes', 0))
        self.peak_cuda_bytes = int(state.get('peak_cuda_bytes', 0))


class CollectiveFailureReport(Callback):
    """On several processes, a failed collective (another process died, or
    stopped answering for longer than the strategy's ``timeout``) is
    reported at once, from Lightning's ``on_exception`` hook: one line on
    standard error, ``PREFIX: process r of P: a collective failed ...;
    <what is kept>``, then the processes this one started with Lightning's
    launcher are stopped.  It has to be at once: after a child process's
    death, Lightning's launcher ends this one too (SIGKILL, at its next
    check, within 5 seconds), so what runs after the hook may not run at
    all.  :attr:`message` keeps the line for the caller, which then exits
    with status 1 if it still can.

    Args:
        prefix (str): what the line starts with (the command).
        out (str, optional): the run folder, whose
            ``checkpoints/last.ckpt`` the line names.
    """

    def __init__(self, prefix: str, out=None):
        self.prefix = prefix
        self.out = out
        self.message: Optional[str] = None

    def on_exception(self, trainer, module, exception) -> None:
        if trainer.world_size < 2 or not is_collective_failure(exception):
            return
        last = Path(self.out or trainer.default_root_dir) / 'checkpoints' / \
            'last.ckpt'
        kept = (f"{last} (after epoch {checkpoint_epochs(last)}) is kept: "
                f"start every process again with the same command to resume"
                if last.exists() else "no epoch had finished, no checkpoint "
                "was written")
        first = str(exception).strip().splitlines()[0][:200]
        self.message = (
            f"process {trainer.global_rank} of {trainer.world_size}: a "
            f"collective failed, another process of the run died or stopped "
            f"answering ({first}); {kept}")
        print(f'{self.prefix}: {self.message}', file=sys.stderr, flush=True)
        launcher = trainer.strategy.launcher
        if launcher is not None and hasattr(launcher, 'kill'):
            import signal
            launcher.kill(signal.SIGTERM)


class EpochLog(Callback):
    """One line per epoch on standard error, for runs without a progress
    bar: the epoch, the logged metrics and the run's training time so far
    (from ``timer``, a :class:`~lightning.pytorch.callbacks.Timer`)."""

    def __init__(self, timer):
        self.timer = timer

    def on_train_epoch_end(self, trainer, module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = ', '.join(f'{k} {float(v):.4f}' for k, v in sorted(
            trainer.callback_metrics.items()) if v.numel() == 1)
        print(f'epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: '
              f'{metrics} ({self.timer.time_elapsed("train"):.1f} s in all)',
              file=sys.stderr, flush=True)


def peak_rss_bytes() -> int:
    """The process's peak resident memory in bytes (Linux'
    ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------
# run folders
# --------------------------------------------------------------------------
#: config keys that may change between the processes of one run: they do not
#: change what is computed (the epoch budget is checked on its own)
RESUMABLE_KEYS = ('trainer.max_epochs', 'trainer.enable_progress_bar',
                  'trainer.logger', 'trainer.callbacks', 'trainer.accelerator',
                  'trainer.devices', 'trainer.num_nodes', 'trainer.strategy',
                  'trainer.default_root_dir', 'trainer.max_time',
                  'trainer.limit_val_batches', 'data.num_workers',
                  'out', 'overwrite', 'ckpt_path', 'config')

#: the files a run writes into its folder
RUN_FILES = ('checkpoints', 'config.yaml', 'logs', 'result.json',
             'evaluation.json', 'test.json', 'predictions', 'pictures')


def _flatten(d: Mapping, prefix: str = '') -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, Mapping) and 'class_path' not in v:
            out.update(_flatten(v, key + '.'))
        else:
            out[key] = v
    return out


def config_differences(saved: Mapping, current: Mapping) -> Dict[str, tuple]:
    """``key -> (saved, current)`` for the config entries that differ,
    leaving out :data:`RESUMABLE_KEYS` (dotted keys, nested mappings
    flattened)."""
    a, b = _flatten(saved), _flatten(current)

    def free(key):
        return any(key == k or key.startswith(k + '.')
                   for k in RESUMABLE_KEYS)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if not free(k) and a.get(k) != b.get(k)}


def checkpoint_epochs(path) -> int:
    """Epochs a checkpoint of a run's ``last.ckpt`` (written at the end of
    an epoch, after its validation) has trained."""
    state = torch.load(path, map_location='cpu', weights_only=False)
    return int(state['epoch']) + 1


def prepare_fit(out, config: Mapping, max_epochs: int, overwrite: bool,
                command: str) -> Optional[str]:
    """Applies the run-folder rules before ``fit`` and returns the
    checkpoint to resume from (or :obj:`None`: start afresh):

    * ``overwrite``: the files of an earlier run (:data:`RUN_FILES`) are
      deleted first, so that no stale checkpoint survives.
    * A folder holding a run of the same configuration
      (:func:`config_differences` empty) resumes from its
      ``checkpoints/last.ckpt``; a larger epoch budget continues to it, the
      same budget finds the run finished (``'finished'`` is returned), a
      smaller one is refused.
    * A folder holding another configuration, or a checkpoint without the
      config that made it, is refused.

    Args:
        out (str or Path): the run folder.
        config (Mapping): the command's config (as ``config.yaml`` holds
            it).
        max_epochs (int): the epoch budget.
        overwrite (bool): delete an earlier run.
        command (str): ``'segment'`` or ``'classify'`` for the messages.

    Returns:
        str or None: a checkpoint path, ``'finished'`` or :obj:`None`.

    Raises:
        RunFolderError: the refusals above, in one line each.
    """
    out = Path(out)
    ckpt, saved = out / 'checkpoints' / 'last.ckpt', out / 'config.yaml'
    if overwrite:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return None
    if not ckpt.exists():
        if (out / 'checkpoints').is_dir() and any(
                (out / 'checkpoints').iterdir()):
            raise RunFolderError(
                f"{out} holds checkpoints but no last.ckpt: pass --overwrite "
                f"to delete them, or choose another --out")
        return None
    if not saved.exists():
        raise RunFolderError(
            f"{out} holds a checkpoint but no config.yaml (not a run of "
            f"glore-pyg {command} fit): pass --overwrite to delete it, or "
            f"choose another --out")
    import yaml
    diff = config_differences(yaml.safe_load(saved.read_text()) or {},
                              config)
    if diff:
        shown = '; '.join(f'{k}: {a!r} there, {b!r} here'
                          for k, (a, b) in list(diff.items())[:3])
        more = f' (and {len(diff) - 3} more)' if len(diff) > 3 else ''
        raise RunFolderError(
            f"{out} holds a run of another configuration ({shown}{more}): "
            f"pass --overwrite to replace it, or choose another --out")
    done = checkpoint_epochs(ckpt)
    if max_epochs is not None and max_epochs >= 0 and max_epochs < done:
        raise RunFolderError(
            f"{out} holds a run trained for {done} epochs, more than "
            f"--trainer.max_epochs {max_epochs}: pass a budget of at least "
            f"{done} to continue it, or --overwrite to start again")
    if max_epochs == done:
        return 'finished'
    return str(ckpt)


def write_result(out, result: Mapping) -> None:
    """Writes ``out/result.json``."""
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / 'result.json').write_text(json.dumps(result, indent=2))


def read_result(out) -> Optional[Dict[str, Any]]:
    """``out/result.json``, or :obj:`None`."""
    path = Path(out) / 'result.json'
    return json.loads(path.read_text()) if path.exists() else None


@contextmanager
def quiet_lightning():
    """Lightning's informational lines (devices, tips) at WARNING level
    while the block runs; warnings and errors still show."""
    import logging
    names = ('lightning.pytorch.utilities.rank_zero',
             'lightning.pytorch.accelerators.cuda',
             'lightning.fabric.utilities.seed')
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


__all__ = ['Task', 'DataModule', 'EpochSampler', 'ProcessBatches',
           'PeakMemory', 'EpochLog',
           'RunFolderError', 'ProcessGroupError', 'is_collective_failure',
           'prepare_fit', 'config_differences',
           'checkpoint_epochs', 'per_class_table', 'peak_rss_bytes',
           'write_result', 'read_result', 'quiet_lightning',
           'RESUMABLE_KEYS', 'RUN_FILES']

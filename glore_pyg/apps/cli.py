"""``glore-pyg``: the console script, on Lightning's
:class:`~lightning.pytorch.cli.LightningCLI`.

    glore-pyg segment fit --out runs/lat --model.units '{sa3: latentgnn}'
    glore-pyg segment fit --config frog --out runs/frog      # a shipped preset
    glore-pyg segment fit --config my.yaml --out runs/x      # your own YAML
    glore-pyg segment fit --print_config > my.yaml           # every option
    glore-pyg segment validate --out runs/lat                # its last checkpoint
    glore-pyg segment test --out runs/lat                    # + per-class table
    glore-pyg segment predict --out runs/lat                 # .npy / .ply files
    glore-pyg segment compare --seeds 0,1,2 --out runs/compare
    glore-pyg segment pictures --out runs/lat

    glore-pyg classify fit --out runs/g --model.units '{layer3: glore}'
    glore-pyg classify compare --seeds 0,1,2 --out runs/digits

``fit`` / ``validate`` / ``test`` / ``predict`` take every LightningCLI
option (``--trainer.*``, ``--model.*``, ``--data.*``,
``--seed_everything``, ``--config``, ``--print_config``) plus ``--out``
(the run folder) and ``--overwrite``.  The presets (``synthetic``,
``frog``, ``scannet`` for ``segment``; ``digits``, ``folder`` for
``classify``) are YAML files shipped in ``glore_pyg/apps/configs``; the
first of each command is its default.  ``compare`` trains each
configuration of a table (baseline, +non-local, +LatentGNN, +GloRe) over
seeds, each in its own process, and prints the paper-style table;
``pictures`` draws what a trained unit does.
"""
import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from .base import (CollectiveFailureReport, EpochLog, PeakMemory,
                   ProcessGroupError, RunFolderError, checkpoint_epochs,
                   prepare_fit,
                   quiet_lightning, read_result, write_result)

try:
    from lightning.pytorch.callbacks import ModelCheckpoint, Timer
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.loggers import CSVLogger
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("The command line needs Lightning: pip install "
                      "\"glore-pyg[train]\"") from e

CONFIGS = Path(__file__).parent / 'configs'

#: per command: presets (the first is the default), the compare table's
#: configurations (name -> unit spec at the insertion point, None: the
#: baseline), the insertion point's option and default, the metrics shown
APPS = {
    'segment': dict(
        presets=('synthetic', 'frog', 'scannet', 'scannet_latentgnn'),
        configurations={
            'baseline': None,
            '+non-local': 'nonlocal',
            '+LatentGNN (1 kernel)': 'latentgnn:d=32',
            '+LatentGNN (3 kernels)': 'latentgnn:d=32,kernels=3',
            '+GloRe': 'glore',
        },
        point=('--level', 'sa3', 'the level the units go after (default: '
               'sa3, the coarsest level of the small network)'),
        metrics=[('val_point_acc', 'point acc'),
                 ('val_voxel_acc', 'voxel acc'),
                 ('val_class_point_acc', 'class-avg acc'),
                 ('val_miou', 'mIoU')],
        per_class_title='IoU'),
    'classify': dict(
        presets=('digits', 'folder'),
        configurations={
            'baseline': None,
            '+GloRe': 'glore',
            # the graph-convolution weight (the published graph_conv_flag):
            # without it LatentGNN learned this relational task in 2 of 15
            # runs, with it in 17 of 20 (docs/classification.md, ablations)
            '+LatentGNN (1 kernel)': 'latentgnn:d=16,graph_conv=1',
            '+LatentGNN (2 kernels)': 'latentgnn:d=16,kernels=2,graph_conv=1',
            '+non-local': 'nonlocal',
        },
        point=('--point', 'layer3', 'the module the units go after '
               '(default: layer3, the last stage of the digits network)'),
        metrics=[('val_acc', 'accuracy')],
        per_class_title='accuracy'),
}

LIGHTNING_JOBS = ('fit', 'validate', 'test', 'predict')


def _classes(command: str):
    if command == 'segment':
        from .segmentation.task import SegmentationData, SegmentationTask
        return SegmentationTask, SegmentationData
    from .classification.task import ClassificationData, ClassificationTask
    return ClassificationTask, ClassificationData


def preset_path(command: str, name: str) -> Path:
    """The YAML file of a shipped preset."""
    return CONFIGS / f'{name}.yaml'


class AppCLI(LightningCLI):
    """LightningCLI of one application (``command``: ``'segment'`` or
    ``'classify'``) with the run folder (``--out``, ``--overwrite``), one
    seed for weights, data and order (``--seed_everything``), the data's
    facts (classes, channels, weights) passed to the model, and the
    checkpoint / log / cost callbacks of a run.  ``fit`` follows the
    run-folder rules of :func:`~glore_pyg.apps.base.prepare_fit` and writes
    ``result.json``; ``validate`` / ``test`` write ``evaluation.json`` /
    ``test.json``; ``predict`` writes the predictions."""

    command = 'segment'

    def __init__(self, command: str, args=None, run: bool = True):
        self.command = command
        model_class, data_class = _classes(command)
        default = [str(preset_path(command, APPS[command]['presets'][0]))]
        kwargs = dict(default_config_files=default)
        parser_kwargs = ({job: dict(kwargs, description=JOBS[job])
                          for job in LIGHTNING_JOBS} if run else kwargs)
        parser_kwargs['prog'] = f'glore-pyg {command}'

        super().__init__(
            model_class, data_class, save_config_callback=None,
            seed_everything_default=0, auto_configure_optimizers=False,
            trainer_defaults=dict(enable_model_summary=False,
                                  use_distributed_sampler=False,
                                  log_every_n_steps=1),
            parser_kwargs=parser_kwargs, args=args, run=run)

    # -- the parser --------------------------------------------------------
    def add_default_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            '--seed_everything', type=int, default=0,
            help='the seed of the initial weights, the data (rooms, '
            'mosaics, crops, hold-outs) and the training order (default: 0)')

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            '--out', type=Optional[str], default=None,
            help='the run folder: config.yaml, checkpoints/last.ckpt, '
            'logs/version_N/metrics.csv, result.json (fit resumes from it; '
            'validate, test, predict, pictures read it)')
        parser.add_argument(
            '--overwrite', type=bool, nargs='?', const=True, default=False,
            help='fit: delete an earlier run in --out before training')
        parser.link_arguments('seed_everything', 'model.seed',
                              compute_fn=_seed)
        parser.link_arguments('seed_everything', 'data.seed',
                              compute_fn=_seed)
        links = ['num_classes', 'in_channels', 'class_names']
        if self.command == 'segment':
            links += ['class_weights', 'ignore_index']
        for name in links:
            parser.link_arguments('data', f'model.{name}',
                                  compute_fn=_attribute(name),
                                  apply_on='instantiate')

    # -- the trainer ---------------------------------------------------------
    def _out(self) -> Optional[str]:
        # --out, or Lightning's own trainer.default_root_dir
        return self._get(self.config, 'out') or self._get(
            self.config, 'trainer').get('default_root_dir')

    def instantiate_trainer(self, **kwargs):
        out = self._out()
        trainer = self._get(self.config_init, 'trainer')
        extra = []
        if out is not None:
            kwargs['default_root_dir'] = out
            if self.subcommand == 'fit':
                if trainer.get('logger') in (None, True):
                    # one version folder per process of the run: a resumed
                    # run keeps the earlier processes' metrics.csv
                    kwargs['logger'] = CSVLogger(out, name='logs')
                # one file, last.ckpt, rewritten after every epoch: never a
                # last-v1.ckpt beside a stale one
                extra.append(ModelCheckpoint(
                    dirpath=str(Path(out) / 'checkpoints'), filename='last',
                    save_top_k=1, enable_version_counter=False))
        if self.subcommand != 'fit' or (
                out is None and trainer.get('logger') in (None, True)):
            kwargs['logger'] = False
        if self.subcommand not in (None, 'fit'):
            kwargs['enable_checkpointing'] = False
        # time and peak memory of every process of the run (resumes
        # included: both keep their state in the checkpoint)
        self.timer, self.memory = Timer(), PeakMemory()
        self.failure = CollectiveFailureReport(
            f'glore-pyg {self.command} {self.subcommand}', out)
        extra += [self.timer, self.memory, self.failure]
        if trainer.get('enable_progress_bar') is False:
            extra.append(EpochLog(self.timer))
        self.trainer_defaults['callbacks'] = extra
        return super().instantiate_trainer(**kwargs)

    # -- the jobs ------------------------------------------------------------
    def _config(self) -> Dict:
        parser = self._parser(self.subcommand)
        with warnings.catch_warnings():  # skip_none: renamed in 4.49
            warnings.simplefilter('ignore', DeprecationWarning)
            text = parser.dump(self.config[self.subcommand], skip_none=False)
        return yaml.safe_load(text)

    def fit(self, model, datamodule, ckpt_path=None, **kwargs) -> None:
        """``trainer.fit`` under the run-folder rules, then ``result.json``
        (on the first process)."""
        if self.trainer.fast_dev_run:  # a smoke test: nothing is kept
            with quiet_lightning():
                self.trainer.fit(model, datamodule=datamodule, **kwargs)
            return
        out = self._out()
        if out is None:
            raise RunFolderError("fit needs --out (or "
                                 "--trainer.default_root_dir): the run "
                                 "folder for checkpoints, logs and "
                                 "result.json")
        config = self._config()
        max_epochs = self.trainer.max_epochs
        resume = prepare_fit(out, config, max_epochs,
                             self._get(self.config, 'overwrite'),
                             self.command)
        finished = resume == 'finished'
        if finished and read_result(out) is not None:
            print(f'{out}: already trained for {max_epochs} epochs '
                  f'(result.json kept; raise --trainer.max_epochs to '
                  f'continue)', file=sys.stderr)
            return
        if ckpt_path is None and resume is not None:
            ckpt_path = str(Path(out) / 'checkpoints' / 'last.ckpt')
            if self.trainer.is_global_zero:
                print(f'{out}: resuming after epoch '
                      f'{checkpoint_epochs(ckpt_path)}', file=sys.stderr)
        elif self._get(self.config, 'overwrite') and \
                self.trainer.is_global_zero:
            print(f'{out}: the earlier run was deleted (--overwrite)',
                  file=sys.stderr)
        if self.trainer.is_global_zero:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / 'config.yaml').write_text(yaml.safe_dump(
                config, sort_keys=False))
        self._synchronise_batchnorm(model)
        model.run_config = config
        with quiet_lightning():
            try:
                self.trainer.fit(model, datamodule=datamodule,
                                 ckpt_path=ckpt_path, **kwargs)
            except Exception as e:
                if self.failure.message is not None:  # printed already
                    raise ProcessGroupError(self.failure.message,
                                            reported=True) from e
                raise
            if self.trainer.interrupted:
                return
            # the last epoch's validation; a validation pass only when this
            # process trained nothing (it would add a row to metrics.csv)
            metrics = {k: v for k, v in self.trainer.callback_metrics.items()
                       if k.startswith('val_')}
            if not metrics or not model.per_class:
                metrics = self.trainer.validate(model, datamodule=datamodule,
                                                verbose=False)[0]
        if not self.trainer.is_global_zero:
            return
        size = model.complexity(datamodule)
        epochs = self.trainer.current_epoch
        result = dict(config=config, epochs=epochs, **size,
                      seconds_per_epoch=self.timer.time_elapsed('train') /
                      max(epochs, 1),
                      peak_rss_bytes=self.memory.peak_rss_bytes,
                      peak_cuda_bytes=self.memory.peak_cuda_bytes or None,
                      metrics={k: float(v) for k, v in metrics.items()},
                      per_class=dict(model.per_class))
        write_result(out, result)
        print(json.dumps(result['metrics'], indent=2))

    def _synchronise_batchnorm(self, model) -> None:
        """On several processes, BatchNorm normalises with the moments of
        the whole batch: :class:`~glore_pyg.nn.DistributedBatchNorm` on
        CPU (``SyncBatchNorm`` refuses CPU tensors), ``SyncBatchNorm`` on
        GPUs; the log says which."""
        world = self.trainer.world_size
        if world < 2:
            return
        device = self.trainer.strategy.root_device.type
        if device == 'cuda':
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            kind = 'torch.nn.SyncBatchNorm'
        else:
            from ..nn import convert_distributed_batchnorm
            convert_distributed_batchnorm(model)
            kind = 'glore_pyg.nn.DistributedBatchNorm'
        if self.trainer.is_global_zero:
            print(f'{world} processes on {device}: BatchNorm moments '
                  f'all-reduced with {kind}', file=sys.stderr)

    def _evaluate(self, job: str, model, datamodule, ckpt_path, **kwargs):
        if ckpt_path is None:
            raise RunFolderError(f"{job} needs a trained run: --out RUN (or "
                                 f"--ckpt_path FILE)")
        trained = torch.load(ckpt_path, map_location='cpu',
                             weights_only=False).get(
            'hyper_parameters', {}).get('class_names')
        if trained and list(trained) != list(datamodule.class_names):
            raise RunFolderError(
                f"the checkpoint was trained on the classes {list(trained)}, "
                f"the data has {list(datamodule.class_names)}")
        with quiet_lightning():
            out = getattr(self.trainer, job)(model, datamodule=datamodule,
                                             ckpt_path=ckpt_path, **kwargs)
        return out

    def validate(self, model, datamodule, ckpt_path=None, **kwargs):
        metrics = self._evaluate('validate', model, datamodule, ckpt_path,
                                 **kwargs)[0]
        self._write('evaluation.json', metrics)

    def test(self, model, datamodule, ckpt_path=None, **kwargs):
        metrics = dict(self._evaluate('test', model, datamodule, ckpt_path,
                                      **kwargs)[0])
        metrics['per_class'] = dict(model.per_class)
        self._write('test.json', metrics)

    def predict(self, model, datamodule, ckpt_path=None, **kwargs):
        """Predictions of the test set into ``OUT/predictions``, each
        sample named by its index in the data set: on several processes,
        each writes the point clouds it predicted; the image labels are
        gathered and written by the first process."""
        kwargs['return_predictions'] = True
        with warnings.catch_warnings():  # ProcessBatches returns them all
            warnings.filterwarnings('ignore', 'You are using a custom batch '
                                    'sampler')
            batches = self._evaluate('predict', model, datamodule,
                                     ckpt_path, **kwargs)
        items = [item for batch in batches for item in batch]
        ids = datamodule.predict_indices()
        out = self._out() or '.'
        if self.command == 'segment':
            from .segmentation.task import write_predictions
        else:
            from .classification.task import write_predictions
            if self.trainer.world_size > 1:
                import torch.distributed as dist
                parts = [None] * self.trainer.world_size
                dist.all_gather_object(parts, (ids, items))
                if not self.trainer.is_global_zero:
                    return
                ids = [i for part in parts for i in part[0]]
                items = [item for part in parts for item in part[1]]
        for path in write_predictions(items, Path(out) / 'predictions',
                                      datamodule.class_names, ids):
            print(path)

    def _write(self, name: str, values) -> None:
        out = self._out()
        if out is not None and self.trainer.is_global_zero:
            (Path(out) / name).write_text(json.dumps(
                {k: (v if isinstance(v, dict) else float(v))
                 for k, v in values.items()}, indent=2))


def _seed(value) -> int:
    # seed_everything: true (a random seed) cannot be shared with the data
    from ..functional.checks import check_int
    return check_int(value, 'seed_everything', 0)


def _attribute(name: str):
    def read(data):
        return getattr(data, name)
    read.__name__ = f'read_{name}'
    return read


# --------------------------------------------------------------------------
# run folders for validate / test / predict / pictures
# --------------------------------------------------------------------------
def run_folder(out, command: str) -> Path:
    """Checks that ``out`` holds a trained run and returns it.

    Raises:
        RunFolderError: a compare folder (one of its runs is named), a
            folder without ``config.yaml`` or ``checkpoints/last.ckpt``.
    """
    out = Path(out)
    if (out / 'config.yaml').exists() and (
            out / 'checkpoints' / 'last.ckpt').exists():
        return out
    runs = sorted(p.parent for p in out.glob('*/seed*/config.yaml'))
    if runs:
        raise RunFolderError(f"{out} is a compare folder: pass one of its "
                             f"runs, e.g. --out {runs[0]}")
    raise RunFolderError(f"{out} holds no trained run (no config.yaml and "
                         f"checkpoints/last.ckpt): train it first with "
                         f"glore-pyg {command} fit --out {out}")


def load_run(out, command: str):
    """The trained task of a run folder (its last checkpoint's weights, on
    the CPU, in evaluation mode) and its data module, built from the
    folder's ``config.yaml``.

    Returns:
        ``(task, datamodule)``.

    Raises:
        RunFolderError: see :func:`run_folder`.
    """
    out = run_folder(out, command)
    config = yaml.safe_load((out / 'config.yaml').read_text())
    for key in ('ckpt_path', 'weights_only'):  # arguments of fit only
        config.pop(key, None)
    config.setdefault('trainer', {})['logger'] = False
    with quiet_lightning():
        cli = AppCLI(command, args=config, run=False)
    state = torch.load(out / 'checkpoints' / 'last.ckpt', map_location='cpu',
                       weights_only=False)['state_dict']
    cli.model.load_state_dict(state)
    return cli.model.eval(), cli.datamodule


# --------------------------------------------------------------------------
# compare: the table
# --------------------------------------------------------------------------
def _slug(name: str) -> str:
    return ''.join(c if c.isalnum() else '_' for c in name).strip('_')


def _finite(v):
    """``None`` for a value that is not a finite number (a class absent
    from both prediction and ground truth: undefined, left out)."""
    return v if v is not None and math.isfinite(v) else None


def _stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), sd


def _ambiguous_classes(result: Dict) -> List[str]:
    """The synthetic scenes' classes that only context tells apart."""
    if result['config'].get('data', {}).get('name') != 'synthetic':
        return []
    from .segmentation.datasets import AMBIGUOUS_PAIRS, CLASS_NAMES
    return [CLASS_NAMES[c] for pair in AMBIGUOUS_PAIRS for c in pair]


def table_row(name: str, results: List[Dict], metrics) -> Dict:
    """One row of :func:`table` from the ``result.json`` of each seed."""
    row = dict(name=name, seeds=len(results), params=results[0]['params'],
               flops=results[0]['flops'],
               macs=results[0].get('macs', results[0]['flops'] // 2))
    for key, _ in metrics:
        row[key] = _stat([r['metrics'].get(key) for r in results])
    ambiguous = _ambiguous_classes(results[0])
    row['val_ambiguous_iou'] = _stat([
        statistics.mean(r['per_class'][c] for c in ambiguous)
        for r in results]) if ambiguous else (None, None)
    classes = [c for c in results[0].get('per_class') or {}
               if all(c in (r.get('per_class') or {}) for r in results)]
    row['per_class'] = {c: _stat([_finite(r['per_class'][c]) for r in results])
                        for c in classes}
    row['seconds_per_epoch'] = _stat([r['seconds_per_epoch']
                                      for r in results])
    row['peak_rss_bytes'] = _stat([r['peak_rss_bytes'] for r in results])
    return row


def _mega(v: float) -> str:
    return f'{v / 1e6:.0f}M' if abs(v) >= 1e8 else f'{v / 1e6:.3g}M'


def table(rows: List[Dict], metrics: Sequence) -> str:
    """The paper-style table: params, MACs (multiply-adds of one sample's
    forward pass, the papers' "FLOPs"), the metrics (mean ± std over seeds,
    in %; the value alone for one seed), time per epoch, peak memory.
    ``metrics``: (key, title) pairs."""
    base = rows[0]
    ambiguous = any(r.get('val_ambiguous_iou', (None, ))[0] is not None
                    for r in rows)
    head = ['configuration', 'params', 'MACs'] + [t for _, t in metrics] + (
        ['IoU, context-only classes'] if ambiguous else []) + [
        's / epoch', 'peak RSS']
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']

    def pm(v, seeds, scale=100.0, digits=1):
        mean, sd = v
        if mean is None:
            return '-'
        if seeds < 2:  # one run: no spread to show
            return f'{mean * scale:.{digits}f}'
        return f'{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}'

    for r in rows:
        extra_p = r['params'] - base['params']
        macs_of = (lambda r: r.get('macs', r['flops'] // 2))
        extra_m = macs_of(r) - macs_of(base)
        params = f"{r['params'] / 1e6:.3f}M" + (
            f' (+{extra_p / 1e6:.3f}M)' if r is not base else '')
        macs = _mega(macs_of(r)) + (
            f' (+{_mega(extra_m)})' if r is not base else '')
        n = r.get('seeds', 2)
        cells = [r['name'], params, macs] + [pm(r[k], n) for k, _ in metrics]
        if ambiguous:
            cells.append(pm(r['val_ambiguous_iou'], n))
        cells += [pm(r['seconds_per_epoch'], n, 1.0, 2),
                  pm(r['peak_rss_bytes'], n, 1e-9, 2) + ' GB']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _compare_parser(command: str) -> argparse.ArgumentParser:
    app = APPS[command]
    names = list(app['configurations'])
    p = argparse.ArgumentParser(
        prog=f'glore-pyg {command} compare',
        description='Train each configuration over the seeds (each in its '
        'own process, resumed when its run folder exists) and print the '
        'table. Options not listed here (--trainer.*, --model.*, --data.*) '
        f'go to every run of glore-pyg {command} fit. Configurations (the '
        'unit spec at the insertion point): ' + '; '.join(
            f'{name}: {spec or "no unit"}'
            for name, spec in app['configurations'].items()) + '.')
    p.add_argument('--config', default=app['presets'][0],
                   help=f"a preset ({', '.join(app['presets'])}) or a YAML "
                   f"file (default: {app['presets'][0]})")
    flag, default, help_ = app['point']
    p.add_argument(flag, default=default, help=help_)
    p.add_argument('--seeds', default='0',
                   help='comma-separated seeds (default: 0)')
    p.add_argument('--only', default=None,
                   help=f"comma-separated configuration names, from "
                   f"{names} (default: all)")
    p.add_argument('--out', required=True, help='folder of the runs')
    p.add_argument('--json', default=None,
                   help='also write the table as JSON here')
    return p


def compare(command: str, argv: List[str]) -> List[Dict]:
    """``glore-pyg {segment,classify} compare``: see the module docstring.

    Raises:
        RunFolderError: an unknown ``--only`` name, bad seeds, a run that
            failed (its command and exit status named), a config that does
            not build (checked in this process before any run starts).
    """
    app = APPS[command]
    args, passthrough = _compare_parser(command).parse_known_args(argv)
    configurations = app['configurations']
    names = list(configurations)
    if args.only:
        picked = [n.strip() for n in args.only.split(',')]
        unknown = [n for n in picked if n not in configurations]
        if unknown:
            raise RunFolderError(f"--only: unknown configuration(s) "
                                 f"{unknown}; choose from {names}")
        names = picked
    try:
        seeds = [int(s) for s in args.seeds.split(',')]
    except ValueError:
        raise RunFolderError(f"--seeds takes comma-separated ints, got "
                             f"{args.seeds!r}") from None
    config = _config_argument(command, args.config)
    point = getattr(args, app['point'][0].lstrip('-'))
    # build the data and the network once here, so that a bad config ends
    # in one line before any training process starts
    with quiet_lightning():
        AppCLI(command, args=['--config', config] + passthrough + [
            '--trainer.logger', 'false'], run=False)
    rows = []
    for name in names:
        spec = configurations[name]
        results = []
        for seed in seeds:
            folder = Path(args.out) / _slug(name) / f'seed{seed}'
            cmd = [sys.executable, '-m', 'glore_pyg.apps.cli', command, 'fit',
                   '--config', config, *passthrough, '--out', str(folder),
                   '--seed_everything', str(seed),
                   '--trainer.enable_progress_bar', 'false',
                   '--model.units', json.dumps({point: spec} if spec
                                               else {})]
            print(f'[compare] {name}, seed {seed}', file=sys.stderr,
                  flush=True)
            done = subprocess.run(cmd, env=dict(os.environ),
                                  stdout=subprocess.DEVNULL)
            if done.returncode != 0:
                raise RunFolderError(
                    f"the run {name!r}, seed {seed} failed (exit status "
                    f"{done.returncode}; its message is above); rerun it "
                    f"alone with: glore-pyg {shlex.join(cmd[3:])}")
            results.append(read_result(folder))
        rows.append(table_row(name, results, app['metrics']))
    print(table(rows, app['metrics']))
    per_class = per_class_rows_table(rows, app['per_class_title'])
    if per_class:
        print('\n' + per_class)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


def per_class_rows_table(rows: List[Dict], title: str = 'IoU') -> str:
    """The per-class table of :func:`compare`: a row per class, a column
    per configuration, the ``per_class`` metric in % (mean ± std over
    seeds; ``-`` where it is undefined in every seed).  Empty when the runs
    recorded no per-class metric."""
    classes = list(rows[0].get('per_class') or {})
    if not classes:
        return ''
    head = [f'{title} (%)'] + [r['name'] for r in rows]
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for c in classes:
        cells = [c]
        for r in rows:
            mean, sd = (r.get('per_class') or {}).get(c, (None, None))
            cells.append('-' if mean is None else f'{mean * 100:.1f}' + (
                f' ± {sd * 100:.1f}' if r.get('seeds', 2) > 1 else ''))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _config_argument(command: str, value: str) -> str:
    """A preset name or a file, as a path."""
    presets = APPS[command]['presets']
    if value in presets:
        return str(preset_path(command, value))
    if not Path(value).is_file():
        raise RunFolderError(f"--config: {value!r} is neither a preset "
                             f"({', '.join(presets)}) nor a file")
    return value


# --------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------
def pictures(command: str, argv: List[str]) -> List[str]:
    """``glore-pyg {segment,classify} pictures --out RUN``: draws what a
    trained run's unit does with one validation sample."""
    what = 'cloud' if command == 'segment' else 'image'
    p = argparse.ArgumentParser(
        prog=f'glore-pyg {command} pictures',
        description='Draw what a trained unit does with one validation '
        f'{what}: projection maps, the latent graph as a heat map and as a '
        'graph (PNG files).')
    p.add_argument('--out', required=True, help='a trained run folder')
    p.add_argument('--to', default=None,
                   help='folder of the PNG files (default: OUT/pictures)')
    p.add_argument('--index', type=int, default=0,
                   help=f'the validation {what} (default 0)')
    p.add_argument('--unit', default=None,
                   help='the unit drawn: a level (sa3, fp1, ...) or an '
                   'inserted module name (default: the first unit)')
    args = p.parse_args(argv)
    task, data = load_run(args.out, command)
    from ..functional.checks import check_index
    index = check_index(args.index, len(data.val_set), '--index')
    paths = task.draw(data, index, args.to or str(Path(args.out) /
                                                       'pictures'), args.unit)
    for path in paths:
        print(path)
    return paths


# --------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------
USAGE = """usage: glore-pyg {segment,classify} JOB [options]

jobs:
  fit        train (resumes from --out), writes result.json
  validate   the last checkpoint of --out on the validation split
  test       the same, with the per-class table (the validation split;
             ScanNet's whole test scenes with the scannet preset)
  predict    writes the predictions of --out's model (.npy; .ply for clouds)
  compare    trains a table of configurations over seeds, prints the table
  pictures   draws what a trained unit does (PNG files)

'glore-pyg segment fit --help' lists every option; presets:
  segment:  --config synthetic (default) | frog | scannet
  classify: --config digits (default) | folder
"""


#: the jobs' descriptions in their --help
JOBS = {
    'fit': 'Train one configuration into the run folder --out (resumed when '
           'it holds the same configuration) and write result.json.',
    'validate': 'Evaluate the last checkpoint of --out on the validation '
                'split; writes evaluation.json.',
    'test': 'Evaluate the last checkpoint of --out on the test samples (the '
            'validation split; ScanNet\'s whole test scenes with the scannet '
            'preset), print the per-class table; writes test.json.',
    'predict': 'Write the predictions of the last checkpoint of --out on the '
               'test samples into --out/predictions.',
}


def _lightning_args(command: str, job: str, argv: List[str]) -> List[str]:
    """Preset names as paths; for validate / test / predict, ``--out RUN``
    brings the run's config and last checkpoint."""
    args = []
    for i, arg in enumerate(argv):
        if arg.startswith('--config='):
            arg = '--config=' + _config_argument(command, arg.split('=', 1)[1])
        elif i > 0 and argv[i - 1] in ('--config', '-c'):
            arg = _config_argument(command, arg)
        args.append(arg)
    out = next((a.split('=', 1)[1] for a in args if a.startswith('--out=')),
               args[args.index('--out') + 1] if '--out' in args[:-1]
               else None)
    if job != 'fit' and any(a.startswith('--model') for a in args):
        raise RunFolderError(f"{job} takes the model from the checkpoint: "
                             f"--model options are not used")
    if job != 'fit' and out is not None:
        out = run_folder(out, command)
        args = ['--config', str(out / 'config.yaml')] + args
        if not any(a.split('=')[0] == '--ckpt_path' for a in args):
            args += ['--ckpt_path', str(out / 'checkpoints' / 'last.ckpt')]
    return [job] + args


def main(argv: Optional[List[str]] = None) -> int:
    """Runs ``glore-pyg ARGS`` (the console script's entry point).

    Args:
        argv (list of str, optional): the arguments without the program
            name. (default: :obj:`None`: ``sys.argv[1:]``)

    Returns:
        0 on success.

    Raises:
        SystemExit: usage errors and ``--help`` (from the parsers); a run
            folder, config or data set that cannot be used (status 1, one
            line: the message of the :class:`ValueError`,
            :class:`TypeError`, :class:`IndexError`,
            :class:`FileNotFoundError` or
            :class:`~glore_pyg.apps.base.RunFolderError`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    jobs = (*LIGHTNING_JOBS, 'compare', 'pictures')
    if len(argv) < 2 or argv[0] not in APPS or argv[1] not in jobs:
        if argv[:1] in (['-h'], ['--help']) or argv[1:2] in (['-h'],
                                                             ['--help']):
            print(USAGE)
            return 0
        print(USAGE, file=sys.stderr)
        if argv[:1] and argv[0] not in APPS:
            print(f"glore-pyg: unknown command {argv[0]!r}; choose from "
                  f"{list(APPS)}", file=sys.stderr)
        elif len(argv) > 1:
            print(f"glore-pyg {argv[0]}: unknown job {argv[1]!r}; choose "
                  f"from {list(jobs)}", file=sys.stderr)
        raise SystemExit(2)
    command, job, rest = argv[0], argv[1], argv[2:]
    warnings.filterwarnings('ignore', message="LightningCLI's args parameter")
    warnings.filterwarnings('ignore', message='.*treespec, LeafSpec')
    # validate / test / predict read a checkpoint without writing any
    warnings.filterwarnings('ignore', message='Be aware that when using '
                            '`ckpt_path`, callbacks used to create')
    # a resumed run writes into its own checkpoint folder
    warnings.filterwarnings('ignore', message='Checkpoint directory .* exists '
                            'and is not empty')
    try:
        if job == 'compare':
            compare(command, rest)
        elif job == 'pictures':
            pictures(command, rest)
        else:
            with quiet_lightning():
                AppCLI(command, args=_lightning_args(command, job, rest))
    except (RunFolderError, ValueError, TypeError, IndexError,
            FileNotFoundError, ImportError, ProcessGroupError) as e:
        if not getattr(e, 'reported', False):
            print(f'glore-pyg {command} {job}: {e}', file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt:
        print(f'glore-pyg {command} {job}: interrupted; the same command '
              f'resumes from the last finished epoch', file=sys.stderr)
        raise SystemExit(130)
    return 0


if __name__ == '__main__':  # python -m glore_pyg.apps.cli
    sys.exit(main())

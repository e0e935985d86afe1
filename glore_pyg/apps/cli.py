"""``glore-pyg``: the console script.

    glore-pyg segment train --units sa3=latentgnn --epochs 20 --out runs/lat
    glore-pyg segment evaluate --out runs/lat
    glore-pyg segment compare --epochs 20 --seeds 0,1,2 --out runs/compare
    glore-pyg segment pictures --out runs/lat

    glore-pyg classify train --units layer3=glore --out runs/g
    glore-pyg classify compare --seeds 0,1,2 --out runs/digits
    glore-pyg classify pictures --out runs/digits/GloRe/seed0

``segment compare`` trains PointNet++ without a unit, with a non-local
block, with LatentGNN (1 and 3 kernels) and with GloRe at the same level;
``classify compare`` trains the image classifier without a unit and with
GloRe, LatentGNN (1 and 2 kernels) and a non-local block after the same
module.  Each
configuration and seed runs in its own process (so that its peak memory is
its own) and the paper-style table is printed.  Every run writes its
folder: checkpoints (resumed when present), ``metrics.csv`` per epoch and
``result.json``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

#: name -> unit spec at the insertion level (None: the baseline)
CONFIGURATIONS = {
    'baseline': None,
    '+non-local': 'nonlocal',
    '+LatentGNN (1 kernel)': 'latentgnn:d=32',
    '+LatentGNN (3 kernels)': 'latentgnn:d=32,kernels=3',
    '+GloRe': 'glore',
}


#: name -> unit spec after the insertion point (None: the baseline)
CLASSIFY_CONFIGURATIONS = {
    'baseline': None,
    '+GloRe': 'glore',
    '+LatentGNN (1 kernel)': 'latentgnn:d=16',
    '+LatentGNN (2 kernels)': 'latentgnn:d=16,kernels=2',
    '+non-local': 'nonlocal',
}


def _units(values: Optional[List[str]], what: str = 'LEVEL',
           example: str = 'sa3=latentgnn:kernels=3') -> Dict[str, str]:
    units = {}
    for item in values or []:
        level, eq, spec = item.partition('=')
        if not eq or not level or not spec:
            raise argparse.ArgumentTypeError(
                f"--units takes {what}=SPEC (e.g. "
                f"{example}), got {item!r}")
        units[level.strip()] = spec.strip()
    return units


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('data and model')
    g.add_argument('--data', default='synthetic',
                   choices=['synthetic', 'frog', 'scannet'],
                   help='data set (default: the embedded synthetic scenes)')
    g.add_argument('--root', default=None,
                   help='folder of scannet_train.pickle / scannet_test.pickle')
    g.add_argument('--points', type=int, default=2048,
                   help='points per sample (default: 2048)')
    g.add_argument('--train-size', type=int, default=None,
                   help='training samples (default: 128 synthetic rooms, '
                   '100 frog crops; ScanNet: every scene)')
    g.add_argument('--val-size', type=int, default=None,
                   help='validation samples (default: 32 rooms, 20 crops)')
    g.add_argument('--preset', default='small', choices=['small', 'scannet'],
                   help='network size (default: small)')
    _training(p, epochs=25, batch_size=8, lr=1e-3)


def _training(p: argparse.ArgumentParser, epochs: int, batch_size: int,
              lr: float) -> None:
    t = p.add_argument_group('training')
    t.add_argument('--epochs', type=int, default=epochs)
    t.add_argument('--batch-size', type=int, default=batch_size)
    t.add_argument('--lr', type=float, default=lr)
    t.add_argument('--precision', default=None,
                   help="Lightning precision, e.g. bf16-mixed "
                        "(default: float32)")
    t.add_argument('--accelerator', default='auto',
                   help='cpu, cuda or auto (default)')
    t.add_argument('--no-progress', action='store_true',
                   help='no progress bar')
    t.add_argument('--config', default=None,
                   help='a JSON file of these options (flags override it)')


def _classify_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('data and model')
    g.add_argument('--data', default='digits', choices=['digits', 'folder'],
                   help='data set (default: digit mosaics built from '
                   "scikit-learn's handwritten digits)")
    g.add_argument('--root', default=None,
                   help='folder of images, one sub-folder per class (or '
                   'train/ and val/ folders of such)')
    g.add_argument('--arch', default='digits',
                   choices=['digits', 'resnet18', 'resnet50'],
                   help='backbone (default: the small ResNet of the digits '
                   'example)')
    g.add_argument('--image-size', type=int, default=64,
                   help='side the folder images are resized to (default 64)')
    g.add_argument('--train-size', type=int, default=None,
                   help='digits: training mosaics (default 8000)')
    g.add_argument('--val-size', type=int, default=None,
                   help='digits: test mosaics (default 2000)')
    g.add_argument('--pretrained', default=None, metavar='FILE',
                   help='backbone weights to start from (a state dict, e.g. '
                   "torchvision's resnet18 weights with --arch resnet18; a "
                   'classifier of another size is left out)')
    g.add_argument('--val-fraction', type=float, default=0.2,
                   help='folder without train/ and val/: the held-out '
                   'fraction of each class (default 0.2, seeded)')
    _training(p, epochs=10, batch_size=64, lr=2e-3)


def _train_job(jobs, common, metavar: str, units_help: str) -> None:
    train = jobs.add_parser('train', help='train one configuration (resumes '
                            'from the output folder)')
    common(train)
    train.add_argument('--units', nargs='*', default=[], metavar=metavar,
                       help=units_help)
    train.add_argument('--seed', type=int, default=0)
    train.add_argument('--out', required=True, help='run folder')
    train.add_argument('--no-resume', action='store_true',
                       help='start afresh even if a checkpoint exists')


def _compare_job(jobs, common, help: str, flag: str, default: str,
                 where_help: str) -> None:
    cmp_ = jobs.add_parser('compare', help=help)
    common(cmp_)
    cmp_.add_argument(flag, default=default, help=where_help)
    cmp_.add_argument('--seeds', default='0',
                      help='comma-separated seeds (default: 0)')
    cmp_.add_argument('--only', default=None,
                      help='comma-separated configuration names')
    cmp_.add_argument('--out', required=True, help='folder of the runs')
    cmp_.add_argument('--json', default=None,
                      help='also write the table as JSON here')


def _pictures_job(jobs, help: str, sample: str, flag: str,
                  which_help: str) -> None:
    pic = jobs.add_parser('pictures', help=help)
    pic.add_argument('--out', required=True, help='a trained run folder')
    pic.add_argument('--to', default=None,
                     help='folder of the PNG files (default: OUT/pictures)')
    pic.add_argument('--index', type=int, default=0,
                     help=f'the validation {sample} (default 0)')
    pic.add_argument(flag, default=None, help=which_help)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='glore-pyg', description='Global reasoning units for PyTorch '
        'Geometric: applications.')
    sub = p.add_subparsers(dest='command', required=True)
    seg = sub.add_parser('segment', help='point-cloud semantic segmentation '
                         '(PointNet++ with global-reasoning units)')
    jobs = seg.add_subparsers(dest='job', required=True)
    _train_job(jobs, _common, 'LEVEL=SPEC',
               'units to insert, e.g. sa3=latentgnn:kernels=3 (levels sa1.. '
               'and fp1..; kinds glore, latentgnn, nonlocal)')
    ev = jobs.add_parser('evaluate', help='evaluate the last checkpoint of a '
                         'run folder on its validation split (or on whole '
                         'ScanNet test scenes)')
    ev.add_argument('--out', required=True, help='run folder')
    ev.add_argument('--root', default=None,
                    help='ScanNet folder, if not the one used in training')
    ev.add_argument('--whole-scene', action='store_true',
                    help="ScanNet: every point of every test scene, in "
                    "1.5 m columns (PointNet++'s protocol)")
    _compare_job(jobs, _common, 'train baseline, +non-local, +LatentGNN (1 '
                 'and 3 kernels) and +GloRe and print the table', '--level',
                 'sa3', 'where the units go (default: sa3, the coarsest '
                 'level of the small network)')
    _pictures_job(jobs, 'draw what a trained unit does: points coloured by '
                  'latent node, weight maps in 3-D, the latent graph (PNG '
                  'files)', 'cloud', '--level', 'the level whose unit is '
                  'drawn (default: the first with a unit)')

    cls = sub.add_parser('classify', help='image classification (a ResNet '
                         'with global-reasoning units inserted)')
    jobs = cls.add_subparsers(dest='job', required=True)
    _train_job(jobs, _classify_common, 'NAME=SPEC',
               'units to insert after sub-modules, e.g. layer3=glore (kinds '
               'glore, latentgnn, nonlocal)')
    ev = jobs.add_parser('evaluate', help='evaluate the last checkpoint of a '
                         'run folder on its validation split')
    ev.add_argument('--out', required=True, help='run folder')
    ev.add_argument('--root', default=None,
                    help='image folder, if not the one used in training')
    _compare_job(jobs, _classify_common, 'train baseline, +GloRe, '
                 '+LatentGNN (1 and 2 kernels) and +non-local and print the '
                 'table', '--point',
                 'layer3', 'the module the units go after (default: layer3, '
                 'the last stage of the digits network)')
    _pictures_job(jobs, 'draw what a trained unit does: projection maps '
                  'over an image, the latent graph as a heat map and as a '
                  'graph (PNG files)', 'image', '--unit', 'the inserted unit '
                  'by module name (default: the first)')
    return p


def _apply_config(args, parser) -> None:
    if not args.config:
        return
    try:
        values = json.loads(Path(args.config).read_text())
    except (OSError, ValueError) as e:
        parser.error(f"--config {args.config}: {e}")
    defaults = parser.parse_args([args.command, args.job, '--out', 'x'])
    for key, value in values.items():
        key = key.replace('-', '_')
        if not hasattr(args, key):
            parser.error(f"--config {args.config}: unknown option {key!r}")
        if getattr(args, key) == getattr(defaults, key, None):
            setattr(args, key, value)  # flags given explicitly win


def _train(args) -> Dict:
    from ..pointcloud.training import fit
    return fit(args.out, data=args.data, units=_units(args.units),
               preset=args.preset, epochs=args.epochs,
               batch_size=args.batch_size, num_points=args.points,
               train_size=args.train_size, val_size=args.val_size,
               lr=args.lr, seed=args.seed, root=args.root,
               precision=args.precision, resume=not args.no_resume,
               progress=not args.no_progress, accelerator=args.accelerator)


def _evaluate(args) -> Dict:
    from ..pointcloud.training import evaluate
    try:
        result = evaluate(args.out, root=args.root,
                          whole_scene=args.whole_scene)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e))
    print(json.dumps(result, indent=2))
    return result


def _pick(names: List[str], only: Optional[str]) -> List[str]:
    if not only:
        return names
    picked = [n.strip() for n in only.split(',')]
    unknown = [n for n in picked if n not in names]
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {unknown}; "
                         f"choose from {names}")
    return picked


def _run(args, command: str, name: str, seed: int, extra: List[str]
         ) -> Dict:
    """One configuration and seed in its own process; its result.json."""
    folder = Path(args.out) / _slug(name) / f'seed{seed}'
    cmd = [sys.executable, '-m', 'glore_pyg.apps.cli', command, 'train',
           '--out', str(folder), '--seed', str(seed), '--data', args.data,
           '--epochs', str(args.epochs), '--batch-size', str(args.batch_size),
           '--lr', str(args.lr), '--accelerator', args.accelerator,
           '--no-progress'] + extra
    for flag, value in (('--root', args.root),
                        ('--train-size', args.train_size),
                        ('--val-size', args.val_size),
                        ('--precision', args.precision)):
        if value is not None:
            cmd += [flag, str(value)]
    print(f'[compare] {name}, seed {seed}', file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=dict(os.environ))
    return json.loads((folder / 'result.json').read_text())


def _compare(args) -> List[Dict]:
    names = _pick(list(CONFIGURATIONS), args.only)
    seeds = [int(s) for s in args.seeds.split(',')]
    rows = []
    for name in names:
        spec = CONFIGURATIONS[name]
        extra = ['--points', str(args.points), '--preset', args.preset]
        if spec:
            extra += ['--units', f'{args.level}={spec}']
        rows.append(_row(name, [_run(args, 'segment', name, seed, extra)
                                for seed in seeds]))
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


def _slug(name: str) -> str:
    return ''.join(c if c.isalnum() else '_' for c in name).strip('_')


METRICS = [('val_point_acc', 'point acc'), ('val_voxel_acc', 'voxel acc'),
           ('val_class_point_acc', 'class-avg acc'), ('val_miou', 'mIoU')]


def _ambiguous_classes(result: Dict) -> List[str]:
    """The synthetic scenes' classes that only context tells apart."""
    if result['config'].get('data') != 'synthetic':
        return []
    from ..pointcloud.datasets import AMBIGUOUS_PAIRS, CLASS_NAMES
    return [CLASS_NAMES[c] for pair in AMBIGUOUS_PAIRS for c in pair]


def _row(name: str, results: List[Dict], metrics=None) -> Dict:
    def stat(values):
        values = [v for v in values if v is not None]
        if not values:
            return None, None
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.mean(values), sd
    row = dict(name=name, seeds=len(results),
               params=results[0]['params'], flops=results[0]['flops'])
    for key, _ in metrics or METRICS:
        row[key] = stat([r['metrics'].get(key) for r in results])
    ambiguous = _ambiguous_classes(results[0])
    row['val_ambiguous_iou'] = stat([
        statistics.mean(r['iou_per_class'][c] for c in ambiguous)
        for r in results]) if ambiguous else (None, None)
    row['seconds_per_epoch'] = stat([r['seconds_per_epoch']
                                     for r in results])
    row['peak_rss_bytes'] = stat([r['peak_rss_bytes'] for r in results])
    return row


def _mega(v: float) -> str:
    return f'{v / 1e6:.0f}M' if abs(v) >= 1e8 else f'{v / 1e6:.3g}M'


def table(rows: List[Dict], metrics=None) -> str:
    """The paper-style table: params, FLOPs, accuracies (mean ± std over
    seeds, in %; the value alone for one seed), time per epoch, peak
    memory.  ``metrics``: (key, title)
    pairs, default the segmentation metrics."""
    metrics = metrics or METRICS
    base = rows[0]
    ambiguous = any(r.get('val_ambiguous_iou', (None, ))[0] is not None
                    for r in rows)
    head = ['configuration', 'params', 'FLOPs'] + [t for _, t in metrics] + (
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
        extra_f = r['flops'] - base['flops']
        params = f"{r['params'] / 1e6:.3f}M" + (
            f' (+{extra_p / 1e6:.3f}M)' if r is not base else '')
        flops = _mega(r['flops']) + (
            f' (+{_mega(extra_f)})' if r is not base else '')
        n = r.get('seeds', 2)
        cells = [r['name'], params, flops] + [pm(r[k], n) for k, _ in metrics]
        if ambiguous:
            cells.append(pm(r['val_ambiguous_iou'], n))
        cells += [pm(r['seconds_per_epoch'], n, 1.0, 2),
                  pm(r['peak_rss_bytes'], n, 1e-9, 2) + ' GB']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


CLASSIFY_METRICS = [('val_acc', 'accuracy')]


def _classify_train(args) -> Dict:
    from ..vision.training import fit
    return fit(args.out, data=args.data, val_fraction=args.val_fraction,
               pretrained=args.pretrained,
               units=_units(args.units, 'NAME', 'layer3=glore'),
               arch=args.arch, epochs=args.epochs,
               batch_size=args.batch_size, lr=args.lr, seed=args.seed,
               root=args.root, train_size=args.train_size,
               val_size=args.val_size, image_size=args.image_size,
               precision=args.precision, resume=not args.no_resume,
               progress=not args.no_progress, accelerator=args.accelerator)


def _classify_evaluate(args) -> Dict:
    from ..vision.training import evaluate
    try:
        result = evaluate(args.out, args.root)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e))
    print(json.dumps(result, indent=2))
    return result


def _classify_compare(args) -> List[Dict]:
    names = _pick(list(CLASSIFY_CONFIGURATIONS), args.only)
    seeds = [int(s) for s in args.seeds.split(',')]
    rows = []
    for name in names:
        spec = CLASSIFY_CONFIGURATIONS[name]
        extra = ['--arch', args.arch, '--image-size', str(args.image_size),
                 '--val-fraction', str(args.val_fraction)]
        if args.pretrained:
            extra += ['--pretrained', args.pretrained]
        if spec:
            extra += ['--units', f'{args.point}={spec}']
        rows.append(_row(name, [_run(args, 'classify', name, seed, extra)
                                for seed in seeds], CLASSIFY_METRICS))
    print(table(rows, CLASSIFY_METRICS))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


def _pictures(args) -> List[str]:
    try:
        if args.command == 'segment':
            from ..pointcloud.pictures import draw_run
            paths = draw_run(args.out, args.to, index=args.index,
                             level=args.level)
        else:
            from ..vision.pictures import draw_run
            paths = draw_run(args.out, args.to, index=args.index,
                             unit=args.unit)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e))
    for path in paths:
        print(path)
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    """Runs ``glore-pyg ARGS`` (the console script's entry point).

    Args:
        argv (list of str, optional): the arguments, without the program
            name. (default: :obj:`None`: ``sys.argv[1:]``)

    Returns:
        0 on success; invalid arguments exit through
        :meth:`argparse.ArgumentParser.error` (status 2).

    Raises:
        SystemExit: ``--help`` (status 0); invalid arguments, an unreadable
            ``--config`` or an unknown option in it (status 2); from
            ``segment evaluate`` / ``classify evaluate`` /
            ``classify pictures``, a missing run folder or checkpoint (and
            a ``--whole-scene`` run that is not ScanNet, an unknown
            ``--unit``), and from ``compare`` an unknown ``--only`` name
            (status 1, the message printed).
        subprocess.CalledProcessError: a run of ``compare`` failed.
        ValueError: from ``segment train`` / ``classify train``, what
            :func:`glore_pyg.apps.segmentation.training.fit` /
            :func:`glore_pyg.apps.classification.training.fit` raise (e.g. a checkpoint
            of another configuration in ``--out``).
        ImportError: Lightning (the ``train`` extra) not installed, for
            ``train`` / ``evaluate`` / ``compare``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    segment = args.command == 'segment'
    if args.job in ('train', 'compare'):
        _apply_config(args, parser)
    if args.job == 'train':
        try:
            _units(args.units, *(() if segment else ('NAME', 'layer3=glore')))
        except argparse.ArgumentTypeError as e:
            parser.error(str(e))
        try:
            result = (_train if segment else _classify_train)(args)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f'glore-pyg {args.command} train: {e}')
        print(json.dumps(result['metrics'], indent=2))
    elif args.job == 'evaluate':
        (_evaluate if segment else _classify_evaluate)(args)
    elif args.job == 'compare':
        (_compare if segment else _classify_compare)(args)
    else:
        _pictures(args)
    return 0

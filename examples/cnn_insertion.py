"""Global-reasoning units in a CNN, end to end, with the library's API:

1. insert GloRe units into a ResNet-50 (GloRe's ImageNet setting) and print
   what they cost, like the papers' "+Params / +GFLOPs" columns (multiply-
   adds);
2. train the digit-mosaic classifier ("are the two distant digits equal?")
   without a unit and with GloRe, LatentGNN (two kernels) and a non-local
   block after its last stage, and print the table;
3. draw what the trained GloRe unit does with one test image.

    python examples/cnn_insertion.py                 # about 4 minutes on 2 CPU cores
    python examples/cnn_insertion.py --epochs 2 --train-size 2000   # a quick look

Part 2 uses the Lightning objects of the ``classify`` command directly
(``ClassificationData``, ``ClassificationTask`` and a ``lightning.Trainer``)
with the settings of its ``digits`` preset, and keeps nothing on disk but
the pictures.  The console script runs the same
comparison over several seeds, each run in its own process with a run
folder: ``glore-pyg classify compare --seeds 0,1,2 --out runs/digits``.
Needs the ``train`` and ``vision`` extras.
"""
import argparse
import functools
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from glore_pyg.apps.base import quiet_lightning
from glore_pyg.apps.classification import insert_units, resnet50, unit_overhead
from glore_pyg.apps.classification.task import (ClassificationData,
                                                ClassificationTask)

CONFIGURATIONS = {'baseline': None, '+GloRe': 'glore',
                  '+LatentGNN': 'latentgnn:d=16,kernels=2',
                  '+non-local': 'nonlocal'}


def train(spec, epochs, train_size, val_size, seed):
    """One configuration: ``(task, data, result)`` after ``epochs``."""
    L.seed_everything(seed, verbose=False)  # the initial weights
    data = ClassificationData('digits', train_size=train_size,
                              val_size=val_size, batch_size=64, seed=seed)
    task = ClassificationTask(
        arch='digits', units={'layer3': spec} if spec else None,
        optimizer=functools.partial(torch.optim.Adam, lr=2e-3,
                                    weight_decay=1e-4),
        lr_scheduler=functools.partial(
            torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs),
        seed=seed, in_channels=data.in_channels,
        num_classes=data.num_classes, class_names=data.class_names)
    timer = Timer()
    with quiet_lightning():  # no device / tip lines between the rows
        trainer = L.Trainer(max_epochs=epochs, accelerator='cpu',
                            logger=False, enable_checkpointing=False,
                            enable_progress_bar=False,
                            use_distributed_sampler=False,  # data's order
                            enable_model_summary=False, callbacks=[timer])
        trainer.fit(task, datamodule=data)
        metrics = trainer.validate(task, datamodule=data, verbose=False)[0]
    result = dict(task.complexity(data), val_acc=float(metrics['val_acc']),
                  seconds_per_epoch=timer.time_elapsed('train') / epochs)
    return task, data, result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--train-size', type=int, default=8000)
    p.add_argument('--val-size', type=int, default=2000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None,
                   help='folder of the pictures (default: a temporary one)')
    args = p.parse_args(argv)
    # Lightning's own deprecation notice under recent torch (as the CLI)
    warnings.filterwarnings('ignore', message='.*treespec, LeafSpec')

    # 1. insertion and overhead
    model = resnet50(num_classes=1000)
    insert_units(model, ['layer3.1', 'layer3.3', 'layer3.5'], 'glore')
    print('ResNet-50 with three GloRe units on Res4, at 224 x 224:')
    print(unit_overhead(model, (1, 3, 224, 224)).table(), '\n')

    # 2. the comparison on real digit scans
    out = Path(args.out or tempfile.mkdtemp(prefix='glore_pyg_digits_'))
    print('| configuration | params | MACs | test accuracy | s / epoch |')
    print('|---|---|---|---|---|')
    trained = {}
    for name, spec in CONFIGURATIONS.items():
        task, data, r = train(spec, args.epochs, args.train_size,
                              args.val_size, args.seed)
        trained[name] = task, data
        print(f"| {name} | {r['params']:,} | {r['macs'] / 1e6:.1f}M | "
              f"{r['val_acc']:.3f} | {r['seconds_per_epoch']:.1f} |",
              flush=True)

    # 3. pictures of the trained GloRe unit
    task, data = trained['+GloRe']
    for path in task.eval().draw(data, 0, str(out / 'GloRe' / 'pictures')):
        print('wrote', path)


if __name__ == '__main__':
    main()

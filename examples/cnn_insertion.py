"""Global-reasoning units in a CNN, end to end, with the library's API:

1. insert GloRe units into a ResNet-50 (GloRe's ImageNet setting) and print
   what they cost, like the papers' "+Params / +GFLOPs" columns;
2. train the digit-mosaic classifier ("are the two distant digits equal?")
   without a unit and with GloRe, LatentGNN (two kernels) and a non-local
   block after its last stage, and print the table;
3. draw what the trained GloRe unit does with one test image.

    python examples/cnn_insertion.py                 # about 4 minutes on 2 CPU cores
    python examples/cnn_insertion.py --epochs 2 --train-size 2000   # a quick look

The console script runs the same comparison over several seeds, each run in
its own process: ``glore-pyg classify compare --seeds 0,1,2 --out runs/digits``.
Needs the ``train`` and ``vision`` extras.
"""
import argparse
import tempfile
from pathlib import Path

from glore_pyg.apps.classification import insert_units, resnet50, unit_overhead
from glore_pyg.apps.classification.pictures import draw_run
from glore_pyg.apps.classification.training import fit

CONFIGURATIONS = {'baseline': None, '+GloRe': 'glore',
                  '+LatentGNN': 'latentgnn:d=16,kernels=2',
                  '+non-local': 'nonlocal'}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--train-size', type=int, default=8000)
    p.add_argument('--val-size', type=int, default=2000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None,
                   help='folder of the runs (default: a temporary one)')
    args = p.parse_args(argv)

    # 1. insertion and overhead
    model = resnet50(num_classes=1000)
    insert_units(model, ['layer3.1', 'layer3.3', 'layer3.5'], 'glore')
    print('ResNet-50 with three GloRe units on Res4, at 224 x 224:')
    print(unit_overhead(model, (1, 3, 224, 224)).table(), '\n')

    # 2. the comparison on real digit scans
    out = Path(args.out or tempfile.mkdtemp(prefix='glore_pyg_digits_'))
    print('| configuration | params | FLOPs | test accuracy | s / epoch |')
    print('|---|---|---|---|---|')
    for name, spec in CONFIGURATIONS.items():
        r = fit(out / name.strip('+'), units={'layer3': spec} if spec else
                None, epochs=args.epochs, train_size=args.train_size,
                val_size=args.val_size, seed=args.seed, progress=False,
                accelerator='cpu')
        print(f"| {name} | {r['params']:,} | {r['flops'] / 1e6:.1f}M | "
              f"{r['metrics']['val_acc']:.3f} | "
              f"{r['seconds_per_epoch']:.1f} |", flush=True)

    # 3. pictures of the trained GloRe unit
    for path in draw_run(out / 'GloRe', index=0):
        print('wrote', path)


if __name__ == '__main__':
    main()

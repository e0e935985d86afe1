"""Why LatentGNN failed the relational digits task in most runs: ablations of
the unit on ``glore-pyg classify fit --config digits``, each over several
seeds, counting the runs that learn the relation.  What they found
(``docs/classification.md``): the published graph-convolution weight
(``graph_conv``) makes the unit learn in 17 of 20 runs (2 of 15 without it),
so ``glore-pyg classify compare`` uses it.

    python benchmarks/latentgnn_digits.py --seeds 0,1,2,3,4
    python benchmarks/latentgnn_digits.py --only default,gamma0.1 --seeds 0,1

Each run is the digits preset (8,000 training mosaics, 10 epochs, Adam
2e-3, cosine) with one unit after ``layer3``; a run *learns* when its
validation accuracy reaches ``--threshold`` (default 0.75; chance is 0.5,
the baseline stays at 0.50, GloRe reaches 0.92-0.95).  Variants that the
spec language cannot express change the fresh unit before training
through a Lightning callback (:class:`UnitInit`): another start of
``gamma``, no ReLU on the projections, ``gamma``'s own learning rate, or
the published ``LatentGNNV1`` module (the independent copy in
``tests/interop/published.py``) trained in the unit's place with the
unit's initial weights (exported by :mod:`glore_pyg.interop`); the library
is not changed.  Runs are kept under ``--out`` and reused when rerun.
Run it with nothing else on the machine's cores: two runs that share them
slow each other down several times over (the results do not change).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

HERE = Path(__file__).resolve().parent

#: name -> (unit spec, extra command-line options); the unit goes after
#: ``layer3`` unless the name says ``@layerN``.
CALLBACK = '--trainer.callbacks'


def _init(**options):
    out = [CALLBACK, 'latentgnn_digits.UnitInit']
    for key, value in options.items():
        out += [f'{CALLBACK}.init_args.{key}', str(value).lower()]
    return out


VARIANTS = {
    'default': ('latentgnn:d=16', []),
    'gamma0.1': ('latentgnn:d=16', _init(gamma=0.1)),
    'zero-bn-gamma1': ('latentgnn:d=16', _init(gamma=1.0, zero_up_bn=True)),
    'published': ('latentgnn:d=16', _init(published=True)),
    'no-relu': ('latentgnn:d=16', _init(relu=False)),
    'gamma-lr10': ('latentgnn:d=16', _init(gamma_lr_factor=10.0)),
    'kernels2': ('latentgnn:d=16,kernels=2', []),
    'graph_conv': ('latentgnn:d=16,graph_conv=1', []),
    'graph_conv+kernels2': ('latentgnn:d=16,kernels=2,graph_conv=1', []),
    'd4': ('latentgnn:d=4', []),
    'default@layer2': ('latentgnn:d=16', []),
    'symmetric': ('latentgnn:d=16,mode=symmetric', []),
    'channel_stride1': ('latentgnn:d=16,channel_stride=1', []),
    'd64': ('latentgnn:d=64', []),
    'lr5e-4': ('latentgnn:d=16', ['--model.optimizer.init_args.lr',
                                  '0.0005']),
}


class Published(torch.nn.Module):
    """The published ``LatentGNNV1`` (the independent copy in
    ``tests/interop/published.py``) holding the weights of one of our
    units, exported through :func:`glore_pyg.interop
    .export_official_latentgnn`: trained in our unit's place."""

    def __init__(self, unit):
        from glore_pyg.interop import export_official_latentgnn
        from tests.interop.published import LatentGNNV1
        super().__init__()
        self.in_channels = unit.in_channels  # for the run's cost table
        self.published = LatentGNNV1(
            unit.in_channels, unit.latent_dims, unit.channel_stride,
            unit.mode, unit.graph_conv, unit.without_residual)
        self.published.load_state_dict(export_official_latentgnn(unit))

    def forward(self, x):
        return self.published(x)


class UnitInit(L.Callback):
    """Changes every LatentGNN unit of a fresh model before training:

    * ``gamma``: the scalar's start value (ours: 0);
    * ``zero_up_bn``: the last BatchNorm's weight (``up[1]``) zeroed, so
      that the unit is still the identity while ``gamma`` is not zero;
    * ``relu=False``: the ReLU of the projection heads removed;
    * ``published``: the unit replaced by the published module with its
      weights (:class:`Published`);
    * ``gamma_lr_factor``: ``gamma`` trained at this multiple of the
      learning rate (its own parameter group, the same schedule).

    The model is changed in ``setup``, before the optimiser exists; the
    learning rate of ``gamma`` once the optimiser exists."""

    def __init__(self, gamma: float = 0.0, zero_up_bn: bool = False,
                 relu: bool = True, published: bool = False,
                 gamma_lr_factor: float = 1.0):
        self.gamma, self.zero_up_bn = float(gamma), bool(zero_up_bn)
        self.relu, self.published = bool(relu), bool(published)
        self.gamma_lr_factor = float(gamma_lr_factor)

    def setup(self, trainer, module, stage):
        from glore_pyg.apps.classification.insert import InsertedUnit
        from glore_pyg.nn import LatentGNNConv
        if stage != 'fit':
            return
        with torch.no_grad():
            for m in module.modules():
                if isinstance(m, LatentGNNConv):
                    m.gamma.fill_(self.gamma)
                    if self.zero_up_bn:
                        m.up[1].weight.zero_()
                    if not self.relu:
                        for head in [*m.psi_v2l, *(m.psi_l2v or [])]:
                            head[-1] = torch.nn.Identity()
            if self.published:
                for m in [m for m in module.modules()
                          if isinstance(m, InsertedUnit)]:
                    m.unit = Published(m.unit)

    def on_fit_start(self, trainer, module):
        if self.gamma_lr_factor == 1.0:
            return
        gammas = [p for n, p in module.named_parameters()
                  if n.endswith('.gamma')]
        optimizer = trainer.optimizers[0]
        group = optimizer.param_groups[0]
        group['params'] = [p for p in group['params']
                           if all(p is not g for g in gammas)]
        lr = group.get('initial_lr', group['lr']) * self.gamma_lr_factor
        optimizer.add_param_group({'params': gammas, 'lr': lr,
                                   'initial_lr': lr})
        for config in trainer.lr_scheduler_configs:
            config.scheduler.base_lrs.append(lr)


def run(name: str, seed: int, out: Path) -> float:
    spec, extra = VARIANTS[name]
    point = name.split('@')[1] if '@' in name else 'layer3'
    folder = out / name / f'seed{seed}'
    result = folder / 'result.json'
    if not result.exists():
        cmd = [sys.executable, '-m', 'glore_pyg.apps.cli', 'classify', 'fit',
               '--config', 'digits', '--seed_everything', str(seed),
               '--trainer.enable_progress_bar', 'false',
               '--model.units', json.dumps({point: spec}), *extra,
               '--out', str(folder)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(HERE.parent), os.environ.get('PYTHONPATH', '')]))
        subprocess.run(cmd, check=True, cwd=HERE, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(result.read_text())['metrics']['val_acc']


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', default='0,1,2,3,4')
    p.add_argument('--only', default=','.join(VARIANTS))
    p.add_argument('--threshold', type=float, default=0.75)
    p.add_argument('--out', default='runs/latentgnn_digits')
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(',')]
    out = Path(args.out).resolve()
    print('| variant | unit spec, options | runs that learn | val acc per '
          'seed |\n|---|---|---|---|')
    for name in args.only.split(','):
        accs = [run(name, s, out) for s in seeds]
        spec, extra = VARIANTS[name]
        learned = sum(a >= args.threshold for a in accs)
        options = extra[2:] if extra[:1] == [CALLBACK] else extra
        options = [o.replace(f'{CALLBACK}.init_args.', '') for o in options]
        print(f"| {name} | `{spec}` {' '.join(options)} | "
              f"{learned} of {len(accs)} | "
              f"{' / '.join(f'{a:.3f}' for a in accs)} |", flush=True)


if __name__ == '__main__':
    main()

"""glore-pyg in two minutes: a point-cloud model and a CNN with global units.

1. Point clouds: a batch of synthetic clouds of different sizes (a PyG
   ``Batch``).  The label of each point is whether it lies above the median
   height of *its own cloud*: a local network cannot know that, one
   ``LatentGNNConv`` (global reasoning over the cloud's points) can.  We
   train a per-point MLP with and without the unit and print the accuracies.
2. CNNs: ``GloRe2d`` and ``LatentGNN2d`` dropped into a small conv net on
   ``[B, C, H, W]`` maps; a fresh unit leaves the network's output unchanged.

    python examples/quickstart.py [--steps 150]
"""
import argparse

import torch
from torch import nn
from torch_geometric.data import Batch, Data

from glore_pyg.nn import GloRe2d, LatentGNN2d, LatentGNNConv


def make_batch(num_clouds: int, generator: torch.Generator) -> Batch:
    clouds = []
    for _ in range(num_clouds):
        n = int(torch.randint(200, 600, (1, ), generator=generator))
        shift = torch.randn(1, 3, generator=generator) * 2.0
        pos = torch.randn(n, 3, generator=generator) + shift
        y = (pos[:, 2] > pos[:, 2].median()).long()
        clouds.append(Data(pos=pos, y=y))
    return Batch.from_data_list(clouds)


class PointNet(nn.Module):
    def __init__(self, use_global: bool, hidden: int = 64):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden))
        self.glob = LatentGNNConv(hidden, latent_dims=[16],
                                  channel_stride=2) if use_global else None
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, data: Batch) -> torch.Tensor:
        h = self.encode(data.pos)
        if self.glob is not None:
            h = self.glob(h, data.batch)  # [N, hidden], clouds kept apart
        return self.head(h)


def train(use_global: bool, steps: int) -> float:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = PointNet(use_global)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        data = make_batch(8, gen)
        loss = nn.functional.cross_entropy(model(data), data.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        test = make_batch(32, torch.Generator().manual_seed(1))
        return (model(test).argmax(-1) == test.y).float().mean().item()


def cnn_demo():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1)).eval()
    img = torch.randn(2, 3, 24, 40)
    before = net(img)
    for unit in (GloRe2d(32, num_mid=8), LatentGNN2d(32, latent_dims=[8, 8])):
        with_unit = nn.Sequential(*net, unit.eval())
        after = with_unit(img)
        print(f'  {unit}: output {tuple(after.shape)}, unchanged at '
              f'insertion: {torch.equal(before, after)}')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=150)
    args = p.parse_args(argv)
    print('Point clouds: is each point above its own cloud\'s median '
          'height?')
    local = train(False, args.steps)
    glob = train(True, args.steps)
    print(f'  per-point MLP accuracy:                  {local:.3f}')
    print(f'  per-point MLP + LatentGNNConv accuracy:  {glob:.3f}')
    print('CNN feature maps:')
    cnn_demo()


if __name__ == '__main__':
    main()

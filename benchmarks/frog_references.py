"""The reference predictors of the frog table, on the very validation crops
that ``glore-pyg segment compare --config frog`` evaluates (the preset's
data settings, one seed each):

* **majority**: every point is skeleton, the commonest tissue of the
  training half (45 % of the test half's points);
* **mirrored nearest neighbour**: each point takes the label of the
  training point nearest to its mirror image (the frog is close to
  mirror-symmetric about the plane y = 233), a lookup by absolute position
  with no learning: what position alone tells.

    python benchmarks/frog_references.py --seeds 0,1,2

Metrics are :class:`glore_pyg.apps.segmentation.metrics.SegmentationMetrics`
(the table's), mean ± std over the seeds, and the IoU per tissue.
"""
import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy.spatial import cKDTree

from glore_pyg.apps.segmentation.datasets.frog import (FROG_CLASS_NAMES,
                                                       FROG_MIDLINE_Y)
from glore_pyg.apps.segmentation.metrics import SegmentationMetrics
from glore_pyg.apps.segmentation.task import SegmentationData

PRESET = (Path(__file__).resolve().parents[1] / 'glore_pyg' / 'apps' /
          'configs' / 'frog.yaml')


def mirror_frame(points: np.ndarray) -> np.ndarray:
    """(x, |y - 233|, z): a point and its mirror image coincide."""
    out = points.astype(np.float64).copy()
    out[:, 1] = np.abs(out[:, 1] - FROG_MIDLINE_Y)
    return out


def evaluate(seed: int, voxel_size: float):
    config = yaml.safe_load(PRESET.read_text())
    data = SegmentationData(**{k: v for k, v in config['data'].items()
                               if k != 'num_workers'}, seed=seed)
    train, val = data.train_set, data.val_set
    low, span = train._frame
    lookup = cKDTree(mirror_frame(train.points))
    majority = int(np.bincount(train.labels).argmax())
    metrics = {name: SegmentationMetrics(15, None, voxel_size)
               for name in ('majority', 'mirrored nearest neighbour')}
    for item in val:
        # the item's features are its place in the mirror frame, scaled
        place = item.x[:, :3].double().numpy() * span + np.array(
            [low[0], 0.0, low[2]])
        _, j = lookup.query(place)
        predictions = {
            'majority': torch.full_like(item.y, majority),
            'mirrored nearest neighbour': torch.from_numpy(train.labels[j]),
        }
        for name, pred in predictions.items():
            metrics[name].update(item.pos, pred, item.y)
    return {name: m.compute() for name, m in metrics.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', default='0,1,2')
    args = p.parse_args(argv)
    config = yaml.safe_load(PRESET.read_text())
    voxel_size = config['model']['voxel_size']
    seeds = [int(s) for s in args.seeds.split(',')]
    runs = [evaluate(s, voxel_size) for s in seeds]
    keys = [('point_acc', 'point acc'), ('voxel_acc', 'voxel acc'),
            ('class_point_acc', 'class-avg acc'), ('miou', 'mIoU')]

    def pm(values):
        values = [100 * float(v) for v in values if not np.isnan(float(v))]
        if not values:
            return '-'
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f'{statistics.mean(values):.1f} ± {sd:.1f}'

    print('| predictor | ' + ' | '.join(t for _, t in keys) + ' |')
    print('|---' * (len(keys) + 1) + '|')
    for name in runs[0]:
        print(f'| {name} | ' + ' | '.join(
            pm([r[name][k] for r in runs]) for k, _ in keys) + ' |')
    print('\n| IoU (%) | ' + ' | '.join(runs[0]) + ' |')
    print('|---' * (len(runs[0]) + 1) + '|')
    for c, tissue in enumerate(FROG_CLASS_NAMES):
        print(f'| {tissue} | ' + ' | '.join(
            pm([r[name]['iou_per_class'][c] for r in runs])
            for name in runs[0]) + ' |')


if __name__ == '__main__':
    main()

"""PointNet++ segmentation on the application base: the data module (the
synthetic scenes, the frog scan, ScanNet) and the task (weighted cross
entropy, PointNet++'s metrics).  Configured from YAML with
``glore-pyg segment fit --config ...`` (:mod:`glore_pyg.apps.cli`)."""
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.loader.dataloader import Collater

from ..base import DataModule, LRSchedulerCallable, OptimizerCallable, Task
from .metrics import SegmentationMetrics
from .pointnet2 import PointNet2Segmentation, complexity

#: The data sets of :class:`SegmentationData` and what their root holds.
DATASETS = {'synthetic': None, 'frog': None,
            'scannet': 'the folder holding scannet_train.pickle and '
                       'scannet_test.pickle'}


class SegmentationData(DataModule):
    """Point clouds for segmentation by name.

    * ``'synthetic'``: the embedded indoor scenes (sizes in rooms, default
      128 and 32; :class:`~glore_pyg.apps.segmentation.datasets
      .SyntheticIndoorScenes`);
    * ``'frog'``: pyvista's frog scan (sizes in crops, default 100 and 60;
      :class:`~glore_pyg.apps.segmentation.datasets.FrogTissues` with its
      defaults: each point's place in the frog as features, the test half
      mirrored into the training half's handedness; positions scaled by
      1.5 / 96, so that 96 voxel units span 1.5, the extent of a ScanNet
      column in metres, and the networks' radii fit both);
    * ``'scannet'``: PointNet++'s pickles in ``root`` (every scene; ``val``
      is the test split's training-style columns, ``test`` its whole
      scenes when ``whole_scene_test``: every point predicted once).

    Args:
        name (str, optional): ``'synthetic'``, ``'frog'`` or ``'scannet'``.
            (default: ``'synthetic'``)
        root (str, optional): the ScanNet folder. (default: :obj:`None`)
        num_points (int, optional): points per sample. (default: ``2048``)
        train_size (int, optional): training rooms or crops (:obj:`None`:
            128 rooms, 100 crops; ScanNet: every scene).
        val_size (int, optional): validation rooms or crops (:obj:`None`:
            32 rooms, 60 crops).
        whole_scene_test (bool, optional): ScanNet's whole-scene protocol
            for ``test``. (default: :obj:`False`)
        batch_size (int, optional): clouds per batch. (default: ``8``)
        num_workers (int, optional): loader workers. (default: ``0``)
        seed (int, optional): seed of the data (the command line sets it
            from ``seed_everything``). (default: ``0``)

    Raises:
        ValueError: an unknown name, ScanNet without ``root``, sizes out of
            range, ``whole_scene_test`` for another data set.
        FileNotFoundError: a missing ScanNet pickle.
        ImportError: pyvista missing for ``'frog'``.
    """

    datasets = DATASETS

    def __init__(self, name: str = 'synthetic', root: Optional[str] = None,
                 num_points: int = 2048, train_size: Optional[int] = None,
                 val_size: Optional[int] = None,
                 whole_scene_test: bool = False, batch_size: int = 8,
                 num_workers: int = 0, seed: int = 0):
        if whole_scene_test and name != 'scannet':
            raise ValueError("'whole_scene_test' is ScanNet's protocol; this "
                             f"data set is {name!r}")
        self.num_points = num_points
        self.train_size, self.val_size = train_size, val_size
        self.whole_scene_test = whole_scene_test
        super().__init__(name, root, batch_size, num_workers, seed)
        if whole_scene_test:
            from .datasets import ScanNetPickle
            self.test_set = _WholeScenes(ScanNetPickle(
                root, 'test', num_points, whole_scene=True))

    def build(self):
        from .datasets import FrogTissues, ScanNetPickle, SyntheticIndoorScenes
        n, seed = self.num_points, self.seed
        if self.name == 'synthetic':
            return (SyntheticIndoorScenes('train', self.train_size or 128, n,
                                          seed),
                    SyntheticIndoorScenes('val', self.val_size or 32, n,
                                          seed))
        if self.name == 'frog':
            from torch_geometric.transforms import LinearTransformation
            scale = LinearTransformation(torch.eye(3) * (1.5 / 96))
            # the test half in the training half's handedness (the frog is
            # close to mirror-symmetric; docs/segmentation.md, "the frog")
            return (FrogTissues('train', n, self.train_size or 100,
                                seed=seed, transform=scale),
                    FrogTissues('test', n, self.val_size or 60, mirror=True,
                                seed=seed, transform=scale))
        return (ScanNetPickle(self.root, 'train', n, seed=seed),
                ScanNetPickle(self.root, 'test', n, seed=seed))

    @property
    def in_channels(self) -> int:
        x = self.train_set[0].x
        return 0 if x is None else int(x.size(1))

    @property
    def class_weights(self) -> Optional[List[float]]:
        w = getattr(self.info, 'class_weights', None)
        return None if w is None else [float(v) for v in w]

    @property
    def ignore_index(self) -> Optional[int]:
        return getattr(self.info, 'ignore_index', None)

    def collate(self, dataset):
        # PyG's batching in a plain torch DataLoader, which Lightning can
        # re-create (for predict) from its arguments
        return Collater(dataset)

    def _loader(self, dataset, train: bool, batch_size=None):
        if isinstance(dataset, _WholeScenes):  # one scene at a time
            return super()._loader(dataset, train, batch_size, batched=False)
        return super()._loader(dataset, train, batch_size)


class _WholeScenes(torch.utils.data.Dataset):
    """ScanNet's test scenes whole: ``(columns, scene)`` per item."""

    def __init__(self, scenes):
        self.scenes = scenes

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i):
        return self.scenes[i], self.scenes.scene(i)


class SegmentationTask(Task):
    r"""PointNet++ segmentation with global-reasoning units.

    The training of PointNet++'s ScanNet experiments (`"PointNet++: Deep
    Hierarchical Feature Learning on Point Sets in a Metric Space"
    <https://arxiv.org/abs/1706.02413>`_; Adam, cross entropy weighted per
    class, or per point for ScanNet), the setting in which the LatentGNN
    paper (`"Learning Efficient Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_, Table 5) inserts its unit; the
    metrics of :class:`~glore_pyg.apps.segmentation.metrics
    .SegmentationMetrics`.

    Args:
        units (dict, optional): level -> unit spec, e.g.
            ``{'sa3': 'latentgnn:kernels=3'}`` (see
            :class:`~glore_pyg.apps.segmentation.pointnet2
            .PointNet2Segmentation`). (default: none, the baseline)
        preset (str, optional): network size, ``'small'`` or
            ``'scannet'``. (default: ``'small'``)
        voxel_size (float, optional): of the voxel metrics, in the
            positions' unit. (default: ``0.02``)
        dropout (float, optional): before the network's last layer.
            (default: ``0.5``)
        random_start (bool, optional): farthest point sampling from a
            random point in training (see :class:`~glore_pyg.apps
            .segmentation.pointnet2.PointNet2Segmentation`).
            (default: :obj:`True`)
        optimizer, lr_scheduler, seed: see :class:`~glore_pyg.apps.base
            .Task`.
        in_channels (int, optional): point features besides the position
            (the command line takes it from the data).
        num_classes (int, optional): classes (from the data).
        class_weights (list of float, optional): cross-entropy weights
            (from the data). (default: :obj:`None`)
        ignore_index (int, optional): a label left out of loss and metrics
            (from the data). (default: :obj:`None`)
        class_names (list of str, optional): for the per-class table
            (from the data).

    Shapes:
        - **input:** a PyG batch with ``pos`` :math:`(N, 3)`, ``x``
          :math:`(N, F)` or :obj:`None`, ``batch`` :math:`(N)`; ``y``
          :math:`(N)` (and ScanNet's ``weight``) for the loss
        - **output:** logits :math:`(N, \text{num\_classes})`

    Raises:
        ValueError: an invalid unit spec, level or preset (from the
            network).
    """

    def __init__(self, units: Optional[Mapping[str, str]] = None,
                 preset: str = 'small', voxel_size: float = 0.02,
                 dropout: float = 0.5, random_start: bool = True,
                 optimizer: Optional[OptimizerCallable] = None,
                 lr_scheduler: Optional[LRSchedulerCallable] = None,
                 seed: int = 0, in_channels: int = 0, num_classes: int = 2,
                 class_weights: Optional[List[float]] = None,
                 ignore_index: Optional[int] = None,
                 class_names: Optional[List[str]] = None):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.voxel_size = voxel_size
        super().__init__(optimizer, lr_scheduler, seed)
        self.save_hyperparameters(ignore=['optimizer', 'lr_scheduler'])
        self.class_names = list(class_names or [])
        self.model = PointNet2Segmentation(in_channels, num_classes,
                                           units=dict(units or {}),
                                           preset=preset, dropout=dropout,
                                           random_start=random_start)
        weights = None if class_weights is None else torch.tensor(
            class_weights, dtype=torch.float)
        self.register_buffer('class_weights', weights, persistent=False)

    def make_metrics(self):
        return SegmentationMetrics(self.num_classes, self.ignore_index,
                                   self.voxel_size)

    def forward(self, data) -> Tensor:
        r"""Logits :math:`(N, \text{num\_classes})` of a batch ``data``."""
        return self.model(data.pos, data.x, data.batch)

    def loss_terms(self, logits: Tensor, data):
        """Cross entropy summed over the points and its normaliser: with
        per-point weights ``data.weight`` (ScanNet) the weighted sum over
        the sum of the weights; else weighted by ``class_weights``, with
        ``ignore_index`` left out, over the summed weights of the labelled
        points (:func:`torch.nn.functional.cross_entropy`'s mean)."""
        y = data.y
        if 'weight' in data:  # ScanNet: per-point weights (0 in margins)
            per_point = F.cross_entropy(logits, y, reduction='none')
            w = data.weight.to(per_point.dtype)
            return (per_point * w).sum(), w.sum()
        keep = y != (-100 if self.ignore_index is None else
                     self.ignore_index)
        per_point = F.cross_entropy(logits[keep], y[keep],
                                    weight=self.class_weights,
                                    reduction='none')
        if self.class_weights is None:
            count = per_point.new_tensor(float(per_point.numel()))
        else:
            count = self.class_weights.to(per_point.dtype)[y[keep]].sum()
        return per_point.sum(), count

    def update_metrics(self, metrics, logits: Tensor, data) -> None:
        metrics.update(data.pos, logits.argmax(1), data.y, data.batch)

    def test_step(self, batch, batch_idx: int) -> None:
        if not isinstance(batch, (tuple, list)):
            return super().test_step(batch, batch_idx)
        # a whole ScanNet scene: the metrics on the scene's own positions
        scene, pred = self._scene_prediction(batch)
        self.test_metrics.update(scene.pos, pred, scene.y)

    def _scene_prediction(self, batch):
        """``(scene, pred)``: each point of a whole scene predicted once,
        by the column that owns it."""
        cells, scene = batch
        logits = self(cells)
        pred = torch.empty_like(scene.y)
        pred[cells.point_idx[cells.inner]] = logits.argmax(1)[cells.inner]
        return scene, pred

    def predict_step(self, data, batch_idx: int) -> List[Dict[str, Tensor]]:
        """Per cloud: ``pos``, ``pred`` (and ``y`` when labelled); for a
        whole ScanNet scene, every point of the scene."""
        if isinstance(data, (tuple, list)):  # a whole scene
            scene, pred = self._scene_prediction(data)
            return [dict(pos=scene.pos.cpu(), pred=pred.cpu(),
                         y=scene.y.cpu())]
        pred = self(data).argmax(1)
        out = []
        for i in range(data.num_graphs):
            m = data.batch == i
            item = dict(pos=data.pos[m].cpu(), pred=pred[m].cpu())
            if getattr(data, 'y', None) is not None:
                item['y'] = data.y[m].cpu()
            out.append(item)
        return out

    def complexity(self, data: SegmentationData) -> Dict[str, int]:
        """Parameters, FLOPs and multiply-adds (``macs``) of one forward
        pass on ``num_points``."""
        return complexity(self.model, data.num_points)

    def draw(self, data: SegmentationData, index: int, folder: str,
             unit: Optional[str] = None) -> List[str]:
        """The pictures of what the unit at level ``unit`` does with
        validation cloud ``index`` (see :func:`~glore_pyg.apps
        .segmentation.pictures.draw_level`)."""
        from .pictures import draw_level
        return draw_level(self.model, data.val_set[index], folder,
                          level=unit)


def write_predictions(items: List[Dict[str, Tensor]], folder,
                      class_names=None, ids=None) -> List[str]:
    """Writes each cloud's predictions as ``cloud{i}.npy`` (the labels) and
    ``cloud{i}.ply`` (ASCII: x, y, z, the predicted label and a colour per
    label), with ``i`` the cloud's index in the data set (``ids``, one per
    item; :obj:`None`: the items' positions), and ``cloud0.png``: cloud 0
    coloured by prediction beside ground truth when it is among the items
    and labelled.  The colours depend on the labels only, so clouds written
    by several processes share them.

    Returns:
        list of str: the written paths.

    Raises:
        ValueError: ``ids`` of another length than ``items``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(range(len(items))) if ids is None else [int(i) for i in ids]
    if len(ids) != len(items):
        raise ValueError(f"'ids': {len(ids)} for {len(items)} items")
    paths = []
    top = max([int(i['pred'].max()) + 1 for i in items if len(i['pred'])],
              default=1)
    palette = _palette(max(top, len(class_names or [])))
    for i, item in zip(ids, items):
        pos, pred = item['pos'].float().numpy(), item['pred'].numpy()
        np.save(folder / f'cloud{i}.npy', pred)
        ply = folder / f'cloud{i}.ply'
        rgb = palette[pred]
        header = ['ply', 'format ascii 1.0', f'element vertex {len(pred)}',
                  'property float x', 'property float y', 'property float z',
                  'property int label', 'property uchar red',
                  'property uchar green', 'property uchar blue',
                  'end_header']
        rows = [f'{p[0]:.6g} {p[1]:.6g} {p[2]:.6g} {int(c)} {r} {g} {b}'
                for p, c, (r, g, b) in zip(pos, pred, rgb)]
        ply.write_text('\n'.join(header + rows) + '\n')
        paths += [str(folder / f'cloud{i}.npy'), str(ply)]
        if i == 0 and 'y' in item:
            paths.append(_draw_prediction(item, folder / 'cloud0.png',
                                          palette, class_names))
    return paths


def _palette(n: int) -> np.ndarray:
    import matplotlib
    cmap = matplotlib.colormaps['tab20']
    return (np.array([cmap(i % 20)[:3] for i in range(max(n, 1))]) * 255
            ).astype(np.uint8)


def _draw_prediction(item, path, palette, class_names) -> str:
    from matplotlib.figure import Figure
    pos = item['pos'].float().numpy()
    fig = Figure(figsize=(10, 5))
    for k, (key, title) in enumerate((('pred', 'prediction'),
                                      ('y', 'ground truth'))):
        ax = fig.add_subplot(1, 2, k + 1, projection='3d')
        ax.scatter(pos[:, 0], pos[:, 1], pos[:, 2], s=1,
                   c=palette[item[key].clamp_min(0).numpy()] / 255.0)
        ax.set_title(title)
        ax.set_axis_off()
    fig.savefig(path, dpi=100)
    return str(path)


__all__ = ['SegmentationData', 'SegmentationTask', 'write_predictions',
           'DATASETS']

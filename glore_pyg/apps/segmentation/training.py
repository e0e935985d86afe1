"""Training PointNet++ segmentation with Lightning (``pip install
"glore-pyg[train]"``).

:class:`SegmentationTask` is a :class:`lightning.LightningModule` around
:class:`~glore_pyg.apps.segmentation.pointnet2.PointNet2Segmentation`: weighted
cross entropy (the data set's class weights, or ScanNet's per-point
weights), Adam, and the metrics of :mod:`glore_pyg.apps.segmentation.metrics`
logged per epoch.  :func:`fit` runs it with Lightning's ``Trainer``:
progress bar, CSV log, a checkpoint after every epoch, resume from the last
one, seeding, and bf16 mixed precision on request.

Reproducible across interruptions: the order of the training samples of
epoch ``e`` and the random draws of step ``s`` (farthest-point-sampling
starts, dropout) are seeded from ``(seed, e)`` and ``(seed, s)``, so a run
interrupted between epochs and resumed from its last checkpoint ends with
the same weights as an uninterrupted one.
"""
import json
from pathlib import Path
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

try:
    import lightning as L
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("Training needs Lightning: pip install "
                      "\"glore-pyg[train]\"") from e
from torch_geometric.loader import DataLoader

from ..base import EpochOrder, make_trainer, peak_rss_bytes
from ..base import check_checkpoint as _check_checkpoint
from ..base import load_run as _load_run
from ..base import resume_from
from .metrics import SegmentationMetrics
from .pointnet2 import PointNet2Segmentation, complexity

#: The data set names of :func:`make_datasets` (``fit``'s ``data``).
DATASETS = ('synthetic', 'frog', 'scannet')


def make_datasets(name: str, root: Optional[str] = None,
                  num_points: int = 2048, train_size: Optional[int] = None,
                  val_size: Optional[int] = None, seed: int = 0):
    """``(train, val)`` data sets by name: ``'synthetic'`` (the embedded
    indoor scenes; sizes in rooms, default 128 and 32), ``'frog'``
    (pyvista's frog scan; sizes in sampled crops, positions scaled so that
    a crop spans 1.5 units) or ``'scannet'`` (PointNet++ pickles in
    ``root``; ``val`` is the test split's training-style columns).

    Args:
        name (str): one of :data:`DATASETS`.
        root (str, optional): the folder of ``scannet_train.pickle`` and
            ``scannet_test.pickle`` (``'scannet'`` only).
            (default: :obj:`None`)
        num_points (int, optional): points per sample (room, crop or
            column). (default: :obj:`2048`)
        train_size (int, optional): training samples: rooms (default 128)
            or frog crops (default 100); ignored for ScanNet (every scene).
            (default: :obj:`None`)
        val_size (int, optional): validation samples: rooms (default 32)
            or frog crops (default 20); ignored for ScanNet.
            (default: :obj:`None`)
        seed (int, optional): seed of the data sets' generators.
            (default: :obj:`0`)

    Returns:
        ``(train, val)``: two :class:`torch_geometric.data.Dataset` of
        :class:`~torch_geometric.data.Data` with ``pos`` :math:`(n, 3)`,
        ``x`` :math:`(n, F)` or :obj:`None` and ``y`` :math:`(n)`, and the
        attributes of :mod:`glore_pyg.apps.segmentation.datasets`.

    Raises:
        ValueError: an unknown name, or ``'scannet'`` without ``root``;
            out-of-range sizes (from the data set).
        FileNotFoundError: a missing ScanNet pickle.
        ImportError: pyvista not installed (``'frog'``).
    """
    from .datasets import FrogTissues, ScanNetPickle, SyntheticIndoorScenes
    if name == 'synthetic':
        return (SyntheticIndoorScenes('train', train_size or 128, num_points,
                                      seed),
                SyntheticIndoorScenes('val', val_size or 32, num_points,
                                      seed))
    if name == 'frog':
        # crops of 96 voxel units scaled to 1.5, the extent of a ScanNet
        # column in metres, so the networks' radii (in metres) fit both
        from torch_geometric.transforms import LinearTransformation
        scale = LinearTransformation(torch.eye(3) * (1.5 / 96))
        return (FrogTissues('train', num_points, train_size or 100,
                            seed=seed, transform=scale),
                FrogTissues('test', num_points, val_size or 20, seed=seed,
                            transform=scale))
    if name == 'scannet':
        if root is None:
            raise ValueError("'scannet' needs 'root': the folder holding "
                             "scannet_train.pickle and scannet_test.pickle")
        return (ScanNetPickle(root, 'train', num_points, seed=seed),
                ScanNetPickle(root, 'test', num_points, seed=seed))
    raise ValueError(f"Unknown data set {name!r}: choose one of "
                     f"{list(DATASETS)}")


class SegmentationTask(L.LightningModule):
    r"""PointNet++ segmentation as a Lightning module.

    The training of PointNet++'s ScanNet experiments (`"PointNet++: Deep
    Hierarchical Feature Learning on Point Sets in a Metric Space"
    <https://arxiv.org/abs/1706.02413>`_; Adam, cross entropy weighted per
    class, or per point for ScanNet), the setting in which the LatentGNN
    paper (`"Learning Efficient Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_, Table 5) inserts its unit.

    Args:
        in_channels (int): point features besides the position.
        num_classes (int): classes.
        units (dict, optional): level -> unit spec
            (:class:`~glore_pyg.apps.segmentation.pointnet2.PointNet2Segmentation`).
            (default: :obj:`None`: the baseline)
        preset (str, optional): network size, ``'small'`` or
            ``'scannet'``. (default: ``'small'``)
        lr (float, optional): Adam's learning rate. (default: ``1e-3``)
        weight_decay (float, optional): Adam's weight decay.
            (default: ``1e-4``)
        class_weights (list of float, optional): cross-entropy weights, one
            per class. (default: :obj:`None`: unweighted)
        ignore_index (int, optional): a label left out of loss and metrics.
            (default: :obj:`None`)
        seed (int, optional): the seed of the per-step random draws.
            (default: ``0``)
        voxel_size (float, optional): of the voxel metrics, in the
            positions' unit. (default: ``0.02``)
        data (str, optional): the data set's name, kept in checkpoints so
            that a checkpoint of another configuration is refused.
            (default: ``'custom'``)

    Shapes:
        - **input:** a PyG batch ``data`` with ``pos`` :math:`(N, 3)`,
          ``x`` :math:`(N, F)` or :obj:`None`, ``batch`` :math:`(N)`;
          for the loss also ``y`` :math:`(N)` and, optionally, per-point
          weights ``weight`` :math:`(N)` (ScanNet)
        - **output:** logits :math:`(N, \text{num\_classes})`

    Raises:
        ValueError: an unknown ``preset``, unit level or unit spec,
            ``num_classes < 1`` or ``in_channels < 0`` (from
            :class:`~glore_pyg.apps.segmentation.pointnet2.PointNet2Segmentation`);
            ``voxel_size <= 0`` (from
            :class:`~glore_pyg.apps.segmentation.metrics.SegmentationMetrics`).
        TypeError: ``num_classes`` or ``ignore_index`` not an int,
            ``voxel_size`` not a number (from the metrics).
    """

    def __init__(self, in_channels: int, num_classes: int,
                 units: Optional[Mapping[str, str]] = None,
                 preset: str = 'small', lr: float = 1e-3,
                 weight_decay: float = 1e-4,
                 class_weights: Optional[list] = None,
                 ignore_index: Optional[int] = None, seed: int = 0,
                 voxel_size: float = 0.02, data: str = 'custom'):
        super().__init__()
        self.save_hyperparameters()
        self.model = PointNet2Segmentation(in_channels, num_classes,
                                           units=dict(units or {}),
                                           preset=preset)
        weights = None if class_weights is None else torch.tensor(
            class_weights, dtype=torch.float)
        self.register_buffer('class_weights', weights, persistent=False)
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index,
                                               voxel_size)

    def forward(self, data) -> Tensor:
        r"""Logits :math:`(N, \text{num\_classes})` of a batch ``data``
        (``pos``, ``x``, ``batch``)."""
        return self.model(data.pos, data.x, data.batch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # fps starts and dropout: a function of the step, not of the RNG's
        # history, so that a resumed run draws what an uninterrupted one
        # would
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)

    def loss(self, logits: Tensor, data) -> Tensor:
        """The cross entropy of ``logits`` :math:`(N, K)` against
        ``data.y`` :math:`(N)`: when the batch has per-point weights
        ``data.weight`` (ScanNet), their weighted mean (``class_weights``
        and ``ignore_index`` are then not used); else the mean weighted by
        ``class_weights``, with ``ignore_index`` left out."""
        ignore = self.hparams.ignore_index
        if 'weight' in data:  # ScanNet: per-point weights (0 in margins)
            per_point = F.cross_entropy(logits, data.y, reduction='none')
            w = data.weight.to(per_point.dtype)
            return (per_point * w).sum() / w.sum().clamp_min(1e-12)
        return F.cross_entropy(logits, data.y, weight=self.class_weights,
                               ignore_index=-100 if ignore is None
                               else ignore)

    def training_step(self, data, batch_idx: int) -> Tensor:
        """The loss of one batch, logged per epoch as ``train_loss``."""
        loss = self.loss(self(data), data)
        self.log('train_loss', loss, on_step=False, on_epoch=True,
                 prog_bar=True, batch_size=data.num_graphs)
        return loss

    def validation_step(self, data, batch_idx: int) -> None:
        """Logs ``val_loss`` and adds the batch to the metrics."""
        logits = self(data)
        self.log('val_loss', self.loss(logits, data), on_epoch=True,
                 batch_size=data.num_graphs)
        self.val_metrics.update(data.pos, logits.argmax(1), data.y,
                                data.batch)

    def on_validation_epoch_end(self) -> None:
        m = self.val_metrics.compute()
        self.log_dict({f'val_{k}': float(v) for k, v in m.items()
                       if k != 'iou_per_class'}, prog_bar=False)
        #: the last validation's IoU of each class (nan: not evaluated)
        self.iou_per_class = [float(v) for v in m['iou_per_class']]
        self.val_metrics.reset()

    def configure_optimizers(self):
        """Adam with ``lr`` and ``weight_decay``."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)


class _Data(L.LightningDataModule):
    """Train / val loaders; the training order of epoch ``e`` is seeded from
    ``(seed, e)``."""

    def __init__(self, train, val, batch_size: int, seed: int,
                 num_workers: int = 0):
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size, self.seed = batch_size, seed
        self.num_workers = num_workers

    def train_dataloader(self):
        order = EpochOrder(len(self.train_set), self.seed, self.trainer)
        return DataLoader(self.train_set, self.batch_size, sampler=order,
                          num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(self.val_set, self.batch_size,
                          num_workers=self.num_workers)


def fit(out_dir: str, data: str = 'synthetic', units=None,
        preset: str = 'small', epochs: int = 25, batch_size: int = 8,
        num_points: int = 2048, train_size: Optional[int] = None,
        val_size: Optional[int] = None, lr: float = 1e-3, seed: int = 0,
        root: Optional[str] = None, precision: Optional[str] = None,
        resume: bool = True, progress: bool = True,
        accelerator: str = 'auto', callbacks=None) -> Dict:
    """Trains (or resumes) one configuration and writes ``out_dir``:
    ``checkpoints/last.ckpt`` (after every epoch), ``metrics.csv`` (per
    epoch, Lightning's CSV logger) and ``result.json`` (the final
    validation metrics, params, FLOPs, seconds per epoch, peak resident
    memory of the process).

    ``resume=True`` continues from ``checkpoints/last.ckpt`` when it exists
    (a checkpoint of another configuration is refused with a
    ``ValueError``).

    Args:
        out_dir (str): the run folder (created).
        data (str, optional): a name of :data:`DATASETS`.
            (default: :obj:`'synthetic'`)
        units (dict, optional): level -> unit spec, e.g.
            ``{'sa3': 'latentgnn'}`` (see
            :class:`~glore_pyg.apps.segmentation.pointnet2.PointNet2Segmentation`).
            (default: :obj:`None`: the baseline)
        preset (str, optional): network size, ``'small'`` or ``'scannet'``.
            (default: :obj:`'small'`)
        epochs (int, optional): training epochs. (default: :obj:`25`)
        batch_size (int, optional): clouds per batch. (default: :obj:`8`)
        num_points (int, optional): points per sample.
            (default: :obj:`2048`)
        train_size (int, optional): training samples, see
            :func:`make_datasets`. (default: :obj:`None`)
        val_size (int, optional): validation samples, see
            :func:`make_datasets`. (default: :obj:`None`)
        lr (float, optional): Adam's learning rate. (default: :obj:`1e-3`)
        seed (int, optional): seed of the weights, the data and the
            per-epoch / per-step draws. (default: :obj:`0`)
        root (str, optional): ScanNet folder. (default: :obj:`None`)
        precision (str, optional): Lightning's ``precision``, e.g.
            ``'bf16-mixed'``. (default: :obj:`None`: float32)
        resume (bool, optional): continue from the last checkpoint of
            ``out_dir`` if there is one. (default: :obj:`True`)
        progress (bool, optional): show Lightning's progress bar.
            (default: :obj:`True`)
        accelerator (str, optional): Lightning's ``accelerator``
            (``'cpu'``, ``'cuda'``, ``'auto'``). (default: :obj:`'auto'`)
        callbacks (list, optional): further Lightning callbacks.
            (default: :obj:`None`)

    Returns:
        dict: the ``result.json`` content: ``config``, ``epochs``,
        ``params``, ``flops`` (one forward pass on ``num_points`` points,
        see :func:`~glore_pyg.apps.segmentation.pointnet2.complexity`),
        ``seconds_per_epoch`` (seconds, mean over the epochs trained in this
        call), ``peak_rss_bytes`` (bytes), ``metrics`` (``val_loss``,
        ``val_point_acc``, ``val_voxel_acc``, ``val_class_point_acc``,
        ``val_class_voxel_acc``, ``val_miou``: fractions in [0, 1]) and
        ``iou_per_class`` (class name -> IoU).

    Raises:
        ValueError: an unknown data set, ScanNet without ``root``, an
            invalid unit spec, level or preset, or a checkpoint in
            ``out_dir`` of another configuration.
        FileNotFoundError: a missing ScanNet pickle.
        ImportError: pyvista missing for ``'frog'``.
    """
    out = Path(out_dir)
    units = dict(units or {})
    L.seed_everything(seed, workers=True, verbose=False)
    train, val = make_datasets(data, root, num_points, train_size, val_size,
                               seed)
    sample = train[0]
    in_channels = 0 if sample.x is None else sample.x.size(1)
    weights = getattr(train, 'class_weights', None)
    task = SegmentationTask(
        in_channels, train.num_classes, units, preset, lr, seed=seed,
        class_weights=None if weights is None else [float(w) for w in
                                                    weights],
        ignore_index=getattr(train, 'ignore_index', None), data=data)
    ckpt = resume_from(out, resume, task.hparams, CONFIG_KEYS)
    trainer, timer = make_trainer(out, epochs, precision, progress,
                                  accelerator, callbacks)
    datamodule = _Data(train, val, batch_size, seed)
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    metrics = trainer.validate(task, datamodule=datamodule,
                               verbose=False)[0]
    size = complexity(task.model.cpu(), num_points)
    config = dict(data=data, units=units, preset=preset, seed=seed,
                  num_points=num_points, val_size=val_size,
                  batch_size=batch_size, root=root)
    result = dict(config=config, epochs=epochs, params=size['params'],
                  flops=size['flops'],
                  seconds_per_epoch=timer.seconds_per_epoch(),
                  peak_rss_bytes=peak_rss_bytes(),
                  metrics={k: float(v) for k, v in metrics.items()},
                  iou_per_class=dict(zip(
                      getattr(train, 'class_names', range(train.num_classes)),
                      task.iou_per_class)))
    (out / 'result.json').write_text(json.dumps(result, indent=2))
    return result


CONFIG_KEYS = ('data', 'in_channels', 'num_classes', 'units', 'preset')


def check_checkpoint(path, hparams: Mapping) -> None:
    """Refuses a checkpoint written for another configuration (data set,
    features, classes, units, network size), naming the differences.

    Args:
        path (str or Path): a Lightning checkpoint of
            :class:`SegmentationTask` (loaded on the CPU with
            ``weights_only=False``: only open checkpoints you trust).
        hparams (Mapping): the hyper-parameters of the task about to be
            trained (``task.hparams``); ``data``, ``in_channels``,
            ``num_classes``, ``units`` and ``preset`` are compared.

    Raises:
        ValueError: the differences, or an unreadable checkpoint.
    """
    _check_checkpoint(path, hparams, CONFIG_KEYS)


def load_run(out_dir: str):
    """The trained task of a run folder written by :func:`fit` (its last
    checkpoint, on the CPU, in evaluation mode) and its ``result.json``
    configuration.

    Args:
        out_dir (str): the run folder.

    Returns:
        ``(SegmentationTask, dict)``.

    Raises:
        FileNotFoundError: no ``result.json`` or checkpoint in ``out_dir``.
    """
    return _load_run(out_dir, SegmentationTask, 'segment')


def evaluate(out_dir: str, root: Optional[str] = None,
             whole_scene: bool = False, accelerator: str = 'cpu') -> Dict:
    """Evaluates the last checkpoint of a run folder written by :func:`fit`
    on its validation split (re-made from ``result.json``'s
    configuration), or, for ScanNet with ``whole_scene=True``, on every
    point of every test scene (1.5 m columns, each point predicted once,
    metrics on the scenes' own positions).  Writes ``evaluation.json``.

    Args:
        out_dir (str): a run folder written by :func:`fit`.
        root (str, optional): the ScanNet folder, if not the one recorded
            in ``result.json``. (default: :obj:`None`)
        whole_scene (bool, optional): ScanNet's whole-scene protocol
            (PointNet++'s ``test``: every point of every test scene).
            (default: :obj:`False`)
        accelerator (str, optional): Lightning's ``accelerator`` of the
            validation split's pass; the whole-scene pass runs on the CPU.
            (default: :obj:`'cpu'`)

    Returns:
        dict: the ``evaluation.json`` content, metric name -> float
        (``val_point_acc``, ``val_voxel_acc``, ``val_class_point_acc``,
        ``val_class_voxel_acc``, ``val_miou``, fractions in [0, 1]; the
        validation split's pass also ``val_loss``).

    Raises:
        FileNotFoundError: no ``result.json`` or checkpoint in ``out_dir``;
            a missing ScanNet pickle.
        ValueError: ``whole_scene`` for a data set other than ScanNet.
        TypeError: ``whole_scene`` with no ScanNet ``root`` given or
            recorded (from the ScanNet data set).
    """
    out = Path(out_dir)
    task, config = load_run(out)
    if whole_scene:
        if config['data'] != 'scannet':
            raise ValueError("'whole_scene' evaluation is ScanNet's "
                             "protocol; this run used "
                             f"{config['data']!r}")
        from .datasets import ScanNetPickle
        scenes = ScanNetPickle(root or config.get('root'), 'test',
                               config['num_points'], whole_scene=True)
        metrics = SegmentationMetrics(task.hparams.num_classes,
                                      task.hparams.ignore_index,
                                      task.hparams.voxel_size)
        with torch.no_grad():
            for i in range(len(scenes)):
                cells, scene = scenes[i], scenes.scene(i)
                logits = task(cells)
                pred = torch.empty_like(scene.y)
                pred[cells.point_idx[cells.inner]] = logits.argmax(1)[
                    cells.inner]
                metrics.update(scene.pos, pred, scene.y)
        m = metrics.compute()
        result = {f'val_{k}': float(v) for k, v in m.items()
                  if k != 'iou_per_class'}
    else:
        _, val = make_datasets(config['data'], root or config.get('root'),
                               config['num_points'],
                               val_size=config.get('val_size'),
                               seed=config['seed'])
        trainer = L.Trainer(accelerator=accelerator, devices=1,
                            logger=False, enable_progress_bar=False,
                            enable_model_summary=False)
        result = trainer.validate(
            task, DataLoader(val, config.get('batch_size', 8)),
            verbose=False)[0]
        result = {k: float(v) for k, v in result.items()}
    (out / 'evaluation.json').write_text(json.dumps(result, indent=2))
    return result


__all__ = ['SegmentationTask', 'fit', 'evaluate', 'load_run',
           'make_datasets', 'check_checkpoint', 'DATASETS']

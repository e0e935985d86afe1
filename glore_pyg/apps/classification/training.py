"""Training image classifiers with and without global-reasoning units, with
Lightning (``pip install "glore-pyg[train]"``).

:class:`ClassificationTask` is a :class:`lightning.LightningModule` around a
:class:`~glore_pyg.apps.classification.ResNet` into which :func:`~glore_pyg.apps.classification
.insert_units` put the units; :func:`fit` trains it (progress bar, CSV log,
a checkpoint after every epoch, resume from the last one, seeding, bf16 on
request) and writes ``result.json`` with parameters, FLOPs, accuracy and
time per epoch.  The sample order of epoch ``e`` and the random draws of
step ``s`` are seeded from ``(seed, e)`` and ``(seed, s)``, so an
interrupted run resumed from its last checkpoint ends with the same weights
as an uninterrupted one.
"""
import json
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import (EpochOrder, make_trainer, peak_rss_bytes,
                              resume_from)
from ..base import load_run as _load_run
from .insert import insert_units, load_backbone_weights, unit_overhead
from .resnet import BasicBlock, Bottleneck, ResNet

try:
    import lightning as L
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("Training needs Lightning: pip install "
                      "\"glore-pyg[train]\"") from e

#: The data set names of :func:`make_datasets` (``fit``'s ``data``).
DATASETS = ('digits', 'folder')

#: Backbones by name: ``'digits'`` is the small ResNet of the digit-mosaic
#: example (a 3x3 stem without pooling, three stages of one basic block,
#: widths 16-32-64, a receptive field of 25 pixels); ``'resnet18'`` and
#: ``'resnet50'`` are the ImageNet networks (7x7 stem, four stages).
ARCHITECTURES = {
    'digits': dict(block=BasicBlock, layers=(1, 1, 1), width=16,
                   stem='small'),
    'resnet18': dict(block=BasicBlock, layers=(2, 2, 2, 2), width=64,
                     stem='imagenet'),
    'resnet50': dict(block=Bottleneck, layers=(3, 4, 6, 3), width=64,
                     stem='imagenet'),
}

CONFIG_KEYS = ('data', 'arch', 'in_channels', 'num_classes', 'units')


def make_datasets(name: str, root: Optional[str] = None,
                  train_size: Optional[int] = None,
                  val_size: Optional[int] = None, seed: int = 0,
                  image_size: int = 64, val_fraction: float = 0.2
                  ) -> Tuple[torch.utils.data.Dataset,
                             torch.utils.data.Dataset]:
    """``(train, val)`` data sets by name.

    * ``'digits'``: :class:`~glore_pyg.apps.classification.DigitMosaics` ("are the two
      distant digits equal?"), train and test mosaics built from disjoint
      sets of source scans (default sizes 8,000 and 2,000).
    * ``'folder'``: a user's images in ``root`` with one sub-folder per
      class (:class:`~glore_pyg.apps.classification.ImageFolder`); when ``root`` holds
      ``train/`` and ``val/`` folders they are the two splits, otherwise
      ``val_fraction`` of each class is held out (seeded, stratified).

    Args:
        name (str): one of :data:`DATASETS`.
        root (str, optional): the image folder (``'folder'`` only).
        train_size (int, optional): training mosaics (``'digits'``).
        val_size (int, optional): test mosaics (``'digits'``).
        seed (int, optional): seed of the mosaics and of the hold-out.
            (default: :obj:`0`)
        image_size (int, optional): side in pixels the folder's images are
            resized to. (default: :obj:`64`)
        val_fraction (float, optional): the held-out fraction of a folder
            without ``train/`` and ``val/``. (default: :obj:`0.2`)

    Returns:
        ``(train, val)``: data sets of ``(image [C, H, W] in [0, 1],
        label)`` with ``num_classes``, ``in_channels`` and ``class_names``
        attributes (on the data sets, or on their ``dataset`` for a held-out
        split).

    Raises:
        ValueError: an unknown name, ``'folder'`` without ``root``, or what
            the data sets raise (sizes, an empty folder).
        FileNotFoundError: a missing ``root``.
    """
    from .datasets import DigitMosaics, ImageFolder
    if name == 'digits':
        return (DigitMosaics('train', train_size, seed=seed),
                DigitMosaics('test', val_size, seed=seed))
    if name == 'folder':
        if root is None:
            raise ValueError("'folder' needs 'root': a folder with one "
                             "sub-folder of images per class")
        base = Path(root)
        if (base / 'train').is_dir() and (base / 'val').is_dir():
            train = ImageFolder(base / 'train', image_size)
            val = ImageFolder(base / 'val', image_size)
            if val.classes != train.classes:
                raise ValueError(f"{base / 'val'} has classes {val.classes},"
                                 f" {base / 'train'} has {train.classes}")
            return train, val
        return ImageFolder(root, image_size).split(val_fraction, seed)
    raise ValueError(f"Unknown data set {name!r}: choose one of "
                     f"{list(DATASETS)}")


def _info(dataset) -> Mapping:
    """num_classes / in_channels / class_names of a data set or a Subset."""
    return getattr(dataset, 'dataset', dataset)


def build_model(arch: str, in_channels: int, num_classes: int,
                units: Optional[Mapping[str, str]] = None) -> ResNet:
    """A backbone of :data:`ARCHITECTURES` with units inserted after the
    named modules.

    Args:
        arch (str): ``'digits'``, ``'resnet18'`` or ``'resnet50'``.
        in_channels (int): image channels.
        num_classes (int): classes.
        units (dict, optional): module name -> unit spec, e.g.
            ``{'layer3': 'glore'}`` (see
            :func:`~glore_pyg.apps.classification.insert_units`). (default: :obj:`None`)

    Returns:
        ResNet: the network (units, if any, are the identity).

    Raises:
        ValueError: an unknown ``arch``, an invalid insertion point or spec,
            invalid sizes (from :class:`~glore_pyg.apps.classification.ResNet`).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}: choose one of "
                         f"{list(ARCHITECTURES)}")
    model = ResNet(num_classes=num_classes, in_channels=in_channels,
                   **ARCHITECTURES[arch])
    if units:
        insert_units(model, dict(units))
    return model


class ClassificationTask(L.LightningModule):
    r"""Image classification as a Lightning module: a ResNet with units,
    cross entropy, Adam with a cosine learning-rate schedule over the
    epochs, and top-1 accuracy (:mod:`torchmetrics`) on the validation
    split.

    The setting of the GloRe paper's ImageNet experiments (`"Graph-Based
    Global Reasoning Networks" <https://arxiv.org/abs/1811.12814>`_,
    Table 2: units inserted into a ResNet trained with cross entropy),
    scaled to a CPU.

    Args:
        in_channels (int): image channels.
        num_classes (int): classes.
        units (dict, optional): module name -> unit spec.
            (default: :obj:`None`: the baseline)
        arch (str, optional): see :data:`ARCHITECTURES`.
            (default: ``'digits'``)
        lr (float, optional): Adam's initial learning rate.
            (default: ``2e-3``)
        weight_decay (float, optional): Adam's weight decay.
            (default: ``1e-4``)
        seed (int, optional): seed of the per-step random draws.
            (default: ``0``)
        data (str, optional): the data set's name, kept in checkpoints so
            that a checkpoint of another configuration is refused.
            (default: ``'custom'``)
        class_names (list of str, optional): the classes, in label order,
            kept in checkpoints so that evaluating on images of other
            classes is refused. (default: :obj:`None`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)`; for the loss also labels
          :math:`(B)`
        - **output:** logits :math:`(B, \text{num\_classes})`

    Raises:
        ValueError: see :func:`build_model`.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 units: Optional[Mapping[str, str]] = None,
                 arch: str = 'digits', lr: float = 2e-3,
                 weight_decay: float = 1e-4, seed: int = 0,
                 data: str = 'custom',
                 class_names: Optional[Sequence[str]] = None):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(arch, in_channels, num_classes,
                                 dict(units or {}))
        from torchmetrics.classification import MulticlassAccuracy
        self.val_acc = MulticlassAccuracy(num_classes, average='micro')

    def forward(self, images: Tensor) -> Tensor:
        r"""Logits :math:`(B, \text{num\_classes})` of images
        :math:`(B, C, H, W)`."""
        return self.model(images)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # a function of the step, not of the RNG's history: a resumed run
        # draws what an uninterrupted one would
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        """Cross entropy of one batch, logged per epoch (``train_loss``)."""
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log('train_loss', loss, on_step=False, on_epoch=True,
                 prog_bar=True, batch_size=labels.numel())
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        """Logs ``val_loss`` and ``val_acc`` (top-1, fraction)."""
        images, labels = batch
        logits = self(images)
        self.log('val_loss', F.cross_entropy(logits, labels),
                 on_epoch=True, batch_size=labels.numel())
        self.val_acc.update(logits.argmax(1), labels)
        self.log('val_acc', self.val_acc, on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        """Adam with ``lr`` and ``weight_decay``, cosine-annealed to 0
        over the trainer's ``max_epochs``."""
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr,
                               weight_decay=self.hparams.weight_decay)
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        return dict(optimizer=opt, lr_scheduler=torch.optim.lr_scheduler
                    .CosineAnnealingLR(opt, T_max=epochs))


class _Data(L.LightningDataModule):
    def __init__(self, train, val, batch_size: int, seed: int):
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self):
        order = EpochOrder(len(self.train_set), self.seed, self.trainer)
        return torch.utils.data.DataLoader(self.train_set, self.batch_size,
                                           sampler=order)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.val_set, 256)


def fit(out_dir: str, data: str = 'digits', units=None, arch: str = 'digits',
        epochs: int = 10, batch_size: int = 64, lr: float = 2e-3,
        seed: int = 0, root: Optional[str] = None,
        train_size: Optional[int] = None, val_size: Optional[int] = None,
        image_size: int = 64, val_fraction: float = 0.2,
        pretrained: Optional[str] = None,
        precision: Optional[str] = None, resume: bool = True,
        progress: bool = True, accelerator: str = 'auto',
        callbacks=None) -> Dict:
    """Trains (or resumes) one configuration and writes ``out_dir``:
    ``checkpoints/last.ckpt`` (after every epoch), ``metrics.csv`` (per
    epoch) and ``result.json``.

    Args:
        out_dir (str): the run folder (created).
        data (str, optional): ``'digits'`` or ``'folder'`` (see
            :func:`make_datasets`). (default: :obj:`'digits'`)
        units (dict, optional): module name -> unit spec, e.g.
            ``{'layer3': 'latentgnn:d=16'}``. (default: :obj:`None`)
        arch (str, optional): see :data:`ARCHITECTURES`.
            (default: :obj:`'digits'`)
        epochs (int, optional): training epochs. (default: :obj:`10`)
        batch_size (int, optional): images per batch. (default: :obj:`64`)
        lr (float, optional): Adam's initial learning rate.
            (default: :obj:`2e-3`)
        seed (int, optional): seed of the weights, the data and the
            per-epoch / per-step draws. (default: :obj:`0`)
        root (str, optional): the image folder of ``'folder'``.
        train_size (int, optional): training mosaics (``'digits'``).
        val_size (int, optional): test mosaics (``'digits'``).
        image_size (int, optional): side of the folder's resized images.
            (default: :obj:`64`)
        val_fraction (float, optional): the held-out fraction of each class
            of a folder without ``train/`` and ``val/``.
            (default: :obj:`0.2`)
        pretrained (str, optional): a file of backbone weights loaded
            before training starts (not when resuming), see
            :func:`load_backbone_weights`; a classifier of another number
            of classes is left out. (default: :obj:`None`)
        precision (str, optional): Lightning's ``precision``.
            (default: :obj:`None`: float32)
        resume (bool, optional): continue from ``out_dir``'s last
            checkpoint if there is one. (default: :obj:`True`)
        progress (bool, optional): the progress bar. (default: :obj:`True`)
        accelerator (str, optional): ``'cpu'``, ``'cuda'`` or ``'auto'``.
            (default: :obj:`'auto'`)
        callbacks (list, optional): further Lightning callbacks.

    Returns:
        dict: the ``result.json`` content: ``config``, ``epochs``,
        ``params``, ``flops`` (one forward pass of one image, a
        multiply-add counted as 2), ``overhead`` (per unit: name, unit,
        channels, params, flops), ``seconds_per_epoch`` (mean over the
        epochs trained in this call), ``peak_rss_bytes``, ``metrics``
        (``val_loss``, ``val_acc``: a fraction in [0, 1]).

    Raises:
        ValueError: an unknown data set or architecture, an invalid unit
            point or spec, ``'folder'`` without ``root``, or a checkpoint
            in ``out_dir`` of another configuration.
        FileNotFoundError: a missing image folder.
    """
    out = Path(out_dir)
    units = dict(units or {})
    L.seed_everything(seed, workers=True, verbose=False)
    train, val = make_datasets(data, root, train_size, val_size, seed,
                               image_size, val_fraction)
    info = _info(train)
    task = ClassificationTask(info.in_channels, info.num_classes, units,
                              arch, lr, seed=seed, data=data,
                              class_names=list(info.class_names))
    ckpt = resume_from(out, resume, task.hparams, CONFIG_KEYS)
    if pretrained is not None and ckpt is None:
        skipped = load_backbone_weights(task.model, pretrained)['skipped']
        if skipped:
            print(f'pretrained weights: left out {skipped} (other shapes)',
                  file=sys.stderr)
    trainer, timer = make_trainer(out, epochs, precision, progress,
                                  accelerator, callbacks)
    datamodule = _Data(train, val, batch_size, seed)
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    metrics = trainer.validate(task, datamodule=datamodule,
                               verbose=False)[0]
    image = train[0][0]
    size = unit_overhead(task.model.cpu(), (1, *image.shape))
    config = dict(data=data, units=units, arch=arch, seed=seed,
                  batch_size=batch_size, lr=lr, root=root,
                  train_size=train_size, val_size=val_size,
                  image_size=image_size, val_fraction=val_fraction,
                  pretrained=None if pretrained is None else str(pretrained))
    result = dict(config=config, epochs=epochs, params=size.total_params,
                  flops=size.total_flops, overhead=size.rows,
                  input_shape=list(size.input_shape),
                  seconds_per_epoch=timer.seconds_per_epoch(),
                  peak_rss_bytes=peak_rss_bytes(),
                  metrics={k: float(v) for k, v in metrics.items()})
    (out / 'result.json').write_text(json.dumps(result, indent=2))
    return result


def load_run(out_dir: str) -> Tuple[ClassificationTask, Dict]:
    """The trained task of a run folder written by :func:`fit` (its last
    checkpoint, on the CPU, in evaluation mode) and its ``result.json``
    configuration.

    Raises:
        FileNotFoundError: no ``result.json`` or checkpoint in ``out_dir``.
    """
    return _load_run(out_dir, ClassificationTask, 'classify')


def evaluate(out_dir: str, root: Optional[str] = None) -> Dict:
    """Evaluates the last checkpoint of a run folder on its validation
    split (re-made from ``result.json``) and writes ``evaluation.json``.

    Args:
        out_dir (str): a run folder written by :func:`fit`.
        root (str, optional): the image folder, if not the recorded one.

    Returns:
        dict: ``val_loss``, ``val_acc`` (a fraction in [0, 1]).

    Raises:
        FileNotFoundError: no ``result.json`` or checkpoint in ``out_dir``,
            or a missing image folder.
        ValueError: images of other classes (names or order) than the run
            was trained on.
    """
    task, config = load_run(out_dir)
    _, val = make_datasets(config['data'], root or config.get('root'),
                           config.get('train_size'), config.get('val_size'),
                           config['seed'], config.get('image_size', 64),
                           config.get('val_fraction', 0.2))
    trained = task.hparams.get('class_names')
    found = list(_info(val).class_names)
    if trained is not None and list(trained) != found:
        raise ValueError(f"The run was trained on the classes {list(trained)}"
                         f", the evaluation images have {found}")
    trainer = L.Trainer(accelerator='cpu', devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    result = trainer.validate(task, torch.utils.data.DataLoader(val, 256),
                              verbose=False)[0]
    result = {k: float(v) for k, v in result.items()}
    (Path(out_dir) / 'evaluation.json').write_text(json.dumps(result,
                                                              indent=2))
    return result


__all__ = ['ClassificationTask', 'fit', 'evaluate', 'load_run',
           'load_backbone_weights',
           'make_datasets', 'build_model',
           'ARCHITECTURES', 'DATASETS']

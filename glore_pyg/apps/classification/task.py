"""Image classification on the application base: the data module (digit
mosaics, a folder of images) and the task (a ResNet with units inserted,
cross entropy, top-1 accuracy).  Configured from YAML with
``glore-pyg classify fit --config ...`` (:mod:`glore_pyg.apps.cli`)."""
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import DataModule, LRSchedulerCallable, OptimizerCallable, Task
from .insert import insert_units, load_backbone_weights, unit_overhead
from .resnet import BasicBlock, Bottleneck, ResNet

#: The data sets of :class:`ClassificationData` and what their root holds.
DATASETS = {'digits': None,
            'folder': 'a folder with one sub-folder of images per class'}

#: Bundled backbones by name: ``'digits'`` is the small ResNet of the
#: digit-mosaic example (a 3x3 stem without pooling, three stages of one
#: basic block, widths 16-32-64, a receptive field of 25 pixels);
#: ``'resnet18'`` and ``'resnet50'`` are the ImageNet networks (7x7 stem,
#: four stages).  ``'torchvision.NAME'`` takes ``torchvision.models.NAME``
#: (weights not downloaded; load them with ``pretrained``).
ARCHITECTURES = {
    'digits': dict(block=BasicBlock, layers=(1, 1, 1), width=16,
                   stem='small'),
    'resnet18': dict(block=BasicBlock, layers=(2, 2, 2, 2), width=64,
                     stem='imagenet'),
    'resnet50': dict(block=Bottleneck, layers=(3, 4, 6, 3), width=64,
                     stem='imagenet'),
}


def build_model(arch: str, in_channels: int, num_classes: int,
                units: Optional[Mapping[str, str]] = None) -> nn.Module:
    """A backbone of :data:`ARCHITECTURES` (or ``'torchvision.NAME'``) with
    units inserted after the named modules (fresh units are the identity).

    Args:
        arch (str): ``'digits'``, ``'resnet18'``, ``'resnet50'`` or
            ``'torchvision.resnet18'`` etc.
        in_channels (int): image channels (torchvision models: 3).
        num_classes (int): classes.
        units (dict, optional): module name -> unit spec, e.g.
            ``{'layer3': 'glore'}``. (default: :obj:`None`)

    Raises:
        ValueError: an unknown ``arch``, a torchvision model that does not
            take ``in_channels``, an invalid insertion point or spec.
        ImportError: ``'torchvision.NAME'`` without torchvision.
    """
    if arch.startswith('torchvision.'):
        try:
            from torchvision import models
        except ImportError as e:
            raise ImportError(f"'arch' {arch} needs torchvision, which does "
                              f"not import here ({e})") from e
        name = arch.split('.', 1)[1]
        if not callable(getattr(models, name, None)):
            raise ValueError(f"'arch': torchvision.models has no {name!r}")
        if in_channels != 3:
            raise ValueError(f"'arch': {arch} takes 3 image channels, the "
                             f"data has {in_channels}")
        model = getattr(models, name)(weights=None, num_classes=num_classes)
    elif arch in ARCHITECTURES:
        model = ResNet(num_classes=num_classes, in_channels=in_channels,
                       **ARCHITECTURES[arch])
    else:
        raise ValueError(f"'arch': unknown architecture {arch!r}; choose one "
                         f"of {list(ARCHITECTURES)} or 'torchvision.NAME'")
    if units:
        insert_units(model, dict(units))
    return model


class ClassificationData(DataModule):
    """Images for classification by name.

    * ``'digits'``: :class:`~glore_pyg.apps.classification.DigitMosaics`
      ("are the two distant digits equal?"), train and test mosaics from
      disjoint source scans (default sizes 8,000 and 2,000).
    * ``'folder'``: images in ``root`` with one sub-folder per class
      (:class:`~glore_pyg.apps.classification.ImageFolder`); ``root/train``
      and ``root/val`` are the two splits when both exist, otherwise
      ``val_fraction`` of each class is held out (seeded, stratified).

    Args:
        name (str, optional): ``'digits'`` or ``'folder'``.
            (default: ``'digits'``)
        root (str, optional): the image folder (``'folder'``).
        train_size (int, optional): training mosaics (``'digits'``;
            :obj:`None`: 8,000).
        val_size (int, optional): test mosaics (``'digits'``; :obj:`None`:
            2,000).
        image_size (int, optional): side in pixels folder images are
            resized to. (default: ``64``)
        val_fraction (float, optional): held-out fraction of a folder
            without ``train/`` and ``val/``. (default: ``0.2``)
        batch_size (int, optional): images per batch. (default: ``64``)
        num_workers (int, optional): loader workers. (default: ``0``)
        seed (int, optional): seed of the mosaics, the hold-out and the
            order (the command line sets it from ``seed_everything``).

    Raises:
        ValueError: an unknown name, ``'folder'`` without ``root``, train
            and val folders with other classes, sizes out of range.
        FileNotFoundError: a missing ``root``.
    """

    datasets = DATASETS

    def __init__(self, name: str = 'digits', root: Optional[str] = None,
                 train_size: Optional[int] = None,
                 val_size: Optional[int] = None, image_size: int = 64,
                 val_fraction: float = 0.2, batch_size: int = 64,
                 num_workers: int = 0, seed: int = 0):
        self.train_size, self.val_size = train_size, val_size
        self.image_size, self.val_fraction = image_size, val_fraction
        super().__init__(name, root, batch_size, num_workers, seed)

    def build(self):
        from .datasets import DigitMosaics, ImageFolder
        if self.name == 'digits':
            return (DigitMosaics('train', self.train_size, seed=self.seed),
                    DigitMosaics('test', self.val_size, seed=self.seed))
        base = Path(self.root)
        if (base / 'train').is_dir() and (base / 'val').is_dir():
            train = ImageFolder(base / 'train', self.image_size)
            val = ImageFolder(base / 'val', self.image_size)
            if val.classes != train.classes:
                raise ValueError(f"{base / 'val'} has classes {val.classes},"
                                 f" {base / 'train'} has {train.classes}")
            return train, val
        return ImageFolder(self.root, self.image_size).split(
            self.val_fraction, self.seed)

    @property
    def in_channels(self) -> int:
        return int(self.info.in_channels)

    def val_dataloader(self):
        return self._loader(self.val_set, False, 256)


class ClassificationTask(Task):
    r"""Image classification with global-reasoning units in a ResNet.

    Units inserted after named modules, cross entropy, top-1 accuracy
    (:mod:`torchmetrics`).

    The setting of the GloRe paper's ImageNet experiments (`"Graph-Based
    Global Reasoning Networks" <https://arxiv.org/abs/1811.12814>`_,
    Table 2: units inserted into a ResNet trained with cross entropy),
    scaled to a CPU.

    Args:
        arch (str, optional): ``'digits'``, ``'resnet18'``, ``'resnet50'``
            (bundled) or ``'torchvision.NAME'`` (see :func:`build_model`).
            (default: ``'digits'``)
        units (dict, optional): module name -> unit spec.
            (default: none, the baseline)
        pretrained (str, optional): a file of backbone weights loaded when
            the task is built (see :func:`~glore_pyg.apps.classification
            .load_backbone_weights`; a classifier of another size is left
            out). A resumed run takes its weights from the checkpoint.
        optimizer, lr_scheduler, seed: see :class:`~glore_pyg.apps.base
            .Task`.
        in_channels (int, optional): image channels (from the data).
        num_classes (int, optional): classes (from the data).
        class_names (list of str, optional): the classes in label order,
            kept in checkpoints so that ``validate`` / ``test`` /
            ``predict`` refuse data of other classes (from the data).

    Shapes:
        - **input:** images :math:`(B, C, H, W)`; labels :math:`(B)`
        - **output:** logits :math:`(B, \text{num\_classes})`

    Raises:
        ValueError: see :func:`build_model`; unfit ``pretrained`` weights.
        FileNotFoundError: a missing ``pretrained`` file.
    """

    per_class_key, per_class_title = 'acc_per_class', 'accuracy'

    def __init__(self, arch: str = 'digits',
                 units: Optional[Mapping[str, str]] = None,
                 pretrained: Optional[str] = None,
                 optimizer: Optional[OptimizerCallable] = None,
                 lr_scheduler: Optional[LRSchedulerCallable] = None,
                 seed: int = 0, in_channels: int = 1, num_classes: int = 2,
                 class_names: Optional[List[str]] = None):
        self.num_classes = num_classes
        super().__init__(optimizer, lr_scheduler, seed)
        self.save_hyperparameters(ignore=['optimizer', 'lr_scheduler'])
        self.class_names = list(class_names or [])
        self.model = build_model(arch, in_channels, num_classes,
                                 dict(units or {}))
        if pretrained is not None:
            skipped = load_backbone_weights(self.model, pretrained)['skipped']
            if skipped:
                print(f'pretrained weights: left out {skipped} (other '
                      f'shapes)', file=sys.stderr)

    def make_metrics(self):
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy
        return MetricCollection({
            'acc': MulticlassAccuracy(self.num_classes, average='micro'),
            'acc_per_class': MulticlassAccuracy(self.num_classes,
                                                average='none')})

    def forward(self, batch) -> Tensor:
        r"""Logits :math:`(B, \text{num\_classes})` of images
        :math:`(B, C, H, W)` or of an ``(images, labels)`` batch."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.model(images)

    def loss_terms(self, logits: Tensor, batch):
        """Summed cross entropy and the number of images."""
        return (F.cross_entropy(logits, batch[1], reduction='sum'),
                logits.new_tensor(float(batch[1].numel())))

    def update_metrics(self, metrics, logits: Tensor, batch) -> None:
        metrics.update(logits.argmax(1), batch[1])

    def predict_step(self, batch, batch_idx: int) -> List[Dict[str, Tensor]]:
        """Per image: ``pred`` and ``y``."""
        pred = self(batch).argmax(1).cpu()
        return [dict(pred=p, y=y) for p, y in zip(pred, batch[1].cpu())]

    def complexity(self, data: ClassificationData) -> Dict:
        """Parameters, FLOPs and multiply-adds (``macs``) of one image and
        the units' overhead."""
        image = data.train_set[0][0]
        size = unit_overhead(self.model, (1, *image.shape))
        return dict(params=size.total_params, flops=size.total_flops,
                    macs=size.total_macs,
                    overhead=size.rows, input_shape=list(size.input_shape))

    def draw(self, data: ClassificationData, index: int, folder: str,
             unit: Optional[str] = None) -> List[str]:
        """The pictures of what the inserted unit ``unit`` does with
        validation image ``index`` (see :func:`~glore_pyg.apps
        .classification.pictures.draw_unit`)."""
        from .pictures import draw_unit
        image, label = data.val_set[index]
        names = data.class_names
        with torch.no_grad():
            pred = int(self(image[None].to(self.device)).argmax(1))
        text = (f'validation image {index}: label {names[int(label)]}, '
                f'predicted {names[pred]}')
        return draw_unit(self.model, image.to(self.device), folder,
                         unit=unit, title=text)


def write_predictions(items: List[Dict[str, Tensor]], folder,
                      class_names=None, ids=None) -> List[str]:
    """Writes ``predictions.npy`` (predicted labels) and ``labels.npy``,
    entry ``i`` for image ``i`` of the data set when ``ids`` (the index of
    each item) is given, in the order of ``items`` otherwise.

    Raises:
        ValueError: ``ids`` that are not a permutation of
            ``range(len(items))``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if ids is not None:
        ids = [int(i) for i in ids]
        if sorted(ids) != list(range(len(items))):
            raise ValueError(f"'ids': not a permutation of the {len(items)} "
                             f"items' indices")
        items = [item for _, item in sorted(zip(ids, items),
                                            key=lambda pair: pair[0])]
    np.save(folder / 'predictions.npy',
            np.array([int(i['pred']) for i in items], dtype=np.int64))
    np.save(folder / 'labels.npy',
            np.array([int(i['y']) for i in items], dtype=np.int64))
    return [str(folder / 'predictions.npy'), str(folder / 'labels.npy')]


__all__ = ['ClassificationData', 'ClassificationTask', 'build_model',
           'write_predictions', 'ARCHITECTURES', 'DATASETS']

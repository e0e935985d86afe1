"""CNN feature maps: a ResNet-18/50-shaped backbone, inserting units into
any network after named sub-modules, their overhead, and image data sets
(digit mosaics, a folder of images).  The Lightning task and data module
(``glore-pyg classify``; the ``train`` extra) live in
:mod:`glore_pyg.apps.classification.task`.  Nothing in :mod:`glore_pyg.nn`
imports from here."""
from .insert import (InsertedUnit, Overhead, insert_units, inserted_units,
                     load_backbone_weights,
                     read_output_shape, remove_units, unit_overhead)
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50

__all__ = ['insert_units', 'inserted_units', 'remove_units',
           'load_backbone_weights', 'InsertedUnit',
           'read_output_shape', 'unit_overhead', 'Overhead', 'ResNet',
           'BasicBlock', 'Bottleneck', 'resnet18', 'resnet50',
           'DigitMosaics', 'ImageFolder']


def __getattr__(name):  # the data sets need scikit-learn / Pillow
    if name in ('DigitMosaics', 'ImageFolder'):
        from . import datasets
        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

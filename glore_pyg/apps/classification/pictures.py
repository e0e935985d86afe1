"""Pictures of what a trained classifier's unit does with one image: its
projection maps over the image and its latent graph (needs matplotlib)."""
from functools import partial
from pathlib import Path
from typing import List, Optional

import torch
from torch import nn

from ...viz.capture import unit_projections
from .insert import inserted_units


def draw_unit(model: nn.Module, image: torch.Tensor, folder: str,
              unit: Optional[str] = None, title: Optional[str] = None
              ) -> List[str]:
    r"""Draws, for one image, what an inserted unit of ``model`` does and
    writes three PNG files in ``folder``: ``projection_maps.png`` (the image
    and several latent nodes' projection weights over it, GloRe's Fig. 6;
    for a non-local block, attention maps of a few query positions),
    ``latent_graph_heatmap.png`` and ``latent_graph.png`` (the latent graph,
    GloRe's :math:`I - A_g` or LatentGNN's :math:`F_X` for this image, as a
    heat map and as a drawn graph).

    The model runs once in evaluation mode without gradients (its mode is
    restored); the unit's input is read with a forward pre-hook and the unit
    is run again on it with ``return_projection=True``.

    Args:
        model (torch.nn.Module): a network with units from
            :func:`~glore_pyg.apps.classification.insert_units`.
        image (Tensor): one image :math:`(C, H, W)` (on the model's device).
        folder (str): where the files go (created).
        unit (str, optional): the unit's module name as in
            :func:`~glore_pyg.apps.classification.inserted_units`.
            (default: :obj:`None`: the first)
        title (str, optional): a title for the projection maps.

    Returns:
        list of str: the three file paths.

    Raises:
        ValueError: a model without units, an unknown ``unit`` name (the
            names are listed), an image that is not :math:`(C, H, W)`.
    """
    from ...viz import image_projection_maps, save_unit_pictures
    units = inserted_units(model)
    if not units:
        raise ValueError("The model has no inserted unit (a baseline?): "
                         "nothing to draw")
    name = next(iter(units)) if unit is None else unit
    if name not in units:
        raise ValueError(f"'unit': no unit {name!r}; the units are "
                         f"{list(units)}")
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError(f"'image' must be a tensor [C, H, W], got "
                         f"{getattr(image, 'shape', type(image).__name__)}")
    target = units[name]
    (fmap, *_), projections = unit_projections(model, target,
                                               lambda: model(image[None]))
    return save_unit_pictures(
        folder, projections, partial(image_projection_maps, image.cpu(),
                                     projections, tuple(fmap.shape[2:])),
        f'{name}: {type(target).__name__}', title)


def draw_run(out_dir: str, to: Optional[str] = None, index: int = 0,
             unit: Optional[str] = None) -> List[str]:
    """:func:`draw_unit` for a trained run folder of
    :func:`glore_pyg.apps.classification.training.fit` on image ``index`` of its
    validation split (what ``glore-pyg classify pictures`` runs).

    Args:
        out_dir (str): the run folder.
        to (str, optional): the folder of the PNG files.
            (default: :obj:`None`: ``out_dir/pictures``)
        index (int, optional): the validation image. (default: :obj:`0`)
        unit (str, optional): the unit's module name.
            (default: :obj:`None`: the first)

    Returns:
        list of str: the file paths.

    Raises:
        FileNotFoundError: no trained run in ``out_dir``.
        ValueError: a run without units, an unknown ``unit``, ``index`` out
            of range.
    """
    from .training import load_run, make_datasets
    task, config = load_run(out_dir)
    _, val = make_datasets(config['data'], config.get('root'),
                           config.get('train_size'), config.get('val_size'),
                           config['seed'], config.get('image_size', 64))
    if isinstance(index, bool) or not isinstance(index, int) or not (
            -len(val) <= index < len(val)):
        raise ValueError(f"'index' must be an int in [0, {len(val)}), got "
                         f"{index!r}")
    image, label = val[index]
    names = getattr(getattr(val, 'dataset', val), 'class_names', None)
    with torch.no_grad():
        pred = int(task(image[None]).argmax(1))
    text = (f'validation image {index}: label '
            f'{names[int(label)] if names else int(label)}, predicted '
            f'{names[pred] if names else pred}')
    return draw_unit(task.model, image, to or str(Path(out_dir) /
                                                  'pictures'),
                     unit=unit, title=text)


__all__ = ['draw_unit', 'draw_run']

"""Pictures of what a trained classifier's unit does with one image: its
projection maps over the image and its latent graph (needs matplotlib)."""
from functools import partial
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


__all__ = ['draw_unit']

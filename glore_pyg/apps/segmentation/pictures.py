"""Pictures of what a trained segmentation network's unit does with one
cloud: the points coloured by the latent node they project to most, a few
latent nodes' weights in 3-D, and the latent graph (needs matplotlib)."""
from functools import partial
from typing import List, Optional

import torch

from ...viz.capture import unit_projections
from .pointnet2 import PointNet2Segmentation


def draw_level(model: PointNet2Segmentation, data, folder: str,
               level: Optional[str] = None, title: Optional[str] = None
               ) -> List[str]:
    r"""Draws, for one cloud, what the unit after ``level`` does and writes
    ``projection_maps.png`` (the level's points coloured by the latent node
    each projects to most, and single latent nodes' weights, in 3-D),
    ``latent_graph_heatmap.png`` and ``latent_graph.png`` (LatentGNN's
    :math:`F_X` or GloRe's :math:`I - A_g` for this cloud, as a heat map
    and as a drawn graph) in ``folder``.

    The network runs once in evaluation mode without gradients (its mode is
    restored); the unit's input is read with a forward pre-hook, the
    positions of the level's points with a forward hook on the set
    abstraction that made them, and the unit is run again with
    ``return_projection=True``.

    Args:
        model (PointNet2Segmentation): a network with units.
        data (torch_geometric.data.Data): one cloud (``pos``, ``x``).
        folder (str): where the files go (created).
        level (str, optional): ``'sa1'`` ... or ``'fp1'`` ...
            (default: :obj:`None`: the first level with a unit)
        title (str, optional): a title for the projection maps.

    Returns:
        list of str: the three file paths.

    Raises:
        ValueError: a network without units, a level without a unit (the
            levels with one are listed), or a non-local unit (it has no
            latent nodes to colour the points by).
    """
    from ...viz import point_projection_maps, save_unit_pictures
    if not len(model.units):
        raise ValueError("The network has no unit (a baseline?): nothing "
                         "to draw")
    level = level or next(iter(model.units))
    if level not in model.units:
        raise ValueError(f"'level': no unit at {level!r}; the levels with a "
                         f"unit are {list(model.units)}")
    unit = model.units[level]
    positions = []  # positions of level 0 (the input), sa1, sa2, ...
    hooks = [sa.register_forward_hook(
        lambda m, args, out: positions.append(out[1])) for sa in model.sa]
    batch = torch.zeros(data.pos.size(0), dtype=torch.long)
    positions.append(data.pos)
    try:
        _, projections = unit_projections(
            model, unit, lambda: model(data.pos, data.x, batch))
    finally:
        for h in hooks:
            h.remove()
    if projections[0].visible_to_latent is None:
        raise ValueError(f"The unit at {level!r} is a non-local block: it "
                         f"has no latent nodes to draw")
    depth = int(level[2:])  # saK: positions[K]; fpJ: positions[J - 1]
    pos = positions[depth] if level.startswith('sa') else \
        positions[depth - 1]
    return save_unit_pictures(
        folder, projections, partial(point_projection_maps, pos, projections),
        f'{level}: {type(unit).__name__}', title)


__all__ = ['draw_level']

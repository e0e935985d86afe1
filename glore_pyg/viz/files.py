"""The three pictures of one unit on one input, as files."""
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..nn.units.base import Projection
from .latent_graph import latent_graph_drawing, latent_graph_heatmap

#: The file names :func:`save_unit_pictures` writes, in order.
FILE_NAMES = ('projection_maps.png', 'latent_graph_heatmap.png',
              'latent_graph.png')


def save_unit_pictures(folder, projections: Sequence[Projection],
                       draw_maps: Callable, label: str,
                       title: Optional[str] = None) -> List[str]:
    """Writes ``projection_maps.png`` (by ``draw_maps(path=..., title=...)``,
    e.g. :func:`image_projection_maps` or :func:`point_projection_maps` with
    the input bound), ``latent_graph_heatmap.png`` and ``latent_graph.png``
    (:func:`latent_graph_heatmap` and :func:`latent_graph_drawing` of the
    first kernel's latent graph) in ``folder`` (created).

    Args:
        folder (str or Path): where the files go.
        projections (list of Projection): what the unit returned with
            ``return_projection=True``.
        draw_maps (callable): draws the projection maps; called with the
            keyword arguments ``path`` and ``title``.
        label (str): the title of the latent-graph pictures (and of the maps
            when ``title`` is not given).
        title (str, optional): the title of the projection maps.

    Returns:
        list of str: the three paths, in the order of :data:`FILE_NAMES`.

    Raises:
        ValueError, TypeError: what the drawing functions raise for their
            inputs.
    """
    paths = [Path(folder) / name for name in FILE_NAMES]
    draw_maps(path=paths[0], title=title or label)
    latent_graph_heatmap(projections[0], path=paths[1], title=label)
    latent_graph_drawing(projections[0], path=paths[2], title=label)
    return [str(p) for p in paths]

"""Figures of what the global-reasoning units do (needs matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global matplotlib state is changed) and, given ``path``, saves it
as a PNG file with :func:`save_figure`.

* :func:`image_projection_maps`: the projection maps of latent nodes over an
  image (Fig. 6 of the GloRe paper), or non-local attention maps;
* :func:`point_projection_maps`: the same for a point cloud, in 3-D;
* :func:`latent_graph_heatmap` and :func:`latent_graph_drawing`: the latent
  graph (GloRe's :math:`I - A_g`, LatentGNN's :math:`F_X`) as a heat map and
  as a drawn graph;
* :func:`to_networkx`: a unit's latent graph as a :mod:`networkx` graph
  (needs networkx only);
* :func:`unit_inputs` and :func:`unit_projections`: what a unit inside a
  network is called with, and its projections (needs torch only).
"""
from ._common import DPI, save_figure
from .latent_graph import latent_graph_drawing, latent_graph_heatmap
from .projections import image_projection_maps, point_projection_maps
from .files import FILE_NAMES, save_unit_pictures
from .capture import unit_inputs, unit_projections
from .networkx import to_networkx

__all__ = [
    'image_projection_maps',
    'point_projection_maps',
    'latent_graph_heatmap',
    'latent_graph_drawing',
    'save_figure',
    'save_unit_pictures',
    'FILE_NAMES',
    'DPI',
    'to_networkx',
    'unit_inputs',
    'unit_projections',
]

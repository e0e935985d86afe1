"""Point operations with the signatures and semantics of
``torch_geometric.nn``: ``fps``, ``knn``, ``radius``, ``knn_interpolate``.

PyG's own run only with ``pyg-lib`` / ``torch-cluster``; these use them when
they work and otherwise an exact fallback (scipy's ``cKDTree`` on CPU
tensors, chunked pure torch elsewhere).

* :func:`fps`: farthest point sampling, cloud by cloud in sampling order.
* :func:`knn`: the ``k`` nearest points of each query, ``[2, E]`` edges
  ``(query, point)``.
* :func:`radius`: the points closer than ``r`` to each query (strictly), at
  most ``max_num_neighbors``; the fallback keeps the nearest.
* :func:`knn_interpolate`: PointNet++'s inverse squared distance
  interpolation, on :func:`knn`.
* :func:`backend`: which implementation an op uses on a device
  (``'pyg-lib'``, ``'torch_cluster'``, ``'scipy'`` or ``'torch'``).

The fallback needs neither library: scipy is optional (without it CPU
tensors take the torch path too), and the torch path bounds its memory by
computing at most ``CHUNK_ENTRIES`` distances at a time
(``glore_pyg.ops._backend``).
"""
from ._backend import backend
from .fps import fps
from .knn import knn
from .knn_interpolate import knn_interpolate
from .radius import radius

__all__ = ['fps', 'knn', 'radius', 'knn_interpolate', 'backend']

"""Point operations with the signatures and semantics of
``torch_geometric.nn``: ``fps``, ``knn``, ``radius``, ``knn_interpolate``.

PyG's own run only with ``pyg-lib`` / ``torch-cluster``; these use them when
they work and otherwise an exact fallback (scipy's ``cKDTree`` on CPU
tensors, chunked pure torch elsewhere)."""

"""Point-cloud segmentation data sets (PyG ``Dataset`` / ``Data``
conventions)."""

"""Point-cloud applications of the units: PointNet++ segmentation, data sets
and metrics.  Nothing in :mod:`glore_pyg.nn` imports from here."""

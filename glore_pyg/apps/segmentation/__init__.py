"""Point-cloud applications of the units: PointNet++ segmentation, data sets
and metrics.  The Lightning task and data module (``glore-pyg segment``; the
``train`` extra) live in :mod:`glore_pyg.apps.segmentation.task`.  Nothing
in :mod:`glore_pyg.nn` imports from here."""

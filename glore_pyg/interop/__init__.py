"""Moving between glore-pyg and the published PyTorch code.

* :func:`load_official_glore` / :func:`export_official_glore`: the GloRe
  repository's ``GloRe_Unit_1D/2D/3D``;
* :func:`load_official_latentgnn` / :func:`export_official_latentgnn`: the
  LatentGNN repository's ``LatentGNNV1``.

Loading returns our grid units (same outputs, in training and eval mode);
exporting returns state dicts that the published modules load with
``strict=True``.  See ``docs/migration.md``.
"""
from .glore import export_official_glore, load_official_glore
from .latentgnn import export_official_latentgnn, load_official_latentgnn

__all__ = [
    'load_official_glore',
    'export_official_glore',
    'load_official_latentgnn',
    'export_official_latentgnn',
]

"""glore-pyg: global reasoning (GloRe, LatentGNN) for PyTorch Geometric."""
from . import functional, nn, utils

__version__ = '0.1.0'
__all__ = ['nn', 'functional', 'utils', '__version__']

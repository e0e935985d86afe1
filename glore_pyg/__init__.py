"""glore-pyg: global reasoning (GloRe, LatentGNN) for PyTorch Geometric."""
from . import functional, nn

__version__ = '0.1.0'
__all__ = ['nn', 'functional', '__version__']

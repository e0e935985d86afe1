"""Batched per-sample kernels behind the fused paths."""
from .normalize import normalize_projection
from .segments import Segments

__all__ = ['Segments', 'normalize_projection']

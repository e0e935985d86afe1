"""The few helpers the stages share: the sample layout of visible nodes, the
normalisations of projection weights and the memory-lean chunked passes."""
from .normalize import l2_normalize, normalize_projection
from .segments import Segments

__all__ = ['Segments', 'l2_normalize', 'normalize_projection']

"""Tests of glore_pyg.viz, with a shared check of the written PNG files."""
from pathlib import Path

import numpy as np


def check_png(path: Path, fig, dpi: int = 120):
    """``path`` exists, is ``fig``'s size times ``dpi`` (within a pixel)
    and is not blank."""
    from matplotlib.image import imread
    assert path.exists()
    pixels = imread(path)
    width, height = fig.get_size_inches() * dpi
    assert abs(pixels.shape[0] - height) <= 1
    assert abs(pixels.shape[1] - width) <= 1
    assert float(np.var(pixels[..., :3])) > 1e-3

"""Shared helpers of :mod:`glore_pyg.viz`: saving figures and the argument
checks that run before any drawing."""
import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

try:
    from matplotlib.figure import Figure
except ImportError as error:  # pragma: no cover - matplotlib is optional
    raise ImportError("glore_pyg.viz needs matplotlib "
                      "(pip install matplotlib)") from error

from ..functional.checks import check_int
from ..nn.units import Projection

#: Resolution of the saved PNG files (dots per inch).
DPI = 120

PathLike = Union[str, 'os.PathLike[str]']


def save_figure(fig: Figure, path: PathLike, dpi: int = DPI) -> Path:
    """Saves ``fig`` as a PNG file at ``path``, creating missing parent
    folders.  The image is ``fig.get_size_inches() * dpi`` pixels (no
    cropping), whatever the file's extension.

    Args:
        fig (matplotlib.figure.Figure): the figure.
        path (str or os.PathLike): where to write the PNG file.
        dpi (int, optional): dots per inch. (default: :obj:`120`)

    Returns:
        pathlib.Path: the path written.

    Raises:
        TypeError: ``fig`` not a :class:`matplotlib.figure.Figure`,
            ``path`` not a string or path, or ``dpi`` not an int.
        ValueError: ``dpi`` below 1.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"'fig' must be a matplotlib Figure, got "
                        f"{type(fig).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"'path' must be a str or os.PathLike, got "
                        f"{type(path).__name__}")
    check_int(dpi, 'dpi', minimum=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format='png')
    return path


def finish(fig: Figure, path: Optional[PathLike]) -> Figure:
    """Saves ``fig`` at ``path`` when one is given; returns ``fig``."""
    if path is not None:
        save_figure(fig, path)
    return fig


# -- checks ---------------------------------------------------------------
def check_path(path) -> None:
    """``path`` must be :obj:`None`, a string or an ``os.PathLike``."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"'path' must be a str or os.PathLike, got "
                        f"{type(path).__name__}")


def check_title(title) -> None:
    """``title`` must be :obj:`None` or a string."""
    if title is not None and not isinstance(title, str):
        raise TypeError(f"'title' must be a str, got {type(title).__name__}")


def select_projection(projection, kernel: int,
                      name: str = 'projection') -> Projection:
    """The :class:`~glore_pyg.nn.Projection` of ``kernel`` from a list (a
    single projection is returned as is, ``kernel`` ignored)."""
    if isinstance(projection, Projection):
        return projection
    if isinstance(projection, (list, tuple)) and len(projection) > 0 and \
            all(isinstance(p, Projection) for p in projection):
        check_int(kernel, 'kernel', 0, len(projection) - 1)
        return projection[kernel]
    raise TypeError(f"'{name}' must be a Projection or a non-empty list of "
                    f"them (what a unit returns with return_projection=True)"
                    f", got {type(projection).__name__}")


def num_samples(projection: Projection) -> int:
    """Number of samples of a projection (first axis of its
    ``latent_graph``)."""
    return projection.latent_graph.size(0)


def check_nodes(nodes, num_latent: int, name: str = 'nodes') -> List[int]:
    """``nodes`` as a list of distinct ints in ``[0, num_latent)``: a
    ``TypeError`` for a container or an entry of another type, a
    ``ValueError`` for a wrong shape, an empty list, an entry out of range
    (named ``'nodes[i]'``) or a repeated node."""
    if isinstance(nodes, Tensor):
        if nodes.is_floating_point() or nodes.is_complex() or \
                nodes.dtype == torch.bool:
            raise TypeError(f"'{name}' must be an integer tensor or a "
                            f"sequence of ints, got a {nodes.dtype} tensor")
        if nodes.dim() > 1:
            raise ValueError(f"'{name}' must be 1-D, got shape "
                             f"{tuple(nodes.shape)}")
        nodes = nodes.tolist() if nodes.dim() else [int(nodes)]
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
        raise TypeError(f"'{name}' must be a sequence of ints, got "
                        f"{type(nodes).__name__} {nodes!r}")
    if len(nodes) == 0:
        raise ValueError(f"'{name}' must not be empty")
    out = [check_int(node, f'{name}[{i}]', 0, num_latent - 1)
           for i, node in enumerate(nodes)]
    if len(set(out)) != len(out):
        raise ValueError(f"'{name}' must not repeat a node, got {out}")
    return out


def strongest_nodes(weights: Tensor, count: int) -> List[int]:
    """The ``count`` columns of ``weights [n, d]`` with the largest sum of
    absolute values, strongest first (at most ``d``)."""
    total = weights.abs().sum(0)
    count = min(count, total.numel())
    return total.topk(count).indices.tolist()


def grid_shape(count: int, max_cols: int) -> tuple:
    """``(rows, cols)`` of a panel grid of ``count`` panels."""
    cols = min(count, max_cols)
    return -(-count // cols), cols

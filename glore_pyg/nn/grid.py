"""Grid adapters: CNN feature maps ``[B, C, *spatial]`` through the
node-level units.  They only view the map as node tensors; the math lives in
the units."""
from typing import Any, Tuple, Union

from torch import Tensor

from ..functional.segments import Segments
from .units import GloReConv, LatentGNNConv


class GridMixin:
    r"""Runs a node-level unit on a feature map ``[B, C, *spatial]`` with
    ``dims`` spatial axes: each image (clip) is one sample whose visible
    nodes are its positions.  The output has the input's shape and memory
    format.

    No copy of the input or output is made: a contiguous map is viewed as
    channels-first node tensors ``[B, C, H*W]``, a ``channels_last`` map as
    rows ``[B*H*W, C]`` (see :class:`~glore_pyg.functional.Segments`)."""
    dims: int = 2

    def forward(self, x: Tensor, return_projection: bool = False
                ) -> Union[Tensor, Tuple[Tensor, Any]]:
        if x.dim() != self.dims + 2:
            raise ValueError(
                f"{self.__class__.__name__} expects 'x' of shape [B, C"
                f"{', *spatial' if self.dims else ''}] with {self.dims} "
                f"spatial dim(s), got {tuple(x.shape)}")
        B, C, spatial = x.size(0), x.size(1), x.shape[2:]
        if C != self.in_channels:  # type: ignore[attr-defined]
            raise ValueError(
                f"{self.__class__.__name__} expects 'x' with "
                f"{self.in_channels} channels (dim 1), got "  # type: ignore
                f"{tuple(x.shape)}")
        channels_last = x.movedim(1, -1)  # [B, *spatial, C]
        rows = not self.supports_channels_first or (  # type: ignore
            channels_last.is_contiguous() and not x.is_contiguous())
        if rows:  # [B, *spatial, C] -> [B*L, C]
            nodes = channels_last.reshape(-1, C)
            seg = Segments.from_batch(nodes, batch_size=B)
        else:  # [B, C, *spatial] -> [B, C, L]
            nodes = x.reshape(B, C, -1)
            seg = Segments.grid(nodes)
        out = self.forward_segments(  # type: ignore[attr-defined]
            nodes, seg, return_projection)
        rest = None
        if return_projection:
            out, rest = out
        if rows:
            out = out.view(B, *spatial, C).movedim(-1, 1)
        else:
            out = out.view(B, C, *spatial)
        return (out, rest) if return_projection else out


class GloRe1d(GridMixin, GloReConv):
    r""":class:`~glore_pyg.nn.GloReConv` on ``[B, C, L]`` sequences
    (the published ``GloRe_Unit_1D``).

    Args:
        in_channels (int): channels :math:`C`.
        num_mid (int): latent nodes; the latent state has ``2 * num_mid``
            channels.
        normalize (bool, optional): divide the latent features by the number
            of positions. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, C, L)`
    """
    dims = 1


class GloRe2d(GridMixin, GloReConv):
    r""":class:`~glore_pyg.nn.GloReConv` on ``[B, C, H, W]`` feature maps
    (the published ``GloRe_Unit_2D``).  Arguments as
    :class:`~glore_pyg.nn.GloRe1d`.

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    dims = 2


class GloRe3d(GridMixin, GloReConv):
    r""":class:`~glore_pyg.nn.GloReConv` on ``[B, C, T, H, W]`` clips
    (the published ``GloRe_Unit_3D``).  Arguments as
    :class:`~glore_pyg.nn.GloRe1d`.

    Shapes:
        - **input:** :math:`(B, C, T, H, W)`
        - **output:** :math:`(B, C, T, H, W)`
    """
    dims = 3


class LatentGNN1d(GridMixin, LatentGNNConv):
    r""":class:`~glore_pyg.nn.LatentGNNConv` on ``[B, C, L]`` sequences.
    Arguments as :class:`~glore_pyg.nn.LatentGNNConv`.

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, C, L)`
    """
    dims = 1


class LatentGNN2d(GridMixin, LatentGNNConv):
    r""":class:`~glore_pyg.nn.LatentGNNConv` on ``[B, C, H, W]`` feature maps
    (the published ``LatentGNNV1``).  Arguments as
    :class:`~glore_pyg.nn.LatentGNNConv`.

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    dims = 2


class LatentGNN3d(GridMixin, LatentGNNConv):
    r""":class:`~glore_pyg.nn.LatentGNNConv` on ``[B, C, T, H, W]`` clips.
    Arguments as :class:`~glore_pyg.nn.LatentGNNConv`.

    Shapes:
        - **input:** :math:`(B, C, T, H, W)`
        - **output:** :math:`(B, C, T, H, W)`
    """
    dims = 3

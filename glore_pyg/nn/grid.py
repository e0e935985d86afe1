"""Grid adapters: CNN feature maps ``[B, C, *spatial]`` through the
node-level units.  They only reshape; the math lives in the units."""
from typing import Any, Tuple, Union

from torch import Tensor

from .units import GloReConv, LatentGNNConv


class GridMixin:
    r"""Runs a node-level unit on a feature map ``[B, C, *spatial]`` with
    ``dims`` spatial axes: each image (clip) is one sample whose visible
    nodes are its positions.  The output has the input's shape."""
    dims: int = 2

    def forward(self, x: Tensor, return_projection: bool = False
                ) -> Union[Tensor, Tuple[Tensor, Any]]:
        if x.dim() != self.dims + 2:
            raise ValueError(
                f"{self.__class__.__name__} expects 'x' of shape [B, C"
                f"{', *spatial' if self.dims else ''}] with {self.dims} "
                f"spatial dim(s), got {tuple(x.shape)}")
        B, C, spatial = x.size(0), x.size(1), x.shape[2:]
        # [B, C, *spatial] -> [B, L, C] -> [B*L, C]
        nodes = x.flatten(2).transpose(1, 2).reshape(-1, C)
        out = super().forward(  # type: ignore[misc]
            nodes, batch_size=B, return_projection=return_projection)
        rest = None
        if return_projection:
            out, rest = out
        # [B*L, C] -> [B, L, C] -> [B, C, *spatial]
        out = out.view(B, -1, C).transpose(1, 2).reshape(B, C, *spatial)
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

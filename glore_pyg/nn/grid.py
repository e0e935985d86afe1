"""Grid adapters: CNN feature maps ``[B, C, *spatial]`` through the
node-level units.  They only reshape the map into node rows and back; the
math lives in the units."""
from typing import List, Tuple, Union

from torch import Tensor

from ..functional.segments import Segments
from .units import GloReConv, LatentGNNConv, NonLocalConv, Projection


class GridMixin:
    r"""Runs a node-level unit (a :class:`~glore_pyg.nn.GlobalReasoningUnit`)
    on a feature map ``[B, C, *spatial]`` with ``dims`` spatial axes: each
    image (clip) is one sample whose visible nodes are its positions.  The
    output has the input's shape, dtype and memory format.

    The units' ``Linear`` modules work on node rows ``[B*L, C]``: a
    ``channels_last`` map is viewed as rows without a copy, a contiguous map
    is copied once into rows.  The residual sum is taken in the map's own
    layout, so the output needs no copy back."""
    dims: int = 2

    def forward(self, x: Tensor, return_projection: bool = False
                ) -> Union[Tensor, Tuple[Tensor, List[Projection]]]:
        r"""
        Args:
            x (Tensor): a feature map :math:`(B, C, *spatial)`.
            return_projection (bool, optional): also return the list of
                :class:`~glore_pyg.nn.Projection` (node rows in the order
                ``x.movedim(1, -1).reshape(-1, C)``). (default: :obj:`False`)

        Raises:
            ValueError: ``x`` of the wrong number of dimensions or channels.
            TypeError: ``x`` not floating point, or of another dtype or
                device than the unit.
        """
        self.check_input(x, self.dims + 2)  # type: ignore[attr-defined]
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
        rows = x.movedim(1, -1).reshape(-1, C)  # [B, C, *sp] -> [B*L, C]
        seg = Segments(rows.size(0), max(B, 1), None, x.device)
        branch, projections = self.branch(  # type: ignore[attr-defined]
            rows, seg, return_projection)
        # [B*L, C] -> [B, C, *spatial] (a view), summed in x's layout
        branch = branch.view(B, *spatial, C).movedim(-1, 1)
        out = self.add_residual(x, branch)  # type: ignore[attr-defined]
        return (out, projections) if return_projection else out


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


class NonLocal1d(GridMixin, NonLocalConv):
    r""":class:`~glore_pyg.nn.NonLocalConv` on ``[B, C, L]`` sequences: the
    dense non-local block (:math:`O(L^2)` per sample), the baseline for CNN
    experiments.  Arguments as :class:`~glore_pyg.nn.NonLocalConv`.

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, C, L)`
    """
    dims = 1


class NonLocal2d(GridMixin, NonLocalConv):
    r""":class:`~glore_pyg.nn.NonLocalConv` on ``[B, C, H, W]`` feature maps
    (the embedded-Gaussian ``NONLocalBlock2D`` of the non-local paper).
    Arguments as :class:`~glore_pyg.nn.NonLocalConv`.

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    dims = 2


class NonLocal3d(GridMixin, NonLocalConv):
    r""":class:`~glore_pyg.nn.NonLocalConv` on ``[B, C, T, H, W]`` clips.
    Arguments as :class:`~glore_pyg.nn.NonLocalConv`.

    Shapes:
        - **input:** :math:`(B, C, T, H, W)`
        - **output:** :math:`(B, C, T, H, W)`
    """
    dims = 3

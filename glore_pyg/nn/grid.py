"""Grid adapters: CNN feature maps ``[B, C, *spatial]`` through the
node-level units.  An adapter (:class:`GridUnit`) wraps a unit and only
reshapes the map into node rows and back; the math lives in the unit.

The papers define their units on such maps: GloRe (`"Graph-Based Global
Reasoning Networks" <https://arxiv.org/abs/1811.12814>`_, CVPR 2019) on 1D,
2D and 3D feature maps, LatentGNN (`"Learning Efficient Non-local Relations
for Visual Recognition" <https://arxiv.org/abs/1905.11634>`_, ICML 2019) and
the non-local block (`"Non-local Neural Networks"
<https://arxiv.org/abs/1711.07971>`_, CVPR 2018) on images and videos.  Each
image (clip) is one sample; its :math:`L` positions (``H * W`` for an
image) are the visible nodes.
"""
from functools import partial
from typing import (Any, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from torch import Tensor
from torch.nn import Module

from ..functional.checks import check_int, is_symbolic
from ..functional.segments import Segments
from .units import (GloReConv, GlobalReasoningUnit, LatentGNNConv,
                    NonLocalConv, Projection)


class GridUnit(Module):
    r"""Runs a node-level unit (a :class:`~glore_pyg.nn.GlobalReasoningUnit`)
    on a feature map ``[B, C, *spatial]`` with ``dims`` spatial axes: each
    image (clip) is one sample whose visible nodes are its positions.  The
    output has the input's shape, dtype and memory format.

    The adapter owns the unit as its child ``unit`` and only reshapes: the
    unit's ``Linear`` modules work on node rows ``[B*L, C]``; a
    ``channels_last`` map is viewed as rows without a copy, a contiguous map
    is copied once into rows.  The residual sum is taken in the map's own
    layout, so the output needs no copy back.  The named adapters
    (:class:`~glore_pyg.nn.GloRe2d`, :class:`~glore_pyg.nn.LatentGNN2d`,
    ...) build their unit; any unit, a new one included, can be wrapped:

    .. code-block:: python

        grid = GridUnit(LatentGNNConv(256, [32, 32]), dims=2)
        out = grid(torch.randn(8, 256, 14, 14))  # [8, 256, 14, 14]

    The ``state_dict`` keys are the unit's under ``unit.``.  A state dict
    saved when the adapters were the units themselves (the unit's keys
    without ``unit.``) still loads, also with ``strict=True`` and nested in
    a larger model: a load-state-dict pre-hook moves those keys under
    ``unit.``.

    The adapter calls the unit's parts (:meth:`~glore_pyg.nn
    .GlobalReasoningUnit.branch` and :meth:`~glore_pyg.nn
    .GlobalReasoningUnit.add_residual`), not ``unit.forward``: forward hooks
    registered on ``adapter.unit`` do not fire; register them on the
    adapter, or on the unit's submodules (``adapter.unit.up``, ...), which
    are called as usual.

    Args:
        unit (GlobalReasoningUnit): the node-level unit, e.g.
            :class:`~glore_pyg.nn.GloReConv`.
        dims (int): the number of spatial axes, 1, 2 or 3.

    Shapes:
        - **input:** :math:`(B, C, *spatial)` with ``dims`` spatial axes
          and ``C = unit.in_channels``
        - **output:** :math:`(B, C, *spatial)`; with
          ``return_projection=True`` also the unit's list of
          :class:`~glore_pyg.nn.Projection`

    Raises:
        TypeError: ``unit`` not a
            :class:`~glore_pyg.nn.GlobalReasoningUnit`, ``dims`` not an int;
            from :meth:`forward`, see there.
        ValueError: ``dims`` not 1, 2 or 3; from :meth:`forward`, see
            there.
    """
    unit: GlobalReasoningUnit
    dims: int

    def __init__(self, unit: GlobalReasoningUnit, dims: int):
        super().__init__()
        if not isinstance(unit, GlobalReasoningUnit):
            raise TypeError(f"'unit' must be a GlobalReasoningUnit (e.g. "
                            f"GloReConv, LatentGNNConv, NonLocalConv), got "
                            f"{type(unit).__name__}")
        self.dims = check_int(dims, 'dims', 1, 3)
        self.unit = unit
        self.register_load_state_dict_pre_hook(_keys_without_unit_prefix)

    @property
    def in_channels(self) -> int:
        """The unit's input (and output) channels :math:`C`."""
        return self.unit.in_channels

    def reset_parameters(self):
        """The unit's ``reset_parameters()``: the identity again."""
        self.unit.reset_parameters()

    def forward(self, x: Tensor, return_projection: bool = False
                ) -> Union[Tensor, Tuple[Tensor, List[Projection]]]:
        r"""
        Args:
            x (Tensor): a feature map :math:`(B, C, *spatial)` with
                ``dims`` spatial axes and ``C = in_channels``.
            return_projection (bool, optional): also return the list of
                :class:`~glore_pyg.nn.Projection` (node rows in the order
                ``x.movedim(1, -1).reshape(-1, C)``, :math:`N = B L`;
                ``batch`` is the image index of each row).
                (default: :obj:`False`)

        Returns:
            The output :math:`(B, C, *spatial)`, in ``x``'s dtype and memory
            format; with ``return_projection=True`` the pair
            ``(output, projections)``.

        Raises:
            ValueError: ``x`` of the wrong number of dimensions or channels;
                from the unit: ``return_projection`` with LatentGNN's
                ``chunk_size``, or a batch of a single position
                (:math:`B L = 1`) in training mode (BatchNorm statistics).
            TypeError: ``x`` not a tensor, not floating point, or of another
                dtype or device than the unit (see
                :class:`~glore_pyg.nn.GlobalReasoningUnit`); LatentGNN's
                ``chunk_size`` with a norm other than ``BatchNorm1d``.
        """
        unit = self.unit
        seg = unit.layout(x, partial(self._layout, x),
                          owner=self.__class__.__name__,
                          return_projection=return_projection)
        moved = x.movedim(1, -1)  # [B, *spatial, C], a view
        rows = moved.reshape(-1, unit.in_channels)  # a view if channels_last
        if seg is None:  # torch.fx: the number of rows is a node of the trace
            seg = Segments(rows.size(0), x.size(0), None, x.device)
        branch, projections = unit.branch(rows, seg, return_projection)
        # [B*L, C] -> [B, C, *spatial] (a view), summed in x's layout
        branch = branch.view(moved.shape).movedim(-1, 1)
        out = unit.add_residual(x, branch)
        return (out, projections) if return_projection else out

    def _layout(self, x: Tensor) -> Optional[Segments]:
        """Checks the map ``x`` and returns its layout: each image (clip) a
        sample of its positions (:obj:`None` under torch.fx tracing, where
        the caller builds it from the rows)."""
        unit = self.unit
        unit.check_input(x, self.dims + 2, owner=self.__class__.__name__)
        C = unit.in_channels
        symbolic = is_symbolic(x)  # torch.fx tracing: no values to check
        if not symbolic:
            if x.dim() != self.dims + 2:
                raise ValueError(
                    f"{self.__class__.__name__} expects 'x' of shape [B, C"
                    f"{', *spatial' if self.dims else ''}] with {self.dims} "
                    f"spatial dim(s), got {tuple(x.shape)}")
            if x.size(1) != C:
                raise ValueError(
                    f"{self.__class__.__name__} expects 'x' with {C} "
                    f"channels (dim 1), got {tuple(x.shape)}")
        if symbolic:
            return None
        return Segments(x.numel() // C, max(x.size(0), 1), None, x.device)

    def __repr__(self) -> str:
        # a named adapter (GloRe2d, ...) says its dims in its name
        named = getattr(type(self), 'dims', None) is not None
        return (f'{self.__class__.__name__}({self.unit!r}' +
                (')' if named else f', dims={self.dims})'))


def node_unit(source: Any) -> Optional[GlobalReasoningUnit]:
    """The node-level unit of ``source``: ``source`` itself for a
    :class:`~glore_pyg.nn.GlobalReasoningUnit`, the wrapped ``unit`` of a
    grid adapter (:class:`GridUnit`), else :obj:`None` (any other module or
    object).

    .. code-block:: python

        node_unit(LatentGNN2d(256, [64]))  # its LatentGNNConv
        node_unit(GloReConv(64, 16))       # the same GloReConv
        node_unit(torch.nn.Linear(2, 2))   # None
    """
    inner = source.unit if isinstance(source, GridUnit) else source
    return inner if isinstance(inner, GlobalReasoningUnit) else None


def _keys_without_unit_prefix(module: GridUnit, state_dict: Dict[str, Any],
                              prefix: str, local_metadata: Mapping,
                              strict: bool, missing_keys: List[str],
                              unexpected_keys: List[str],
                              error_msgs: List[str]) -> None:
    """Checkpoints of the adapters that were their unit (keys ``prefix +
    name``): each key the unit expects under ``prefix + 'unit.'`` that is
    missing is taken from ``prefix + name``."""
    inner = prefix + 'unit.'
    for name in module.unit.state_dict(keep_vars=True):
        old, new = prefix + name, inner + name
        if new not in state_dict and old in state_dict:
            state_dict[new] = state_dict.pop(old)


def _doc(head: str, body: str, dims: int) -> str:
    """A grid adapter's docstring: its own first paragraph, then the
    Args / Shapes / Raises its kind shares, with its shape."""
    shape = {1: '(B, C, L)', 2: '(B, C, H, W)', 3: '(B, C, T, H, W)'}[dims]
    return head + '\n\n' + body.lstrip('\n').replace('@SHAPE@', shape)


_GLORE = r"""
    From `"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_ (CVPR 2019): the positions of each
    sample are projected onto ``num_mid`` latent nodes (:math:`V = BX`),
    reasoned over by the graph convolution of Eq. 3 and projected back
    (:math:`Y = DZ`, :math:`D = B^\top`); the update rule is
    :class:`~glore_pyg.nn.GloReConv`'s.  The adapter builds that
    :class:`~glore_pyg.nn.GloReConv` as its child ``unit`` (its parameters,
    ``state_dict`` keys under ``unit.``) and reshapes the map for it, see
    :class:`~glore_pyg.nn.GridUnit`.

    Args:
        in_channels (int): input (and output) channels :math:`C`.
        num_mid (int): number of latent nodes :math:`d` (the published
            ``num_mid``); the latent state has ``2 * num_mid`` channels.
        normalize (bool, optional): divide the latent features by the
            number of positions :math:`L` of the sample (the published
            ``normalize``). (default: :obj:`False`)
        bn_eps (float, optional): eps of the output BatchNorm (the published
            value). (default: :obj:`1e-4`)

    Shapes:
        - **input:** :math:`@SHAPE@`
        - **output:** :math:`@SHAPE@`; with ``return_projection=True``
          also a list with one :class:`~glore_pyg.nn.Projection`

    Raises:
        ValueError: ``in_channels`` or ``num_mid`` below 1; an input of
            another shape or number of channels; a single position in the
            whole batch in training mode (BatchNorm).
        TypeError: ``in_channels`` or ``num_mid`` not an int; an input that
            is not a floating-point tensor, or of another dtype or device
            than the unit.
    """


_LATENTGNN = r"""
    From `"Learning Efficient Non-local Relations for Visual Recognition"
    <https://arxiv.org/abs/1905.11634>`_ (ICML 2019, Eq. 3-10): a
    non-local graph over the positions of each sample, factorised through
    the latent nodes of each kernel; the update rule is
    :class:`~glore_pyg.nn.LatentGNNConv`'s.  The adapter builds that
    :class:`~glore_pyg.nn.LatentGNNConv` as its child ``unit`` (its
    parameters, ``gamma`` and ``state_dict`` keys under ``unit.``) and
    reshapes the map for it, see :class:`~glore_pyg.nn.GridUnit`.

    Args:
        in_channels (int): input (and output) channels :math:`C`.
        latent_dims (list of int): latent nodes :math:`d_i` of each kernel,
            one kernel per entry (outputs concatenated).
        channel_stride (int, optional): the kernels work on
            ``in_channels // channel_stride`` channels. (default: :obj:`4`)
        mode (str, optional): :obj:`"asymmetric"` (separate
            visible-to-latent and latent-to-visible projections) or
            :obj:`"symmetric"` (one shared projection).
            (default: :obj:`"asymmetric"`)
        graph_conv (bool, optional): the graph-convolution weight after each
            kernel (the published ``graph_conv_flag``).
            (default: :obj:`False`)
        without_residual (bool, optional): return the branch alone, without
            :math:`\mathbf{X} + \gamma\,\cdot` (the published flag).
            (default: :obj:`False`)
        chunk_size (int, optional): the memory-lean mode, at most
            ``chunk_size`` positions at a time (see
            :class:`~glore_pyg.nn.LatentGNNConv`).
            (default: :obj:`None`: plain autograd)

    Shapes:
        - **input:** :math:`@SHAPE@`
        - **output:** :math:`@SHAPE@`; with ``return_projection=True``
          also a list of :class:`~glore_pyg.nn.Projection` (one per kernel)

    Raises:
        ValueError: invalid constructor arguments (``in_channels``,
            ``channel_stride``, ``chunk_size`` or an entry of
            ``latent_dims`` below 1, an empty ``latent_dims``, a
            ``channel_stride`` above ``in_channels``, an unknown ``mode``);
            an input of another shape or number of channels;
            ``return_projection`` with ``chunk_size``; a single position in
            the whole batch in training mode (BatchNorm).
        TypeError: ``in_channels``, ``channel_stride``, ``chunk_size`` or an
            entry of ``latent_dims`` not an int, ``latent_dims`` not a list
            (an int included); an input that is not a floating-point
            tensor, or of another dtype or device than the unit; with
            ``chunk_size``, a norm other than plain ``BatchNorm1d`` (e.g.
            ``SyncBatchNorm``).
    """


_NONLOCAL = r"""
    From `"Non-local Neural Networks" <https://arxiv.org/abs/1711.07971>`_
    (CVPR 2018): Eq. 1 with the embedded-Gaussian affinity of Eq. 3 and the
    residual of Eq. 6, over all positions of each sample; the update rule
    is :class:`~glore_pyg.nn.NonLocalConv`'s.  The adapter builds that
    :class:`~glore_pyg.nn.NonLocalConv` as its child ``unit`` (its
    parameters, ``state_dict`` keys under ``unit.``) and reshapes the map
    for it, see :class:`~glore_pyg.nn.GridUnit`.

    Args:
        in_channels (int): input (and output) channels :math:`C`.
        inter_channels (int, optional): channels of
            :math:`\theta, \phi, g`.
            (default: ``max(in_channels // 2, 1)``)
        bn_eps (float, optional): eps of the output BatchNorm.
            (default: :obj:`1e-5`)

    Shapes:
        - **input:** :math:`@SHAPE@`
        - **output:** :math:`@SHAPE@`; with ``return_projection=True``
          also a list with one :class:`~glore_pyg.nn.Projection` (the
          attention of each sample)

    Raises:
        ValueError: ``in_channels`` or ``inter_channels`` below 1; an input
            of another shape or number of channels; a single position in
            the whole batch in training mode (BatchNorm).
        TypeError: ``in_channels`` or ``inter_channels`` not an int; an
            input that is not a floating-point tensor, or of another dtype
            or device than the unit.
        RuntimeError: out of memory (from torch) when the :math:`L \times L`
            attention of a sample does not fit.
    """


class _GloReGrid(GridUnit):
    """Builds the GloReConv of the GloRe adapters."""

    def __init__(self, in_channels: int, num_mid: int,
                 normalize: bool = False, bn_eps: float = 1e-4):
        super().__init__(GloReConv(in_channels, num_mid, normalize=normalize,
                                   bn_eps=bn_eps), self.dims)


class _LatentGNNGrid(GridUnit):
    """Builds the LatentGNNConv of the LatentGNN adapters."""

    def __init__(self, in_channels: int, latent_dims: Sequence[int],
                 channel_stride: int = 4, mode: str = 'asymmetric',
                 graph_conv: bool = False, without_residual: bool = False,
                 chunk_size: Optional[int] = None):
        super().__init__(LatentGNNConv(
            in_channels, latent_dims, channel_stride=channel_stride,
            mode=mode, graph_conv=graph_conv,
            without_residual=without_residual, chunk_size=chunk_size),
            self.dims)


class _NonLocalGrid(GridUnit):
    """Builds the NonLocalConv of the NonLocal adapters."""

    def __init__(self, in_channels: int, inter_channels: Optional[int] = None,
                 bn_eps: float = 1e-5):
        super().__init__(NonLocalConv(in_channels, inter_channels,
                                      bn_eps=bn_eps), self.dims)


class GloRe1d(_GloReGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.GloReConv` on ``[B, C, L]`` sequences
    (the published ``GloRe_Unit_1D`` of facebookresearch/GloRe).""",
        _GLORE, 1)
    dims = 1


class GloRe2d(_GloReGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.GloReConv` on ``[B, C, H, W]`` feature maps
    (the published ``GloRe_Unit_2D`` of facebookresearch/GloRe;
    :math:`L = H W` positions per sample).""",
        _GLORE, 2)
    dims = 2


class GloRe3d(_GloReGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.GloReConv` on ``[B, C, T, H, W]`` clips
    (the published ``GloRe_Unit_3D`` of facebookresearch/GloRe;
    :math:`L = T H W` positions per sample).""",
        _GLORE, 3)
    dims = 3


class LatentGNN1d(_LatentGNNGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.LatentGNNConv` on ``[B, C, L]`` sequences
    (no published 1D module: the unit of
    :class:`~glore_pyg.nn.LatentGNN2d` on sequences).""",
        _LATENTGNN, 1)
    dims = 1


class LatentGNN2d(_LatentGNNGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.LatentGNNConv` on ``[B, C, H, W]``
    feature maps
    (the published ``LatentGNNV1`` of latentgnn/LatentGNN-V1-PyTorch;
    :math:`L = H W` positions per sample).""",
        _LATENTGNN, 2)
    dims = 2


class LatentGNN3d(_LatentGNNGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.LatentGNNConv` on ``[B, C, T, H, W]`` clips
    (no published 3D module; :math:`L = T H W` positions per sample).""",
        _LATENTGNN, 3)
    dims = 3


class NonLocal1d(_NonLocalGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.NonLocalConv` on ``[B, C, L]`` sequences: the
    dense non-local block (:math:`O(L^2)` time and memory per sample), the
    baseline for CNN experiments.""",
        _NONLOCAL, 1)
    dims = 1


class NonLocal2d(_NonLocalGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.NonLocalConv` on ``[B, C, H, W]``
    feature maps
    (the embedded-Gaussian ``NONLocalBlock2D`` of the non-local paper;
    :math:`L = H W` positions per sample, :math:`O(L^2)` time and memory).""",
        _NONLOCAL, 2)
    dims = 2


class NonLocal3d(_NonLocalGrid):
    __doc__ = _doc(
        r""":class:`~glore_pyg.nn.NonLocalConv` on ``[B, C, T, H, W]`` clips
    (the space-time non-local block of the paper; :math:`L = T H W`
    positions per sample, :math:`O(L^2)` time and memory).""",
        _NONLOCAL, 3)
    dims = 3

"""The one unit protocol shared by GloRe, LatentGNN and the non-local block.

A unit is an ordinary :class:`torch.nn.Module` that owns its ``Linear`` /
``BatchNorm`` / activation modules and calls them, so forward hooks,
:meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`, dynamic quantization,
parametrizations, :func:`torch.autocast` and :func:`torch.compile` apply to it
without the unit knowing.  :class:`GlobalReasoningUnit` holds what every unit
shares (input checks, the sample layout, empty inputs, the residual sum, the
:class:`Projection` record); a unit only writes :meth:`~GlobalReasoningUnit
.reason`, the branch of ``x + branch(x)``.  The grid adapters
(:mod:`glore_pyg.nn.grid`) and :func:`glore_pyg.viz.to_networkx` use this
protocol and nothing unit-specific, so a new unit is one new file.
"""
from functools import partial
from typing import Callable, List, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module, ReLU, Sequential

from ...functional.checks import check_int, is_symbolic
from ...functional.segments import Segments
from ...functional.shard import Shard, dtype_code, fingerprint


class Projection(NamedTuple):
    r"""What a unit did with one input, for plots and inspection.  Every
    unit returns a list of them with ``return_projection=True``: one per
    kernel (LatentGNN) or a single one (GloRe, non-local).

    Attributes:
        visible_to_latent (Tensor): weights of the visible-to-latent edges
            ``[N, d]``: LatentGNN's :math:`\Psi_{v2l}` after its L2
            normalisation, as used; GloRe's :math:`B` (before the
            :math:`1/L` of ``normalize=True``); the non-local block has no
            latent nodes (each visible node is its own):
            :obj:`None`.
        latent_to_visible (Tensor): weights of the latent-to-visible edges
            ``[N, d]`` (LatentGNN: normalised, as used; GloRe: :math:`B`;
            non-local: :obj:`None`).
        latent_graph (Tensor): the weighted graph between latent nodes of
            each sample, ``[S, d, d]``; entry ``[s, k, j]`` weighs the
            message ``j -> k`` of sample ``s``.  GloRe: the learned
            :math:`I - A_g` (the same for every sample, an expanded view);
            LatentGNN: the data-dependent :math:`F_X`; non-local: the
            attention over visible nodes, ``[S, n, n]`` (samples of
            different sizes zero-padded to the largest).
        batch (Tensor): sample index of each visible node ``[N]``.
    """
    visible_to_latent: Optional[Tensor]
    latent_to_visible: Optional[Tensor]
    latent_graph: Tensor
    batch: Tensor


class GlobalReasoningUnit(Module):
    r"""Base class of the units: :math:`\mathbf{X}' = \mathbf{X} +
    \mathrm{branch}(\mathbf{X})` per sample, on node features ``x [N, C]``
    with PyG's ``batch`` / ``ptr`` or ``batch_size`` equal samples.

    Subclasses set :attr:`in_channels` and implement :meth:`reason`.  An
    empty input (``N = 0``) returns an empty output ``[0, C]`` (and no
    projections) without running any submodule.  The residual form is the
    papers' (GloRe's :math:`X + Y`, LatentGNN's :math:`X + \gamma\,
    \tilde{X}`, the non-local block's Eq. 6).

    Raises:
        ValueError: from :meth:`forward`, before any computation: ``x``
            not ``[N, in_channels]``, a malformed or inconsistent ``batch``
            / ``ptr`` / ``batch_size``.
        TypeError: from :meth:`forward`, before any computation: ``x`` not
            a floating-point tensor, or of another dtype than the unit's
            parameters (under :func:`torch.autocast`, float32 and the
            half-precision dtypes are accepted; autocast does not cast
            float64), or on another device; ``batch_size`` not an int.
    """
    in_channels: int
    #: the processes that hold the other visible nodes of the samples
    #: (:class:`~glore_pyg.functional.shard.Shard`), set by
    #: :func:`~glore_pyg.nn.shard_units`; :obj:`None`: each call holds whole
    #: samples
    shard: Optional[Shard] = None
    #: whether :func:`~glore_pyg.nn.shard_units` may shard the unit: its
    #: sums over visible nodes go through :meth:`Segments.reduce
    #: <glore_pyg.functional.Segments.reduce>` and its BatchNorms are
    #: modules it calls
    shardable: bool = True

    def reason(self, x: Tensor, segments: Segments,
               return_projection: bool = False
               ) -> Tuple[Tensor, List[Projection]]:
        """The residual branch for node rows ``x [N, C]`` with ``N > 0``:
        ``(branch [N, C], projections)``, the projections only when asked
        for (else an empty list)."""
        raise NotImplementedError

    def add_residual(self, x: Tensor, branch: Tensor) -> Tensor:
        """``x + branch``, in ``x``'s dtype and memory layout (``branch``
        may come in a lower precision under autocast)."""
        return (x + branch).to(x.dtype)  # no copy when the dtypes agree

    # -- the protocol ----------------------------------------------------
    def forward(
        self,
        x: Tensor,
        batch: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        batch_size: Optional[int] = None,
        return_projection: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, List[Projection]]]:
        r"""
        Args:
            x (Tensor): node features :math:`(N, C)`.
            batch (LongTensor, optional): sorted sample index of each node
                :math:`(N)`.
            ptr (LongTensor, optional): sample boundaries :math:`(S + 1)`
                (with ``batch``, both must agree).
            batch_size (int, optional): :math:`S` samples of equal size
                stored one after the other (no host synchronisation), or the
                number of samples of ``batch`` (trailing ones may be empty).
            return_projection (bool, optional): also return a list of
                :class:`Projection`. (default: :obj:`False`)

        Returns:
            :math:`(N, C)` in ``x``'s dtype, and the list of projections
            with ``return_projection=True``.

        Raises:
            ValueError: ``x`` not ``[N, in_channels]``, a malformed or
                inconsistent ``batch`` / ``ptr`` / ``batch_size`` (see
                :meth:`glore_pyg.functional.Segments.from_batch`); from the
                unit, e.g. a single node in training mode (BatchNorm).
            TypeError: ``x`` not a floating-point tensor, or of another
                dtype or device than the unit's parameters; ``batch_size``
                not an int.
        """
        seg = self.layout(x, partial(self._node_layout, x, batch, ptr,
                                     batch_size),
                          return_projection=return_projection)
        branch, projections = self.branch(x, seg, return_projection)
        out = self.add_residual(x, branch)
        return (out, projections) if return_projection else out

    def _node_layout(self, x: Tensor, batch: Optional[Tensor],
                     ptr: Optional[Tensor],
                     batch_size: Optional[int]) -> Segments:
        self.check_input(x, 2)
        if not is_symbolic(x) and (x.dim() != 2 or
                                   x.size(1) != self.in_channels):
            raise ValueError(f"'x' must be [N, {self.in_channels}], got "
                             f"{tuple(x.shape)}")
        if self.shard is not None and batch is not None and ptr is None \
                and batch_size is None:
            raise ValueError(
                "A sharded unit needs 'batch_size' with 'batch': a process "
                "may hold no node of the last samples, so the number of "
                "samples must be given (the same on every process)")
        return Segments.from_batch(x, batch, ptr, batch_size)

    def layout(self, x: Tensor, read: Callable[[], Optional[Segments]],
               owner: Optional[str] = None,
               return_projection: bool = False) -> Optional[Segments]:
        """The sample layout of the input ``x``: ``read()``, which checks
        the input and returns its :class:`~glore_pyg.functional.Segments`.
        For a sharded unit (:attr:`shard`), every process then takes part in
        one metadata collective before any other work, whatever its own
        checks found: the number of samples, channels, dtype, mode,
        ``return_projection`` and the unit's configuration must agree, and an input rejected on one
        process is an error on all of them (no process waits for a
        collective the others never reach).  The layout then carries the
        shard.

        Args:
            x (Tensor): the input (node rows or a feature map).
            read (callable): checks ``x`` and returns its layout, raising
                ``ValueError`` / ``TypeError`` for a bad input (it may
                return :obj:`None` under torch.fx tracing).
            owner (str, optional): the module named in the messages.
                (default: this unit's class name)
            return_projection (bool, optional): whether the call returns
                projections (their normalisations may need collectives
                too, so the processes must agree on it).
                (default: :obj:`False`)

        Raises:
            ValueError, TypeError: from ``read``.
            RuntimeError: sharded, without an initialised process group.
            ~glore_pyg.functional.shard.ShardMismatchError: sharded, when
                another process rejected its input or the processes
                disagree.
        """
        if self.shard is None or is_symbolic(x):
            return read()
        owner = owner or self.__class__.__name__
        self.shard.check_initialized(owner)
        seg, meta, error = None, None, None
        try:
            seg = read()
            meta = [seg.num_samples, x.size(1), dtype_code(x.dtype),
                    int(self.training), int(bool(return_projection)),
                    self.fingerprint()]
        except (ValueError, TypeError) as e:
            error = e
        self.shard.agree(owner, x.device, meta, error, self.__repr__)
        seg.shard = self.shard
        return seg

    def fingerprint(self) -> int:
        """A checksum of the unit's configuration: its ``repr`` and the
        names and shapes of its parameters and buffers (what the processes
        of a sharded unit must share)."""
        state = ';'.join(f'{k}:{tuple(v.shape)}'
                         for k, v in self.state_dict(keep_vars=True).items())
        return fingerprint(f'{self!r};{state}')

    def branch(self, x: Tensor, segments: Segments,
               return_projection: bool = False
               ) -> Tuple[Tensor, List[Projection]]:
        """:meth:`reason`, or an empty branch for an empty input (a sharded
        unit runs :meth:`reason` on no rows too: its collectives need every
        process)."""
        if not is_symbolic(x) and segments.num_nodes == 0 \
                and segments.shard is None:
            return x.new_zeros(0, self.in_channels), []
        return self.reason(x, segments, return_projection)

    def check_input(self, x: Tensor, dims: int, name: str = 'x',
                    owner: Optional[str] = None):
        """Type, dtype and device checks of the input, before any work.

        Args:
            x (Tensor): the input.
            dims (int): its expected number of dimensions; for another
                number only the type checks run (the caller then raises a
                ``ValueError`` naming the expected shape).
            name (str, optional): the argument's name in the messages.
                (default: :obj:`'x'`)
            owner (str, optional): the module named in the messages, e.g. a
                grid adapter's class name. (default: this unit's class
                name)

        Raises:
            TypeError: ``x`` not a floating-point tensor, or of another
                device or dtype than the unit's first floating-point
                parameter (float32 / half precision accepted under
                :func:`torch.autocast`).
        """
        if is_symbolic(x):
            return
        if not isinstance(x, Tensor):
            raise TypeError(f"'{name}' must be a tensor, got "
                            f"{type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"'{name}' must be a floating-point tensor, got "
                            f"{x.dtype}")
        if x.dim() != dims:
            return  # the caller names the expected shape
        owner = owner or self.__class__.__name__
        param = next((p for p in self.parameters()
                      if p.is_floating_point()), None)
        if param is None:
            return
        if x.device != param.device:
            raise TypeError(f"'{name}' is on {x.device} but "
                            f"{owner}'s parameters are on "
                            f"{param.device}")
        if x.dtype == param.dtype:
            return
        autocast = torch.is_autocast_enabled(x.device.type)
        if autocast and x.dtype in (torch.float16, torch.bfloat16,
                                    torch.float32):
            return  # autocast casts the products' operands
        raise TypeError(
            f"'{name}' is {x.dtype} but {owner}'s "
            f"parameters are {param.dtype}: convert one of them (e.g. "
            f"unit.to({x.dtype}) or x.to({param.dtype}))" +
            (" (torch.autocast does not cast float64)" if autocast else
             ", or run under torch.autocast"))


# -- building blocks shared by the units ----------------------------------
def linear_bn(in_channels: int, out_channels: int, relu: bool = False,
              bias: bool = False, eps: float = 1e-5) -> Sequential:
    """A 1x1 convolution of the papers on node matrices: ``Linear`` then
    ``BatchNorm1d`` (statistics over all visible nodes of the batch, as
    ``BatchNorm2d`` over ``B*H*W``), optionally ``ReLU``."""
    layers = [Linear(in_channels, out_channels, bias=bias),
              BatchNorm1d(out_channels, eps=eps)]
    if relu:
        layers.append(ReLU(inplace=True))  # BN does not need its output
    return Sequential(*layers)


def reset_module(module: Module):
    """``reset_parameters()`` of every submodule that has one."""
    for m in module.modules():
        if m is not module and hasattr(m, 'reset_parameters'):
            m.reset_parameters()


def check_positive_int(value, name: str) -> int:
    """``value`` as an ``int >= 1``, by
    :func:`~glore_pyg.functional.checks.check_int`: a ``TypeError`` for
    another type, a ``ValueError`` for a value below 1, both naming
    ``name``."""
    return check_int(value, name, minimum=1)

"""PointNet++ for semantic segmentation (single-scale grouping), with
global-reasoning units insertable after chosen levels.

`"PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space" <https://arxiv.org/abs/1706.02413>`_ (Qi et al., NeurIPS 2017): set
abstraction levels (farthest point sampling, ball grouping, a shared MLP on
``[x_j, pos_j - pos_i]``, max pooling) down, feature propagation levels
(inverse-distance interpolation from the 3 nearest coarse points,
concatenation with the skip features, a shared MLP) up, and a per-point
classifier.  The LatentGNN paper (Zhang et al., ICML 2019, Table 5) inserts
its unit into this network on ScanNet; here any unit of
:func:`glore_pyg.nn.create_unit` can follow any level, by name::

    PointNet2Segmentation(3, 21, units={'sa4': 'latentgnn:kernels=3'})

Levels are named ``sa1 ... saL`` (after each set abstraction, coarsest last)
and ``fpL ... fp1`` (after each feature propagation, ``fpk`` restoring the
resolution of the input of ``sak``).
"""
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import Dropout, Linear, Module, ModuleDict, ModuleList
from torch_geometric.nn import MLP, PointNetConv

from ...functional.checks import check_int
from ...nn.factory import create_unit
from ...nn.modes import eval_mode
from ...ops import fps, knn_interpolate, radius


class SetAbstractionSpec(NamedTuple):
    r"""One set abstraction level: keep ``ratio`` of the points (farthest
    point sampling), group the neighbours within ``radius`` (at most
    ``max_neighbors``), shared MLP of widths ``channels`` (input width
    excluded).  PointNet++'s sampling, grouping and PointNet layers
    (`"PointNet++: Deep Hierarchical Feature Learning on Point Sets in a
    Metric Space" <https://arxiv.org/abs/1706.02413>`_, Sec. 3.2).

    Attributes:
        ratio (float): fraction of each cloud's points kept as centroids,
            in :math:`(0, 1]` (:math:`\lceil \mathrm{ratio} \cdot n
            \rceil` of :math:`n` points).
        radius (float): grouping radius, in the unit of the positions
            (metres for ScanNet); neighbours are strictly closer.
        channels (sequence of int): output widths of the shared MLP's
            layers; the last is the level's feature width.
        max_neighbors (int): the most neighbours grouped per centroid.
            (default: :obj:`32`)
    """
    ratio: float
    radius: float
    channels: Sequence[int]
    max_neighbors: int = 32


class FeaturePropagationSpec(NamedTuple):
    """One feature propagation level: interpolate from the ``k`` nearest
    coarse points, shared MLP of widths ``channels`` (PointNet++'s feature
    propagation, `"PointNet++: Deep Hierarchical Feature Learning on Point
    Sets in a Metric Space" <https://arxiv.org/abs/1706.02413>`_, Sec. 3.4,
    Eq. 2).

    Attributes:
        k (int): coarse points interpolated from per fine point (the paper
            uses 3).
        channels (sequence of int): output widths of the shared MLP's
            layers (the input width, coarse plus skip features, excluded).
    """
    k: int
    channels: Sequence[int]


#: The single-scale ScanNet network of PointNet++ (8,192 points in:
#: 1,024 / 256 / 64 / 16 points after the four levels).
SCANNET = dict(
    sa=[SetAbstractionSpec(0.125, 0.1, (32, 32, 64)),
        SetAbstractionSpec(0.25, 0.2, (64, 64, 128)),
        SetAbstractionSpec(0.25, 0.4, (128, 128, 256)),
        SetAbstractionSpec(0.25, 0.8, (256, 256, 512))],
    fp=[FeaturePropagationSpec(3, (256, 256)),
        FeaturePropagationSpec(3, (256, 256)),
        FeaturePropagationSpec(3, (256, 128)),
        FeaturePropagationSpec(3, (128, 128, 128))],
)
#: A narrower network of the same shape, sized for a few thousand points on
#: two CPU cores (the synthetic scenes).
SMALL = dict(
    sa=[SetAbstractionSpec(0.25, 0.2, (32, 32, 64)),
        SetAbstractionSpec(0.25, 0.4, (64, 64, 128)),
        SetAbstractionSpec(0.25, 0.8, (128, 128, 128))],
    fp=[FeaturePropagationSpec(3, (128, 128)),
        FeaturePropagationSpec(3, (128, 64)),
        FeaturePropagationSpec(3, (64, 64))],
)
#: The presets by name, ``{'scannet': SCANNET, 'small': SMALL}``: the
#: ``preset`` argument of :class:`PointNet2Segmentation`.
PRESETS = {'scannet': SCANNET, 'small': SMALL}


class SetAbstraction(Module):
    r"""PointNet++ set abstraction, single-scale grouping:

    .. math::
        \mathbf{x}'_i = \max_{j \in \mathcal{N}(i)} h_{\Theta}\left(
        [\mathbf{x}_j \,\Vert\, \mathbf{p}_j - \mathbf{p}_i]\right)

    over the points :math:`i` kept by farthest point sampling and their
    neighbours within ``radius`` (:class:`torch_geometric.nn.PointNetConv`
    with an :class:`~torch_geometric.nn.MLP` :math:`h_\Theta`).  Farthest
    point sampling starts at a random point in training (with
    ``random_start``) and at each cloud's first point otherwise (as the
    original CUDA implementation always does).  The sampling, grouping and PointNet
    layers of `"PointNet++: Deep Hierarchical Feature Learning on Point Sets
    in a Metric Space" <https://arxiv.org/abs/1706.02413>`_ (Sec. 3.2: the
    PointNet of Eq. 1 on each local region, in coordinates relative to its
    centroid).

    Args:
        in_channels (int): point features :math:`F` besides the position
            (0 when ``x`` is :obj:`None`).
        spec (SetAbstractionSpec): ratio, radius, MLP widths and
            neighbour cap of the level (a plain tuple in that order is
            accepted).
        random_start (bool, optional): a random first point in training.
            (default: :obj:`True`)

    Shapes:
        - **input:** ``x`` :math:`(N, F)` or :obj:`None`, ``pos``
          :math:`(N, 3)`, ``batch`` :math:`(N)`
        - **output:** ``(x', pos', batch')`` of the kept points:
          :math:`(M, F')`, :math:`(M, 3)`, :math:`(M)` with
          :math:`F'` = ``spec.channels[-1]`` and :math:`M = \sum_b \lceil
          \mathrm{ratio} \cdot n_b \rceil`
    """

    def __init__(self, in_channels: int, spec: SetAbstractionSpec,
                 random_start: bool = True):
        super().__init__()
        self.spec = SetAbstractionSpec(*spec)
        self.random_start = bool(random_start)
        self.conv = PointNetConv(
            MLP([in_channels + 3, *self.spec.channels], plain_last=False),
            add_self_loops=False)

    @property
    def out_channels(self) -> int:
        """The level's output width, ``spec.channels[-1]``."""
        return self.spec.channels[-1]

    def forward(self, x: Optional[Tensor], pos: Tensor, batch: Tensor):
        r"""
        Args:
            x (Tensor, optional): point features :math:`(N, F)`, or
                :obj:`None` (positions only, ``in_channels = 0``).
            pos (Tensor): positions :math:`(N, 3)`.
            batch (LongTensor): sorted cloud index of each point
                :math:`(N)`.

        Returns:
            ``(x', pos', batch')``: features :math:`(M, F')`, positions
            :math:`(M, 3)` and cloud index :math:`(M)` of the centroids,
            cloud after cloud in sampling order.

        Raises:
            ValueError: non-finite positions, or a ``batch`` of the wrong
                length, unsorted or negative (from
                :func:`glore_pyg.ops.fps` / :func:`glore_pyg.ops.radius`).
            TypeError: non-floating positions or a non-integer ``batch``
                (from the same).
            RuntimeError: ``x`` of another width than ``in_channels``
                (from torch).
        """
        idx = fps(pos, batch, ratio=self.spec.ratio,
                  random_start=self.training and self.random_start)
        row, col = radius(pos, pos[idx], self.spec.radius, batch, batch[idx],
                          max_num_neighbors=self.spec.max_neighbors)
        edge_index = torch.stack([col, row], dim=0)
        x = self.conv((x, None if x is None else x[idx]), (pos, pos[idx]),
                      edge_index)
        return x, pos[idx], batch[idx]


class FeaturePropagation(Module):
    r"""PointNet++ feature propagation:

    .. math::
        \mathbf{x}'_i = h_{\Theta}\left(\left[\frac{\sum_{j} w_{ij}
        \mathbf{x}_j}{\sum_j w_{ij}} \,\Vert\, \mathbf{x}^{skip}_i\right]
        \right), \qquad w_{ij} = \lVert \mathbf{p}_j - \mathbf{p}_i
        \rVert^{-2}

    over the ``k`` nearest coarse points :math:`j` of each fine point
    :math:`i` (:func:`glore_pyg.ops.knn_interpolate`): the feature
    propagation of `"PointNet++: Deep Hierarchical Feature Learning on Point
    Sets in a Metric Space" <https://arxiv.org/abs/1706.02413>`_ (Sec. 3.4,
    the interpolation of Eq. 2 with :math:`p = 2`, then a unit PointNet).

    Args:
        in_channels (int): width of the coarse features :math:`C`.
        skip_channels (int): width of the skip features :math:`C_{skip}` of
            the fine points (0 when they have none).
        spec (FeaturePropagationSpec): ``k`` and the MLP widths (a plain
            tuple in that order is accepted).

    Shapes:
        - **input:** coarse ``x`` :math:`(M, C)`, ``pos`` :math:`(M, 3)`,
          ``batch`` :math:`(M)`; fine ``x_skip`` :math:`(N, C_{skip})` or
          :obj:`None`, ``pos_skip`` :math:`(N, 3)`, ``batch_skip``
          :math:`(N)`
        - **output:** :math:`(N, C')`, :math:`C'` = ``spec.channels[-1]``
    """

    def __init__(self, in_channels: int, skip_channels: int,
                 spec: FeaturePropagationSpec):
        super().__init__()
        self.spec = FeaturePropagationSpec(*spec)
        self.mlp = MLP([in_channels + skip_channels, *self.spec.channels],
                       plain_last=False)

    @property
    def out_channels(self) -> int:
        """The level's output width, ``spec.channels[-1]``."""
        return self.spec.channels[-1]

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor,
                x_skip: Optional[Tensor], pos_skip: Tensor,
                batch_skip: Tensor) -> Tensor:
        r"""
        Args:
            x (Tensor): coarse features :math:`(M, C)`.
            pos (Tensor): coarse positions :math:`(M, 3)`.
            batch (LongTensor): sorted cloud index of the coarse points
                :math:`(M)`.
            x_skip (Tensor, optional): skip features of the fine points
                :math:`(N, C_{skip})`, or :obj:`None`.
            pos_skip (Tensor): fine positions :math:`(N, 3)`.
            batch_skip (LongTensor): sorted cloud index of the fine points
                :math:`(N)`.

        Returns:
            Tensor: fine features :math:`(N, C')`.

        Raises:
            ValueError: what :func:`glore_pyg.ops.knn_interpolate` rejects
                (``x`` rows not matching ``pos``, non-finite positions, a
                malformed batch vector).
            TypeError: non-floating positions or non-integer batch vectors
                (from the same).
            RuntimeError: features of other widths than ``in_channels`` /
                ``skip_channels`` (from torch).
        """
        x = knn_interpolate(x, pos, pos_skip, batch, batch_skip,
                            k=self.spec.k)
        if x_skip is not None:
            x = torch.cat([x, x_skip], dim=1)
        return self.mlp(x)


class PointNet2Segmentation(Module):
    r"""PointNet++ semantic segmentation (single-scale grouping) with
    global-reasoning units after chosen levels.

    Args:
        in_channels (int): per-point input features :math:`F` besides the
            position (0 for positions only).
        num_classes (int): output classes.
        sa (list of SetAbstractionSpec, optional): the set abstraction
            levels. (default: the ``'scannet'`` preset)
        fp (list of FeaturePropagationSpec, optional): the feature
            propagation levels, coarsest first, one per ``sa`` level.
        units (dict, optional): level name (``'sa1'`` ... ``'saL'``,
            ``'fp1'`` ... ``'fpL'``) -> unit spec of
            :func:`glore_pyg.nn.create_unit` (``'latentgnn'``,
            ``'latentgnn:kernels=3'``, ``'glore'``, ``'nonlocal'``, ...); the
            unit runs on that level's point features, each cloud its own
            sample.  Units start as the identity. (default: none)
        preset (str, optional): ``'scannet'`` or ``'small'`` when ``sa`` /
            ``fp`` are not given. (default: ``'scannet'``)
        dropout (float, optional): before the last layer.
            (default: :obj:`0.5`)
        random_start (bool, optional): farthest point sampling from a
            random point in training (PyG's choice); :obj:`False`: from
            each cloud's first point (the original implementation's, and
            what makes training independent of how a batch is split over
            processes, with ``dropout=0``). (default: :obj:`True`)

    Shapes:
        - **input:** ``pos`` :math:`(N, 3)`, ``x`` :math:`(N, F)` or
          :obj:`None`, ``batch`` :math:`(N)` (sorted; :obj:`None`: one
          cloud)
        - **output:** logits :math:`(N, \text{num\_classes})`

    Raises:
        ValueError: unknown preset or level names, mismatched ``sa`` /
            ``fp`` lengths, invalid unit specs, ``in_channels`` below 0 or
            ``num_classes`` below 1.
        TypeError: ``in_channels`` or ``num_classes`` not an int.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 sa: Optional[Sequence[SetAbstractionSpec]] = None,
                 fp: Optional[Sequence[FeaturePropagationSpec]] = None,
                 units: Optional[Mapping[str, str]] = None,
                 preset: str = 'scannet', dropout: float = 0.5,
                 random_start: bool = True):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"'preset' must be one of {sorted(PRESETS)}, "
                             f"got {preset!r}")
        sa = [SetAbstractionSpec(*s) for s in (sa or PRESETS[preset]['sa'])]
        fp = [FeaturePropagationSpec(*f)
              for f in (fp or PRESETS[preset]['fp'])]
        if len(sa) != len(fp):
            raise ValueError(f"'fp' needs one level per 'sa' level: "
                             f"{len(sa)} and {len(fp)} given")
        in_channels = check_int(in_channels, 'in_channels', minimum=0)
        num_classes = check_int(num_classes, 'num_classes', minimum=1)
        self.in_channels, self.num_classes = in_channels, num_classes

        self.sa = ModuleList()
        widths = [in_channels]  # features at each resolution, finest first
        for spec in sa:
            self.sa.append(SetAbstraction(widths[-1], spec, random_start))
            widths.append(self.sa[-1].out_channels)
        self.fp = ModuleList()
        width = widths[-1]
        for level, spec in zip(range(len(sa), 0, -1), fp):
            self.fp.append(FeaturePropagation(width, widths[level - 1], spec))
            width = self.fp[-1].out_channels
        self.head = MLP([width, width], plain_last=False)
        self.dropout = Dropout(dropout)
        self.classifier = Linear(width, num_classes)

        channels = {f'sa{i + 1}': m.out_channels for i, m in enumerate(self.sa)}
        channels.update({f'fp{len(sa) - i}': m.out_channels
                         for i, m in enumerate(self.fp)})
        self.level_channels: Dict[str, int] = channels
        self.units = ModuleDict()
        for level, spec in (units or {}).items():
            if level not in channels:
                raise ValueError(f"Unknown level {level!r}: levels are "
                                 f"{list(channels)}")
            self.units[level] = create_unit(spec, channels[level])
        self.unit_specs = dict(units or {})

    def _unit(self, level: str, x: Tensor, batch: Tensor) -> Tensor:
        if level in self.units:
            return self.units[level](x, batch)
        return x

    def forward(self, pos: Tensor, x: Optional[Tensor] = None,
                batch: Optional[Tensor] = None) -> Tensor:
        r"""
        Args:
            pos (Tensor): positions :math:`(N, 3)`, in the unit of the
                specs' radii (metres for the presets).
            x (Tensor, optional): point features :math:`(N, F)`;
                :obj:`None` exactly when ``in_channels`` is 0.
                (default: :obj:`None`)
            batch (LongTensor, optional): sorted cloud index of each point
                :math:`(N)`; :obj:`None`: one cloud. (default: :obj:`None`)

        Returns:
            Tensor: logits :math:`(N, \text{num\_classes})`.

        Raises:
            ValueError: ``pos`` not :math:`(N, 3)`; ``x`` not
                :math:`(N, F)` or given with ``in_channels = 0`` (or missing
                otherwise); an unsorted or negative ``batch`` or non-finite
                positions (from :mod:`glore_pyg.ops`).
            TypeError: non-floating positions or a non-integer ``batch``
                (from :mod:`glore_pyg.ops`); features of another dtype or
                device than a unit (from the unit).
        """
        if pos.dim() != 2 or pos.size(1) != 3:
            raise ValueError(f"'pos' must be [N, 3], got {tuple(pos.shape)}")
        if (x is None) != (self.in_channels == 0) or (
                x is not None and (x.dim() != 2 or x.shape != (
                    pos.size(0), self.in_channels))):
            raise ValueError(f"'x' must be [N, {self.in_channels}] (or None "
                             f"when in_channels is 0), got "
                             f"{None if x is None else tuple(x.shape)}")
        if batch is None:
            batch = pos.new_zeros(pos.size(0), dtype=torch.long)
        levels: List[tuple] = [(x, pos, batch)]
        for i, sa in enumerate(self.sa):
            x, pos, batch = sa(x, pos, batch)
            x = self._unit(f'sa{i + 1}', x, batch)
            levels.append((x, pos, batch))
        x, pos, batch = levels.pop()
        for i, fp in enumerate(self.fp):
            x_skip, pos_skip, batch_skip = levels.pop()
            x = fp(x, pos, batch, x_skip, pos_skip, batch_skip)
            pos, batch = pos_skip, batch_skip
            x = self._unit(f'fp{len(self.fp) - i}', x, batch)
        return self.classifier(self.dropout(self.head(x)))

    def __repr__(self) -> str:
        units = ', '.join(f'{k}={v!r}' for k, v in self.unit_specs.items())
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.num_classes}, levels={len(self.sa)}'
                + (f', units={{{units}}})' if units else ')'))


def complexity(model: PointNet2Segmentation, num_points: int) -> dict:
    """Parameters and forward FLOPs of ``model`` on one cloud of
    ``num_points`` random points, FLOPs counted by
    :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and
    convolutions, a multiply-add counted as 2 FLOPs; the point operations
    add none), in evaluation mode without gradients.  Every module's mode
    is restored (see :func:`~glore_pyg.nn.eval_mode`).

    Args:
        model (PointNet2Segmentation): the network, on any device (the
            random cloud is made on its parameters' device, seeded, so
            repeated calls count the same).
        num_points (int): points of the cloud (uniform in the unit cube,
            with random features when ``model.in_channels > 0``).

    Returns:
        ``dict(params=int, flops=int, macs=int)``: the number of parameters,
        the FLOPs of one forward pass and its multiply-adds (``flops // 2``,
        the unit of the papers' "FLOPs" columns); for a unit, subtract the
        baseline's (the papers' "+Params", "+FLOPs").

    Raises:
        RuntimeError: a negative ``num_points`` (from torch); any error of
            the model's forward pass propagates.
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(0)
    dev = next(model.parameters()).device
    pos = torch.rand(num_points, 3, generator=g).to(dev)
    x = (torch.rand(num_points, model.in_channels, generator=g).to(dev)
         if model.in_channels else None)
    with eval_mode(model), torch.no_grad(), \
            FlopCounterMode(display=False) as counter:
        model(pos, x)
    flops = counter.get_total_flops()
    return dict(params=params, flops=flops, macs=flops // 2)

r"""The frog tissue scan shipped inside pyvista's wheel, as a labelled point
cloud.

Source: :func:`pyvista.examples.load_frog_tissues` (pyvista >= 0.44), the
tissue segmentation of the Lawrence Berkeley Laboratory *Whole Frog* data set
as distributed with VTK (``frogtissue.mhd``): a 500 x 470 x 136 label image,
spacing 1 x 1 x 1.5, labels 0..29, read from the installed package (no
download).

**Labels.** The image names 15 tissues, labels 1..15 (the tissue map of the
VTK examples ``FrogReconstruction`` / ``FroggieSurface``): blood, brain,
duodenum, eye_retina, eye_white, heart, ileum, kidney, l_intestine, liver,
lung, nerve, skeleton, spleen, stomach. Label 0 is background; labels 16..29
are unnamed specks (777 voxels of 1.15 million labelled ones). The cloud
keeps the 15 named tissues as classes 0..14 (``label - 1``) and drops the
rest, so every point is labelled and :obj:`ignore_index` is :obj:`None`.

**Points.** The label image is first subsampled by taking every
:obj:`stride`-th voxel along each axis (nearest neighbour, deterministic);
with ``surface=True`` (the default) a point is a tissue voxel with at least
one of its 6 neighbours of another label (background included): the
boundaries of the organs, like a scanned surface, where local shape carries
information; ``surface=False`` keeps every tissue voxel (a regular grid,
where only position does). Positions are voxel index x spacing x stride, in
the image's units. With the defaults (stride 2, surfaces) the cloud has
81,160 points.

**Splits.** The frog lies with its left-right axis along y and is close to
mirror-symmetric about the sagittal plane :math:`y = 233` (the mean y of the
eye voxels). ``train`` is the half :math:`y < 233 - \text{gap}/2`, ``test``
the half :math:`y > 233 + \text{gap}/2`: spatially disjoint, both holding
the paired organs (eyes, lungs, kidneys...). Some unpaired organs fall mostly
or wholly on one side (the spleen is on the train side only). The test half
is a mirror image of the training half: ``mirror=True`` reflects each test
column about its centre line (y -> -y in the column's frame), so that it
has the handedness of the training half; ``flip=True`` instead reflects
half the training columns (a draw of the column's own generator), the
augmentation for a model meant to serve both sides.

**Features** (``location=True``, the default). Tissue depends on *where*
in the body a surface lies as much as on its shape, and a column centred in
x and y has lost where it was. Each point therefore carries :obj:`x`
[num_points, 3]: its place in the whole frog, in a frame in which a point
and its mirror image coincide: x and z scaled to [0, 1] over the whole
cloud, and the distance from the midline plane, :math:`|y - 233|`, scaled
by its largest value (like the normalised room coordinates that PointNet
adds to S3DIS points). To these three, :obj:`frequencies` :math:`F` adds
:math:`\sin(2^k \pi u)` and :math:`\cos(2^k \pi u)` of each of them,
:math:`k < F` (a Fourier-feature encoding, NeRF's positional encoding):
the networks' small MLPs draw the sharp boundaries between organs from
these, and hardly from the three raw numbers, so :obj:`x` has
:math:`3 + 6F` channels. With ``location=False`` :obj:`x` is :obj:`None`.

**Samples.** Like the ScanNet columns: a random point of the split is the
centre of a :obj:`block_size` column over the full height (z), grown by
:obj:`margin`; :obj:`num_points` points are drawn from it, without
replacement when it holds enough, else with replacement. With
``whole_scene=True`` item :obj:`i` is instead column :obj:`i` of a tiling of
the split (:func:`~glore_pyg.apps.segmentation.datasets.scannet.tile_columns`), with
all its points, :obj:`inner` and :obj:`point_idx`, so that an evaluation
covers every point of the split exactly once.

**Randomness.** Random column :obj:`idx` (its centre and its points) is
drawn from ``numpy.random.default_rng(numpy.random.SeedSequence([seed,
epoch, idx]))``, as in
:class:`~glore_pyg.apps.segmentation.datasets.ScanNetPickle`: the same
(:obj:`seed`, :obj:`epoch`, :obj:`idx`) gives the same column in any
process, DataLoader worker or order and after pickling, and
:meth:`FrogTissues.set_epoch` (0 until called) draws another set of columns
for another epoch. A split that is never given an epoch, such as a
validation split, holds the same columns throughout. Whole-scene tiles hold
no randomness.

pyvista is an optional dependency (``pip install "glore-pyg[data]"``); it is
imported only when the cloud is first built, and the cloud is cached per
process (:func:`load_frog_point_cloud`, about 0.5 s the first time).
"""
from __future__ import annotations

import functools
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from ....functional.checks import check_float, check_int
from .scannet import _item_rng, scannet_class_weights, tile_columns

__all__ = ['FROG_CLASS_NAMES', 'load_frog_point_cloud', 'FrogTissues']

#: Tissues 1..15 of the frog label image, as classes 0..14.
FROG_CLASS_NAMES: List[str] = [
    'blood', 'brain', 'duodenum', 'eye_retina', 'eye_white', 'heart', 'ileum',
    'kidney', 'l_intestine', 'liver', 'lung', 'nerve', 'skeleton', 'spleen',
    'stomach'
]
#: The sagittal plane used to split the frog (image y units).
FROG_MIDLINE_Y = 233.0
_AXIS = 1  # y, the left-right axis


def _import_pyvista():
    try:
        import pyvista
        from pyvista import examples
    except ImportError as e:
        raise ImportError(
            'FrogTissues needs pyvista (>= 0.44, which ships the frog tissue '
            'scan): pip install "glore-pyg[data]"') from e
    if not hasattr(examples, 'load_frog_tissues'):
        raise ImportError(
            f'pyvista {pyvista.__version__} has no '
            f'examples.load_frog_tissues (added in 0.44): pip install '
            f'"glore-pyg[data]"')
    return examples


@functools.lru_cache(maxsize=4)
def _cloud(stride: int, surface: bool) -> Tuple[np.ndarray, np.ndarray]:
    image = _import_pyvista().load_frog_tissues()
    spacing = np.asarray(image.spacing, dtype=np.float64)
    origin = np.asarray(image.origin, dtype=np.float64)
    # point data is x-fastest: [nx*ny*nz] -> [nz, ny, nx]
    labels = np.asarray(image.point_data.active_scalars).reshape(
        tuple(image.dimensions)[::-1])
    labels = np.where(labels <= len(FROG_CLASS_NAMES), labels, 0)
    labels = labels[::stride, ::stride, ::stride]
    keep = labels > 0
    if surface:
        padded = np.pad(labels, 1)
        boundary = np.zeros_like(keep)
        for axis in range(3):
            for shift in (-1, 1):
                boundary |= (np.roll(padded, shift, axis=axis)[1:-1, 1:-1,
                                                               1:-1] != labels)
        keep &= boundary
    zyx = np.stack(np.nonzero(keep), axis=1)
    pos = (origin + zyx[:, ::-1] * spacing * stride).astype(np.float32)
    y = labels[keep].astype(np.int64) - 1
    pos.flags.writeable = False
    y.flags.writeable = False
    return pos, y


def load_frog_point_cloud(stride: int = 2, surface: bool = True
                          ) -> Tuple[np.ndarray, np.ndarray]:
    r"""The whole frog as a labelled point cloud (cached per process).

    Args:
        stride (int, optional): Keep every :obj:`stride`-th voxel along each
            axis. (default: :obj:`2`)
        surface (bool, optional): Keep only the voxels on a tissue boundary
            (else every tissue voxel). (default: :obj:`True`)

    Returns:
        (pos, y): read-only arrays, positions [N, 3] float32 in image units
        and classes [N] int64 in :math:`[0, 15)` (:obj:`FROG_CLASS_NAMES`).

    Raises:
        ImportError: If pyvista (>= 0.44) is not installed.
        ValueError: If :obj:`stride` is not positive.
        TypeError: If :obj:`stride` is not an int.
    """
    stride = check_int(stride, 'stride', minimum=1)
    return _cloud(stride, bool(surface))


class FrogTissues(Dataset):
    r"""Segmentation of the 15 tissues of a frog from a point cloud of its
    organ boundaries (see :mod:`glore_pyg.apps.segmentation.datasets.frog` for the
    conversion, the labels and the left/right split).

    Args:
        split (str, optional): :obj:`'train'` (the half :math:`y < 233`) or
            :obj:`'test'` (the half :math:`y > 233`).
            (default: :obj:`'train'`)
        num_points (int, optional): Points per column. Unused with
            :obj:`whole_scene`. (default: :obj:`4096`)
        num_samples (int, optional): Random columns per epoch.
            Unused with :obj:`whole_scene`. (default: :obj:`100`)
        whole_scene (bool, optional): If :obj:`True`, item :obj:`i` is column
            :obj:`i` of a tiling of the split, with all its points.
            (default: :obj:`False`)
        block_size (float, optional): Column side in image units (the frog
            spans about 450 x 460 x 200; a column of the training half
            holds about 28,000 points at the median).
            (default: :obj:`256.0`)
        margin (float, optional): Context margin around a column.
            (default: :obj:`0.0`)
        gap (float, optional): Width of the slab about the midline that
            belongs to neither split. (default: :obj:`8.0`)
        stride (int, optional): Voxel subsampling (see
            :func:`load_frog_point_cloud`). (default: :obj:`2`)
        surface (bool, optional): Boundary voxels only.
            (default: :obj:`True`)
        center_xy (bool, optional): Subtract the column centre from x and y;
            z keeps its absolute (dorsal-ventral) position.
            (default: :obj:`True`)
        location (bool, optional): Give each point its place in the whole
            frog as :obj:`x` (see the module docstring).
            (default: :obj:`True`)
        frequencies (int, optional): Sine and cosine frequencies per
            coordinate of the location features (0: the three scaled
            coordinates alone). (default: :obj:`4`, 27 channels)
        flip (bool, optional): Reflect each random column about its centre
            line (y) with probability 1/2, drawn from the column's
            generator. (default: :obj:`False`)
        mirror (bool, optional): Reflect every column about its centre
            line (y): the test half in the training half's handedness.
            With :obj:`flip`, the columns that the draw would flip are the
            ones kept. (default: :obj:`False`)
        weighted (bool, optional): Set :attr:`class_weights` to
            PointNet++'s :math:`1 / \ln(1.2 + f_c)`, :math:`f_c` the share
            of tissue :math:`c` in the *training* half (for either split).
            (default: :obj:`False`)
        seed (int, optional): Seed of the random columns: item :obj:`idx` of
            epoch :obj:`e` is drawn from :obj:`SeedSequence([seed, e, idx])`.
            (default: :obj:`0`)
        transform (callable, optional): Applied to each item on access.
            (default: :obj:`None`)

    Attributes:
        class_names (list[str]): :obj:`FROG_CLASS_NAMES` (15 names).
        num_classes (int): 15.
        ignore_index (None): Every point is labelled.
        class_weights (torch.Tensor or None): [15] float32 with
            :obj:`weighted`, else :obj:`None`.
        points (numpy.ndarray): The split's positions [N, 3].
        labels (numpy.ndarray): The split's classes [N].
        epoch (int): The epoch whose columns are drawn (0 until
            :meth:`set_epoch`).

    An item is a :class:`~torch_geometric.data.Data` with :obj:`pos`
    [num_points, 3] float32 (image units), :obj:`x` [num_points, 3 + 6F]
    float32 in [-1, 1] (:obj:`None` without :obj:`location`) and :obj:`y`
    [num_points] long; with :obj:`whole_scene` also :obj:`inner` (bool: the points the
    column owns) and :obj:`point_idx` (long: index into :obj:`points`).

    Raises:
        ImportError: If pyvista is missing (``pip install
            "glore-pyg[data]"``).
        ValueError: If :obj:`split` is unknown or a number is out of range.
        TypeError: If an argument has the wrong type.
    """

    class_names = FROG_CLASS_NAMES
    ignore_index = None

    def __init__(
        self,
        split: str = 'train',
        num_points: int = 4096,
        num_samples: int = 100,
        whole_scene: bool = False,
        block_size: float = 256.0,
        margin: float = 0.0,
        gap: float = 8.0,
        stride: int = 2,
        surface: bool = True,
        center_xy: bool = True,
        location: bool = True,
        flip: bool = False,
        mirror: bool = False,
        frequencies: int = 4,
        weighted: bool = False,
        seed: int = 0,
        transform: Optional[Callable] = None,
    ) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"'split' must be 'train' or 'test' (got "
                             f"{split!r})")
        self.split = split
        self.num_points = check_int(num_points, 'num_points', minimum=1)
        self.num_samples = check_int(num_samples, 'num_samples', minimum=1)
        self.block_size = check_float(block_size, 'block_size', low=0,
                                      low_open=True)
        self.margin = check_float(margin, 'margin', low=0)
        self.gap = check_float(gap, 'gap', low=0)
        self.seed = check_int(seed, 'seed', minimum=0)
        self.whole_scene = bool(whole_scene)
        self.center_xy = bool(center_xy)
        self.location, self.flip = bool(location), bool(flip)
        self.mirror = bool(mirror)
        self.frequencies = check_int(frequencies, 'frequencies', minimum=0)
        pos, y = load_frog_point_cloud(stride, surface)
        # the mirror-symmetric frame of the whole frog (both halves): x and z
        # scaled to [0, 1], y the distance from the midline scaled to [0, 1]
        offset = np.abs(pos[:, _AXIS] - FROG_MIDLINE_Y)
        low = pos.min(0)
        span = pos.max(0) - low
        low[_AXIS], span[_AXIS] = 0.0, offset.max()
        self._frame = (low.astype(np.float32), span.astype(np.float32))
        self.class_weights = (scannet_class_weights(
            [y[pos[:, _AXIS] < FROG_MIDLINE_Y - self.gap / 2]],
            len(FROG_CLASS_NAMES)) if weighted else None)

        side = pos[:, _AXIS] - FROG_MIDLINE_Y
        mask = (side < -self.gap / 2) if split == 'train' else (side >
                                                                self.gap / 2)
        self.points, self.labels = pos[mask], y[mask]
        self.epoch = 0
        self._tiles = (tile_columns(self.points, self.block_size, self.margin)
                       if self.whole_scene else None)
        super().__init__(None, transform)

    @property
    def num_classes(self) -> int:
        return len(FROG_CLASS_NAMES)

    def set_epoch(self, epoch: int) -> None:
        r"""Draws the random columns of epoch :obj:`epoch` from now on (see
        the module docstring); whole-scene tiles do not depend on it.

        Raises:
            TypeError: If :obj:`epoch` is not an int.
            ValueError: If :obj:`epoch` is negative.
        """
        self.epoch = check_int(epoch, 'epoch', minimum=0)

    def len(self) -> int:
        return len(self._tiles) if self.whole_scene else self.num_samples

    def cloud(self) -> Data:
        """The split's whole cloud: :obj:`pos` [N, 3] and :obj:`y` [N]."""
        return Data(pos=torch.from_numpy(self.points.copy()),
                    y=torch.from_numpy(self.labels.copy()))

    def _data(self, idx: np.ndarray, centre_xy: np.ndarray,
              mirror: bool = False) -> Data:
        pos = self.points[idx]
        x = None
        if self.location:
            low, span = self._frame
            x = (pos - low) / span
            x[:, _AXIS] = np.abs(pos[:, _AXIS] - FROG_MIDLINE_Y) / span[_AXIS]
            if self.frequencies:  # [N, 3, F] -> sin, cos: [N, 6F]
                angle = x[:, :, None] * (np.pi * 2.0 ** np.arange(
                    self.frequencies, dtype=np.float32))
                x = np.concatenate([x, np.sin(angle).reshape(len(x), -1),
                                    np.cos(angle).reshape(len(x), -1)], 1)
            x = torch.from_numpy(x.astype(np.float32))
        if self.center_xy:
            pos = pos - np.array([centre_xy[0], centre_xy[1], 0.0],
                                 dtype=np.float32)
        if mirror:  # about the column's centre line (x = const)
            pos = pos.copy()
            pos[:, _AXIS] = (0.0 if self.center_xy else 2 * centre_xy[_AXIS]
                             ) - pos[:, _AXIS]
        return Data(x=x, pos=torch.from_numpy(np.ascontiguousarray(pos)),
                    y=torch.from_numpy(self.labels[idx]))

    def get(self, idx: int) -> Data:
        if self.whole_scene:
            point_idx, inner, centre_xy = self._tiles[idx]
            data = self._data(point_idx, centre_xy)
            data.inner = torch.from_numpy(inner)
            data.point_idx = torch.from_numpy(point_idx)
            return data
        rng = _item_rng(self.seed, self.epoch, int(idx))
        centre = self.points[rng.integers(len(self.points)), :2]
        reach = self.block_size / 2 + self.margin
        candidates = np.flatnonzero(
            np.all(np.abs(self.points[:, :2] - centre) <= reach, axis=1))
        replace = len(candidates) < self.num_points
        choice = rng.choice(len(candidates), size=self.num_points,
                            replace=replace)
        mirror = self.flip and bool(rng.integers(2))
        mirror = mirror != self.mirror
        return self._data(candidates[choice], centre, mirror)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({len(self)}, split={self.split}, '
                f'num_points={self.num_points}, '
                f'whole_scene={self.whole_scene})')

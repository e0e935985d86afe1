r"""ScanNet in the PointNet++ pickle format, with PointNet++'s sampling
protocol.

Source: the data and protocol of `"PointNet++: Deep Hierarchical Feature
Learning on Point Sets in a Metric Space" <https://arxiv.org/abs/1706.02413>`_
(``scannet/scannet_dataset.py`` and ``scannet/train.py`` of
`charlesq34/pointnet2 <https://github.com/charlesq34/pointnet2>`_, whose
preprocessed ``scannet_data_pointnet2.zip`` holds the two files read here).

**File format.** ``scannet_train.pickle`` and ``scannet_test.pickle`` (1201
and 312 scenes in the release) each hold two objects pickled one after the
other by Python 2: a list of per-scene float arrays ``[N, 3]`` (xyz in
metres) and a list of per-scene label arrays ``[N]`` with values 0..20
(:obj:`SCANNET_CLASS_NAMES`; 0 = unannotated). They are read with
``pickle.load(f, encoding='latin1')`` twice. Unpickling runs code chosen by
whoever wrote the file: load only files from a source you trust.

**Training samples** (:class:`ScanNetPickle` with ``whole_scene=False``),
as in PointNet++'s ``ScannetDataset``: a random point of the scene is the
centre of a :obj:`block_size` x :obj:`block_size` (1.5 m) column over the
full height of the scene; the candidates are the points of the column grown
by :obj:`margin` (0.2 m) on every side. The column is accepted when at least
70% of its candidates are annotated (label > 0) and at least 2% of a
31 x 31 x 62 voxel grid over the inner column is occupied; after 10 refused
tries the last column is used anyway. :obj:`num_points` points are then drawn
*with replacement* from the candidates. Each point carries the weight
:obj:`class_weights[label]` if it lies in the inner column (0.01 m tolerance)
and 0 if it lies in the margin: the margin is context, not supervised.

**Class weights.** Over the training labels, with :math:`f_c` the fraction of
points of class :math:`c \in \{0..20\}`: :math:`w_c = 1 / \ln(1.2 + f_c)`.
Class 0 (unannotated) gets its weight by the same formula, like every other
class, and PointNet++ trains on it (its loss is the weighted cross entropy
over all 21 classes); its evaluation ignores label 0, which is why
:obj:`ignore_index` is 0. Pass ``ignore_index=0`` to the loss as well to keep
unannotated points out of training. As in PointNet++, the test split's
weights are all ones.

**Coordinates.** PointNet++ returns the column in the scene's coordinates
(its ``train.py`` only rotates batches about the z axis); here
``center_xy=True`` (the default) subtracts the column centre in x and y, and
``center_xy=False`` reproduces the reference.

**Whole-scene evaluation** (``whole_scene=True``). PointNet++'s
``ScannetDatasetWholeScene`` tiles a scene into 1.5 m cells, samples each
cell to :obj:`num_points` *with replacement* and drops nearly empty cells, so
some points are predicted twice and some never. Here every point of the
scene is *owned* by exactly one cell (cells are half-open, the last row and
column closed), every cell with an owned point is returned with all the
points of the cell grown by :obj:`margin` (context), and each cell carries
``point_idx`` (indices into the scene) and ``inner`` (the points it owns):
``pred[cell.point_idx[cell.inner]] = cell_pred[cell.inner]`` over the cells
fills a prediction for every point exactly once.

**Randomness.** Every random draw of a training item (the column centre,
its retries, the resampled points) comes from a generator of its own,
``numpy.random.default_rng(numpy.random.SeedSequence([seed, epoch, idx]))``:
an item is a pure function of (:obj:`seed`, :obj:`epoch`, :obj:`idx`), the
same in any process, :class:`~torch.utils.data.DataLoader` worker or access
order and after pickling, so a resumed run draws what an uninterrupted one
would. Reading item :obj:`idx` twice in one epoch gives the same column;
:meth:`ScanNetPickle.set_epoch` moves to another epoch (0 until called), as a
sampler's ``set_epoch`` does before each epoch. Workers hold copies of the
data set made when they start: with ``persistent_workers=True`` they keep
the epoch they started with. Whole-scene items hold no randomness.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch_geometric.data import Batch, Data, Dataset

from ....functional.checks import check_float, check_int

__all__ = [
    'SCANNET_CLASS_NAMES',
    'scannet_class_weights',
    'sample_scannet_column',
    'tile_columns',
    'ScanNetPickle',
]

#: The 21 labels of the PointNet++ pickles, in their order (``g_label_names``
#: of ``scannet/preprocessing/scannet_util.py`` in charlesq34/pointnet2).
SCANNET_CLASS_NAMES: List[str] = [
    'unannotated', 'wall', 'floor', 'chair', 'table', 'desk', 'bed',
    'bookshelf', 'sofa', 'sink', 'bathtub', 'toilet', 'curtain', 'counter',
    'door', 'window', 'shower curtain', 'refrigerator', 'picture', 'cabinet',
    'otherfurniture'
]
NUM_SCANNET_CLASSES = 21

_FORMAT = ("two objects pickled one after the other (protocol 2, as "
           "PointNet++'s scannet_data_pointnet2.zip): a list of per-scene "
           "float arrays [N, 3] (xyz) and a list of per-scene label arrays "
           "[N] with values 0..20")
# PointNet++'s acceptance thresholds of a training column
_MIN_ANNOTATED = 0.7
_MIN_OCCUPANCY = 0.02
_VOXELS = (31.0, 31.0, 62.0)
_TRIES = 10
_INNER_TOLERANCE = 0.01


def _item_rng(seed: int, epoch: int, idx: int) -> np.random.Generator:
    """The generator of item :obj:`idx` of :obj:`epoch` (see the module
    docstring): a pure function of its key."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, idx]))


def scannet_class_weights(labels: Sequence[np.ndarray],
                          num_classes: int = NUM_SCANNET_CLASSES
                          ) -> torch.Tensor:
    r"""PointNet++'s class weights :math:`w_c = 1 / \ln(1.2 + f_c)`, with
    :math:`f_c` the fraction of all points of all scenes labelled :math:`c`
    (class 0 included).

    Args:
        labels ([numpy.ndarray]): Per-scene integer labels in
            :math:`[0, \text{num_classes})`.
        num_classes (int, optional): Number of classes. (default: :obj:`21`)

    Returns:
        :class:`torch.Tensor` [num_classes], float32. A class without points
        gets :math:`1 / \ln 1.2 \approx 5.48`, the largest weight.  Labels
        :math:`\geq` :obj:`num_classes` are not counted.

    Raises:
        ValueError: a negative label (from :func:`numpy.bincount`).
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    for seg in labels:
        counts += np.bincount(np.asarray(seg, dtype=np.int64),
                              minlength=num_classes)[:num_classes]
    freq = counts / max(counts.sum(), 1.0)
    return torch.from_numpy(1.0 / np.log(1.2 + freq)).float()


def sample_scannet_column(
    points: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    block_size: float = 1.5,
    margin: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    r"""Draws one training column of a scene by PointNet++'s rule (see the
    module docstring), before the points are resampled.

    Args:
        points (numpy.ndarray): Scene xyz [N, 3].
        labels (numpy.ndarray): Scene labels [N] (0 = unannotated).
        rng (numpy.random.Generator): Source of the random centres.
        block_size (float, optional): Side of the column in metres.
            (default: :obj:`1.5`)
        margin (float, optional): Context margin around the column in
            metres. (default: :obj:`0.2`)

    Returns:
        (candidates, inner, centre, accepted): indices [M] of the points of
        the grown column, a bool mask [M] of those inside the column proper
        (0.01 m tolerance), the column centre [3] (z of the chosen point) and
        whether the column passed the annotation and occupancy tests
        (:obj:`False` when all 10 tries failed and the last one is returned).

    Raises:
        ValueError: an empty scene (from numpy).
    """
    coordmin, coordmax = points.min(axis=0), points.max(axis=0)
    half = np.array([block_size / 2, block_size / 2, 0.0])
    # The voxel grid divides by the column's extent; a flat scene has none
    # in z.
    extent = np.maximum(
        np.array([block_size, block_size, coordmax[2] - coordmin[2]]), 1e-6)
    for _ in range(_TRIES):
        centre = points[rng.integers(len(points))]
        curmin, curmax = centre - half, centre + half
        curmin[2], curmax[2] = coordmin[2], coordmax[2]
        candidates = np.flatnonzero(
            np.all((points >= curmin - margin) & (points <= curmax + margin),
                   axis=1))
        cand_points = points[candidates]
        inner = np.all((cand_points >= curmin - _INNER_TOLERANCE)
                       & (cand_points <= curmax + _INNER_TOLERANCE), axis=1)
        # PointNet++'s ceil() maps the lower faces to voxel 0, so the grid has
        # 32 x 32 x 63 cells although the ratio divides by 31 x 31 x 62; kept
        # as in the reference so that acceptance matches it.
        vidx = np.ceil((cand_points[inner] - curmin) / extent * _VOXELS)
        occupied = len(np.unique(vidx[:, 0] * 31.0 * 62.0 + vidx[:, 1] * 62.0
                                 + vidx[:, 2]))
        annotated = float(np.mean(labels[candidates] > 0))
        accepted = (annotated >= _MIN_ANNOTATED and
                    occupied / float(np.prod(_VOXELS)) >= _MIN_OCCUPANCY)
        if accepted:
            break
    return candidates, inner, centre, accepted


def tile_columns(
    points: np.ndarray,
    block_size: float = 1.5,
    margin: float = 0.2,
) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    r"""Tiles a point set into :obj:`block_size` columns over its x/y extent,
    each point owned by exactly one column.

    Column :math:`(i, j)` owns the points with
    :math:`\lfloor (p_x - x_{min}) / b \rfloor = i` and likewise for
    :math:`j` (points on the far edge go to the last column); it is returned
    with every point of the column grown by :obj:`margin` on the four sides.

    Args:
        points (numpy.ndarray): xyz [N, 3].
        block_size (float, optional): Column side. (default: :obj:`1.5`)
        margin (float, optional): Context margin. (default: :obj:`0.2`)

    Returns:
        A list, in row-major order of the columns that own a point, of
        (point indices [M], inner mask [M], column centre [2] in x/y): the
        inner masks of all columns together select every point exactly once.

    Raises:
        ValueError: an empty point set (from numpy).  :obj:`block_size` is
            not checked here and must be positive.
    """
    xy = points[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    num = np.maximum(np.ceil((hi - lo) / block_size).astype(np.int64), 1)
    cell = np.minimum(np.floor((xy - lo) / block_size).astype(np.int64),
                      num - 1)
    owner = cell[:, 0] * num[1] + cell[:, 1]
    tiles = []
    for key in np.unique(owner):
        i, j = divmod(int(key), int(num[1]))
        cmin = lo + np.array([i, j]) * block_size
        cmax = cmin + block_size
        # ``| owned``: rounding may put an owned point a hair outside its
        # own cell's box; it must still be in the column that owns it.
        idx = np.flatnonzero(
            np.all((xy >= cmin - margin) & (xy <= cmax + margin), axis=1)
            | (owner == key))
        tiles.append((idx, owner[idx] == key, cmin + block_size / 2))
    return tiles


def _load_pickle(path: str) -> Tuple[list, list]:
    with open(path, 'rb') as f:
        objects = []
        for _ in range(2):
            try:
                objects.append(pickle.load(f, encoding='latin1'))
            except EOFError:
                raise ValueError(
                    f"'{path}' holds {len(objects)} pickled object(s); "
                    f"expected {_FORMAT}") from None
            except (pickle.UnpicklingError, AttributeError, ImportError,
                    IndexError, TypeError) as e:
                raise ValueError(f"'{path}' is not a readable pickle ({e}); "
                                 f"expected {_FORMAT}") from e
        if f.read(1):
            raise ValueError(f"'{path}' holds more than two pickled objects; "
                             f"expected {_FORMAT}")
    points, labels = objects
    for name, obj in (('points', points), ('labels', labels)):
        if not isinstance(obj, (list, tuple)):
            raise ValueError(f"'{path}': the {name} object is a "
                             f"{type(obj).__name__}, expected a list of "
                             f"per-scene arrays")
    if len(points) != len(labels):
        raise ValueError(f"'{path}' holds {len(points)} point arrays but "
                         f"{len(labels)} label arrays")
    if len(points) == 0:
        raise ValueError(f"'{path}' holds no scene")
    out_points, out_labels = [], []
    for i, (p, y) in enumerate(zip(points, labels)):
        p, y = np.asarray(p), np.asarray(y)
        if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] == 0:
            raise ValueError(f"'{path}' scene {i}: points have shape "
                             f"{p.shape}, expected [N, 3] with N > 0")
        if not np.issubdtype(p.dtype, np.number) or not np.all(
                np.isfinite(p)):
            raise ValueError(f"'{path}' scene {i}: points must be finite "
                             f"numbers")
        if y.shape != (p.shape[0], ):
            raise ValueError(f"'{path}' scene {i}: labels have shape "
                             f"{y.shape}, expected [{p.shape[0]}] (one per "
                             f"point)")
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"'{path}' scene {i}: labels have dtype "
                             f"{y.dtype}, expected numbers")
        y_int = y.astype(np.int64)
        if np.any(y_int != y) or y_int.min() < 0 or (y_int.max() >=
                                                     NUM_SCANNET_CLASSES):
            bad = y[(y_int != y) | (y_int < 0) |
                    (y_int >= NUM_SCANNET_CLASSES)][0].item()
            raise ValueError(f"'{path}' scene {i}: label {bad!r} is not an "
                             f"integer in 0..{NUM_SCANNET_CLASSES - 1}")
        out_points.append(np.ascontiguousarray(p, dtype=np.float32))
        out_labels.append(y_int)
    return out_points, out_labels


class ScanNetPickle(Dataset):
    r"""ScanNet as preprocessed by PointNet++ (``scannet_{split}.pickle``),
    served by PointNet++'s protocol: random 1.5 m columns for training,
    tiled whole scenes for evaluation (see
    :mod:`glore_pyg.apps.segmentation.datasets.scannet` for the protocol and where
    it departs from the reference code).

    Args:
        root (str): Directory holding ``scannet_train.pickle`` /
            ``scannet_test.pickle``.
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        num_points (int, optional): Points drawn (with replacement) per
            training column. Unused with :obj:`whole_scene`.
            (default: :obj:`8192`)
        whole_scene (bool, optional): If :obj:`True`, item :obj:`i` is the
            tiling of scene :obj:`i` into columns (a
            :class:`~torch_geometric.data.Batch`, one graph per column, all
            points). (default: :obj:`False`)
        block_size (float, optional): Column side in metres.
            (default: :obj:`1.5`)
        margin (float, optional): Context margin around a column in metres.
            (default: :obj:`0.2`)
        center_xy (bool, optional): Subtract the column centre from x and y
            (PointNet++ does not). (default: :obj:`True`)
        seed (int, optional): Seed of the training columns: item :obj:`idx`
            of epoch :obj:`e` is drawn from
            :obj:`SeedSequence([seed, e, idx])`. (default: :obj:`0`)
        transform (callable, optional): Applied to each sample on access;
            with :obj:`whole_scene`, to each column before batching.
            (default: :obj:`None`)

    Attributes:
        class_names (list[str]): :obj:`SCANNET_CLASS_NAMES` (21 names).
        num_classes (int): 21.
        ignore_index (int): 0, the unannotated label, which PointNet++'s
            evaluation leaves out.
        class_weights (torch.Tensor): [21] :math:`1 / \ln(1.2 + f_c)` over
            this split's labels for :obj:`'train'`, ones for :obj:`'test'`
            (as in PointNet++).
        scene_points (list[numpy.ndarray]): Per-scene xyz [N, 3] float32.
        scene_labels (list[numpy.ndarray]): Per-scene labels [N] int64.
        epoch (int): The epoch whose columns are drawn (0 until
            :meth:`set_epoch`).

    A training item is a :class:`~torch_geometric.data.Data` with :obj:`pos`
    [num_points, 3] (float32), :obj:`x` :obj:`None`, :obj:`y` [num_points]
    (long) and :obj:`weight` [num_points] (float32: the class weight inside
    the column, 0 in the margin). A whole-scene item is a
    :class:`~torch_geometric.data.Batch` of columns with :obj:`pos`,
    :obj:`y`, :obj:`weight`, :obj:`inner` (bool: the points the column owns)
    and :obj:`point_idx` (long: index of each point in the scene).

    Raises:
        FileNotFoundError: If the split's pickle is missing.
        ValueError: If the pickle is malformed (number of objects, lengths,
            shapes, labels outside 0..20; the message names the scene) or an
            argument is out of range.
        TypeError: If an argument has the wrong type.
    """

    class_names = SCANNET_CLASS_NAMES
    ignore_index = 0

    def __init__(
        self,
        root: Union[str, os.PathLike],
        split: str = 'train',
        num_points: int = 8192,
        whole_scene: bool = False,
        block_size: float = 1.5,
        margin: float = 0.2,
        center_xy: bool = True,
        seed: int = 0,
        transform: Optional[Callable] = None,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"'root' must be a path (got "
                            f"{type(root).__name__})")
        if split not in ('train', 'test'):
            raise ValueError(f"'split' must be 'train' or 'test' (got "
                             f"{split!r})")
        self.num_points = check_int(num_points, 'num_points', minimum=1)
        self.block_size = check_float(block_size, 'block_size', low=0,
                                      low_open=True)
        self.margin = check_float(margin, 'margin', low=0)
        self.seed = check_int(seed, 'seed', minimum=0)
        self.whole_scene = bool(whole_scene)
        self.center_xy = bool(center_xy)
        self.split = split
        root = os.fspath(root)
        path = osp.join(root, f'scannet_{split}.pickle')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f"ScanNet file '{path}' not found; expected {_FORMAT} (the "
                f"scannet_{split}.pickle of PointNet++'s "
                f"scannet_data_pointnet2.zip)")
        self.path = path
        self.scene_points, self.scene_labels = _load_pickle(path)
        self.class_weights = (scannet_class_weights(self.scene_labels)
                              if split == 'train' else
                              torch.ones(NUM_SCANNET_CLASSES))
        self.epoch = 0
        # With whole scenes the transform acts on each column, not on the
        # batch of columns, so PyG's __getitem__ must not see it.
        self.column_transform = transform if self.whole_scene else None
        super().__init__(root, None if self.whole_scene else transform)

    @property
    def num_classes(self) -> int:
        return NUM_SCANNET_CLASSES

    def set_epoch(self, epoch: int) -> None:
        r"""Draws the training columns of epoch :obj:`epoch` from now on
        (see the module docstring); whole scenes do not depend on it.

        Raises:
            TypeError: If :obj:`epoch` is not an int.
            ValueError: If :obj:`epoch` is negative.
        """
        self.epoch = check_int(epoch, 'epoch', minimum=0)

    def len(self) -> int:
        return len(self.scene_points)

    def scene(self, idx: int) -> Data:
        """Scene :obj:`idx` whole: :obj:`pos` [N, 3] and :obj:`y` [N], for
        mapping whole-scene predictions back."""
        return Data(pos=torch.from_numpy(self.scene_points[idx]),
                    y=torch.from_numpy(self.scene_labels[idx]))

    def _column(self, points: np.ndarray, labels: np.ndarray,
                idx: np.ndarray, inner: np.ndarray,
                centre_xy: np.ndarray) -> Data:
        pos = points[idx]
        if self.center_xy:
            pos = pos - np.array([centre_xy[0], centre_xy[1], 0.0],
                                 dtype=np.float32)
        y = torch.from_numpy(labels[idx])
        weight = self.class_weights[y] * torch.from_numpy(inner).float()
        return Data(pos=torch.from_numpy(pos.astype(np.float32, copy=False)),
                    y=y, weight=weight)

    def get(self, idx: int) -> Union[Data, Batch]:
        points, labels = self.scene_points[idx], self.scene_labels[idx]
        if not self.whole_scene:
            rng = _item_rng(self.seed, self.epoch, int(idx))
            candidates, inner, centre, _ = sample_scannet_column(
                points, labels, rng, self.block_size, self.margin)
            choice = rng.integers(len(candidates), size=self.num_points)
            return self._column(points, labels, candidates[choice],
                                inner[choice], centre[:2])

        columns = []
        for point_idx, inner, centre_xy in tile_columns(
                points, self.block_size, self.margin):
            data = self._column(points, labels, point_idx, inner, centre_xy)
            data.inner = torch.from_numpy(inner)
            data.point_idx = torch.from_numpy(point_idx)
            if self.column_transform is not None:
                data = self.column_transform(data)
            columns.append(data)
        return Batch.from_data_list(columns)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({len(self)}, split={self.split}, '
                f'whole_scene={self.whole_scene})')

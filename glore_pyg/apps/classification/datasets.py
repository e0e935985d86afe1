r"""Image-classification data sets for the vision models.

Two :class:`torch.utils.data.Dataset` classes whose items are
``(image, label)`` pairs: ``image`` a float32 tensor [C, H, W] with values in
:math:`[0, 1]`, ``label`` a scalar long tensor. Both expose ``num_classes``,
``in_channels``, ``image_size`` (H, W) and ``class_names``, so a model can be
built from the data set alone. Neither needs torchvision.

* :class:`DigitMosaics`: a task whose label is decided by the *relation*
  between two distant regions of the image (are the two handwritten digits
  the same?), built from the real scans shipped with scikit-learn; nothing is
  downloaded. A CNN with a small receptive field, global average pooling and
  a linear classifier cannot solve it (see the class for the argument); a
  global reasoning unit can.
* :class:`ImageFolder`: a user's own images in the usual
  ``root/<class>/<image>`` layout, decoded with Pillow.
"""
from __future__ import annotations

import functools
import numbers
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ...functional.checks import check_float, check_index, check_int

__all__ = ['DigitMosaics', 'ImageFolder']

_SPLITS = ('train', 'test')
_DEFAULT_SIZE = {'train': 8000, 'test': 2000}
_CELL = 8  # pixels per side of a cell: the size of one scan
_SCAN_MAX = 16  # scans hold integers 0..16
_NUM_DIGITS = 10

DEFAULT_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif',
                      '.tiff', '.webp')


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------
def _check_transform(transform: Any) -> Optional[Callable]:
    if transform is not None and not callable(transform):
        raise TypeError(f"'transform' must be callable or None (got "
                        f"{type(transform).__name__})")
    return transform


# ---------------------------------------------------------------------------
# DigitMosaics
# ---------------------------------------------------------------------------
def _load_digits() -> Tuple[Tensor, Tensor]:
    """The 1,797 scans of :func:`sklearn.datasets.load_digits` as a uint8
    tensor [1797, 8, 8] (values 0..16) and their classes (long [1797])."""
    try:
        from sklearn.datasets import load_digits  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "DigitMosaics needs scikit-learn, which ships the handwritten "
            "digit scans: pip install scikit-learn") from e
    return _load_digits_cached()


@functools.lru_cache(maxsize=1)
def _load_digits_cached() -> Tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images = np.asarray(bunch.images)
    scans = torch.from_numpy(np.rint(images).astype(np.uint8))
    targets = torch.from_numpy(np.asarray(bunch.target).astype(np.int64))
    return scans, targets


def _partition(targets: np.ndarray, test_fraction: float,
               seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified train / test partition of the scan indices; each pool gets
    at least two scans of every class (an "equal" pair needs two)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    train, test = [], []
    for c in range(_NUM_DIGITS):
        idx = np.flatnonzero(targets == c)
        perm = rng.permutation(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 2), len(idx) - 2)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _sample_cell_pairs(rng: np.random.Generator, n: int, grid: int,
                       min_distance: int) -> np.ndarray:
    """Draws :obj:`n` ordered pairs of cells, uniformly over all ordered
    pairs at Chebyshev distance :math:`\\geq` :obj:`min_distance`, in
    :math:`O(n + \\text{grid}^2)` time and memory. Returns long [n, 2, 2]
    (pair, which cell, (row, col))."""
    g, d = grid, min_distance
    lines = np.arange(g)
    near = np.abs(lines[:, None] - lines[None, :]) < d  # [g, g]
    near_count = near.sum(1)  # rows (or columns) within d - 1 of each
    far_count = g - near_count
    # near_lines[r, j]: the j-th line near r; far_lines[r, j]: the j-th far
    # line (padding never read)
    order = np.argsort(~near, axis=1, kind='stable')
    near_lines = order
    far_lines = np.argsort(near, axis=1, kind='stable')

    # partners of (r, c): cells whose row is far (far_count[r] * g of them)
    # or whose row is near and column far (near_count[r] * far_count[c])
    weight = g * g - near_count[:, None] * near_count[None, :]  # [g, g]
    weight = weight.reshape(-1).astype(np.float64)
    cdf = np.cumsum(weight)
    first = np.searchsorted(cdf, rng.random(n) * cdf[-1], side='right')
    first = np.minimum(first, g * g - 1)
    r, c = first // g, first % g
    k = rng.integers(0, weight[first].astype(np.int64))
    row_far = far_count[r] * g
    in_far_rows = k < row_far
    # case 1: a far row, any column
    k1 = np.where(in_far_rows, k, 0)
    r1 = far_lines[r, k1 // g]
    c1 = k1 % g
    # case 2: a near row, a far column
    k2 = np.where(in_far_rows, 0, k - row_far)
    fc = np.maximum(far_count[c], 1)
    r2 = near_lines[r, k2 // fc]
    c2 = far_lines[c, k2 % fc]
    second_r = np.where(in_far_rows, r1, r2)
    second_c = np.where(in_far_rows, c1, c2)
    return np.stack([np.stack([r, c], 1), np.stack([second_r, second_c], 1)],
                    1).astype(np.int64)


class DigitMosaics(Dataset):
    r"""Mosaics of two handwritten digits far apart: are they the same digit?

    Each image is a :obj:`grid` x :obj:`grid` mosaic of 8 x 8-pixel cells
    (32 x 32 pixels for the default :obj:`grid=4`), one channel. Exactly two
    cells hold a scan of a handwritten digit; every other pixel is 0. The
    label is :obj:`1` (:obj:`'equal'`) if both digits are of the same class
    and :obj:`0` (:obj:`'different'`) otherwise.

    **The scans** are the 1,797 8 x 8 images of the UCI *Optical Recognition
    of Handwritten Digits* data set as shipped by scikit-learn
    (:func:`sklearn.datasets.load_digits`, about 180 per class, integer
    values 0..16; nothing is downloaded). A cell holding scan :math:`s` holds
    :math:`s / 16`.

    **Sampling.** Each sample is *equal* with probability 1/2. An equal
    sample draws its class uniformly from 0..9 and two *different* scans of
    that class; a different sample draws its ordered pair of classes
    :math:`(a, b)` uniformly among the 90 pairs with :math:`a \neq b`. Scans
    are drawn uniformly from the split's pool of their class. The ordered pair
    of cells (the first holds digit :obj:`digits[i, 0]`) is uniform over all
    ordered pairs whose Chebyshev distance
    :math:`\max(|\Delta r|, |\Delta c|)` in cells is at least
    :obj:`min_distance`.

    **Why the label needs a relation between distant regions.** Two cells at
    Chebyshev distance :math:`d` have at least :math:`8(d - 1)` empty pixels
    between them along one axis: a square window narrower than
    :math:`8d - 6` pixels never touches both, and one narrower than
    :math:`8(d + 1)` never holds both whole digits. Take a CNN whose
    receptive field is that small (zero padding, which looks like the empty
    cells), followed by global average pooling and a linear classifier. Every
    feature vector depends on the empty background and on at most one of the
    two digits, so the pooled features, hence the logit, are a constant plus
    one term per digit: :math:`f = t + s(x) + s(y)` for scans :math:`x`
    and :math:`y` (up to the few positions whose window reaches the image
    border differently in different cells). No such additive score separates
    equal pairs from different ones: for scans :math:`x, x'` of class
    :math:`a` and :math:`y, y'` of class :math:`b \neq a`, it would need
    :math:`s(x) + s(x') > 0`, :math:`s(y) + s(y') > 0`, :math:`s(x) + s(y)
    < 0` and :math:`s(x') + s(y') < 0`, whose sums contradict each other.
    The model needs to compare the two regions *before* a linear read-out: a
    global reasoning unit (GloRe, LatentGNN) mixes features from every
    position through its latent nodes, so a nonlinearity can see both digits
    at once. (A nonlinear head on the pooled features of a wide enough CNN
    could also solve it, since the pooled vector can encode which digits are
    present; the task isolates what a *linear* read-out of local features
    cannot do.) The two digit classes are individually easy, which keeps the
    comparison about context and not about recognition.

    **Splits.** The 1,797 scans are partitioned once per class (stratified)
    by a generator seeded with :obj:`seed` into a train pool (a fraction
    :math:`1 -` :obj:`test_fraction` of each class) and a test pool (each
    pool holds at least two scans per class); :obj:`split='train'` draws
    only from the train pool and :obj:`split='test'` only from the test pool,
    so no scan appears in both. The partition depends on :obj:`seed` and
    :obj:`test_fraction` only. The samples of the two splits come from
    different generator streams (:obj:`SeedSequence([seed, 1])` and
    :obj:`SeedSequence([seed, 2])`), so the data set is deterministic for
    (:obj:`seed`, :obj:`split`, :obj:`size`, :obj:`grid`,
    :obj:`min_distance`, :obj:`test_fraction`).

    All images are generated at construction, vectorised (8,000 mosaics in a
    few tens of milliseconds once scikit-learn is imported), and kept as
    uint8 scan values in :obj:`images`.

    Args:
        split (str, optional): :obj:`'train'` or :obj:`'test'`.
            (default: :obj:`'train'`)
        size (int, optional): Number of mosaics. :obj:`None` means 8,000 for
            :obj:`'train'` and 2,000 for :obj:`'test'`. (default: :obj:`None`)
        grid (int, optional): Cells per side (at least 2); the image has
            :math:`8 \cdot` :obj:`grid` pixels per side. (default: :obj:`4`)
        min_distance (int, optional): Least Chebyshev distance in cells
            between the two digits, in :math:`[1, \text{grid} - 1]`.
            (default: :obj:`3`)
        test_fraction (float, optional): Fraction of each class's scans in
            the test pool, in :math:`(0, 1)`. (default: :obj:`0.3`)
        seed (int, optional): Non-negative seed of the partition and of the
            samples. (default: :obj:`0`)
        transform (callable, optional): Applied to each image tensor on
            access. (default: :obj:`None`)

    Attributes:
        num_classes (int): 2.
        in_channels (int): 1.
        class_names (tuple[str, str]): :obj:`('different', 'equal')`.
        image_size (tuple[int, int]): (H, W) = (8 grid, 8 grid).
        images (torch.Tensor): uint8 [size, 1, H, W], scan values 0..16 (the
            item is :obj:`images[i] / 16`).
        labels (torch.Tensor): long [size], 1 for equal, 0 for different.
        digits (torch.Tensor): long [size, 2], the classes of the two digits.
        cells (torch.Tensor): long [size, 2, 2], (row, col) of the cells of
            the two digits.
        sources (torch.Tensor): long [size, 2], the indices of the two scans
            into :func:`sklearn.datasets.load_digits`.
        source_indices (torch.Tensor): long, sorted indices into
            :func:`~sklearn.datasets.load_digits` of the split's pool.

    Shapes:
        - **item:** image :math:`(1, H, W)` float32 in :math:`[0, 1]` (or
          whatever :obj:`transform` returns), label :math:`()` long.

    Raises:
        ValueError: If :obj:`split` is unknown or a number is out of range
            (including a :obj:`min_distance` that no two cells of the grid
            reach).
        TypeError: If an integer argument is not an int (a bool is not) or
            :obj:`transform` is not callable.
        ImportError: If scikit-learn is not installed.

    Example::

        train = DigitMosaics('train')
        test = DigitMosaics('test')
        image, label = train[0]        # [1, 32, 32] float32, long scalar
        train.describe(0)              # digits, cells, scan indices
    """

    num_classes = 2
    in_channels = 1
    class_names = ('different', 'equal')

    def __init__(
        self,
        split: str = 'train',
        size: Optional[int] = None,
        grid: int = 4,
        min_distance: int = 3,
        test_fraction: float = 0.3,
        seed: int = 0,
        transform: Optional[Callable] = None,
    ) -> None:
        super().__init__()
        if not isinstance(split, str) or split not in _SPLITS:
            raise ValueError(f"'split' must be one of {list(_SPLITS)} "
                             f"(got {split!r})")
        if size is None:
            size = _DEFAULT_SIZE[split]
        self.size = check_int(size, 'size', minimum=1)
        self.grid = check_int(grid, 'grid', minimum=2)
        self.min_distance = check_int(min_distance, 'min_distance',
                                      minimum=1, maximum=self.grid - 1)
        self.test_fraction = check_float(test_fraction, 'test_fraction', 0, 1,
                                         low_open=True, high_open=True)
        self.seed = check_int(seed, 'seed', minimum=0)
        self.transform = _check_transform(transform)
        self.split = split
        side = _CELL * self.grid
        self.image_size = (side, side)

        scans, targets = _load_digits()
        train_pool, test_pool = _partition(targets.numpy(),
                                           self.test_fraction, self.seed)
        pool = train_pool if split == 'train' else test_pool
        self.source_indices = torch.from_numpy(pool.astype(np.int64))
        self._generate(scans, targets.numpy(), pool)

    def _generate(self, scans: Tensor, targets: np.ndarray,
                  pool: np.ndarray) -> None:
        n, g = self.size, self.grid
        rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, 1 + _SPLITS.index(self.split)]))

        # the pool grouped by class: class c is by_class[offset[c]:...+count]
        pool_targets = targets[pool]
        by_class = pool[np.argsort(pool_targets, kind='stable')]
        count = np.bincount(pool_targets, minlength=_NUM_DIGITS)
        offset = np.concatenate([[0], np.cumsum(count)[:-1]])

        equal = rng.random(n) < 0.5
        a = rng.integers(0, _NUM_DIGITS, n)
        b = np.where(equal, a, (a + rng.integers(1, _NUM_DIGITS, n))
                     % _NUM_DIGITS)
        i0 = rng.integers(0, count[a])
        # an equal pair draws its second scan among the other count - 1
        i1 = rng.integers(0, count[b] - equal)
        i1 = i1 + (equal & (i1 >= i0))
        sources = np.stack([by_class[offset[a] + i0],
                            by_class[offset[b] + i1]], 1)
        cells = _sample_cell_pairs(rng, n, g, self.min_distance)

        self.labels = torch.from_numpy(equal.astype(np.int64))
        self.digits = torch.from_numpy(np.stack([a, b], 1).astype(np.int64))
        self.sources = torch.from_numpy(sources.astype(np.int64))
        self.cells = torch.from_numpy(cells)

        flat = self.cells[..., 0] * g + self.cells[..., 1]  # [n, 2]
        canvas = torch.zeros(n, g * g, _CELL, _CELL, dtype=torch.uint8)
        rows = torch.arange(n)
        canvas[rows, flat[:, 0]] = scans[self.sources[:, 0]]
        canvas[rows, flat[:, 1]] = scans[self.sources[:, 1]]
        self.images = (canvas.view(n, g, g, _CELL, _CELL)
                       .permute(0, 1, 3, 2, 4)
                       .reshape(n, 1, g * _CELL, g * _CELL))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Tuple[Any, Tensor]:
        i = check_index(index, self.size)
        image = self.images[i].float() / _SCAN_MAX
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i].clone()

    def tensors(self) -> Tuple[Tensor, Tensor]:
        r"""All images and labels at once, for a training loop that batches
        by slicing: float32 [size, 1, H, W] in :math:`[0, 1]` and long
        [size]. :obj:`transform` is not applied."""
        return self.images.float() / _SCAN_MAX, self.labels.clone()

    def describe(self, index: int) -> Dict[str, Any]:
        r"""What sample :obj:`index` holds, as plain Python values.

        Returns:
            dict: :obj:`label` (int), :obj:`class_name` (str),
            :obj:`digits` (two ints), :obj:`cells` (two (row, col) tuples),
            :obj:`sources` (two indices into
            :func:`sklearn.datasets.load_digits`) and :obj:`distance` (the
            Chebyshev distance of the cells).

        Raises:
            IndexError: If :obj:`index` is out of range.
        """
        i = check_index(index, self.size)
        cells = [tuple(int(v) for v in cell) for cell in self.cells[i]]
        label = int(self.labels[i])
        return {
            'label': label,
            'class_name': self.class_names[label],
            'digits': tuple(int(v) for v in self.digits[i]),
            'cells': tuple(cells),
            'sources': tuple(int(v) for v in self.sources[i]),
            'distance': max(abs(cells[0][0] - cells[1][0]),
                            abs(cells[0][1] - cells[1][1])),
        }

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(split={self.split!r}, '
                f'size={self.size}, grid={self.grid}, '
                f'min_distance={self.min_distance})')


# ---------------------------------------------------------------------------
# ImageFolder
# ---------------------------------------------------------------------------
def _import_pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("ImageFolder needs Pillow to decode images: "
                          "pip install pillow") from e
    return Image


def _check_size(size: Any) -> Tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = check_int(size, 'size', minimum=1)
        return size, size
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"'size' must be an int or a pair (H, W) of ints, "
                        f"got {type(size).__name__} {size!r}")
    if len(size) != 2:
        raise ValueError(f"'size' must be an int or a pair (H, W) of ints, "
                         f"got {len(size)} values {size!r}")
    h, w = (check_int(v, f'size[{i}]', minimum=1) for i, v in enumerate(size))
    return h, w


def _check_extensions(extensions: Any) -> Tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions, )
    try:
        exts = tuple(extensions)
    except TypeError:
        raise TypeError("'extensions' must be a sequence of str") from None
    if not exts or not all(isinstance(e, str) and e.strip('.')
                           for e in exts):
        raise ValueError(f"'extensions' must be a non-empty sequence of "
                         f"file endings such as '.png' (got {extensions!r})")
    return tuple(e.lower() if e.startswith('.') else '.' + e.lower()
                 for e in exts)


class ImageFolder(Dataset):
    r"""Images in the usual ``root/<class>/<image>`` layout, decoded with
    Pillow, resized and returned as tensors.

    The classes are the sorted names of the sub-folders of :obj:`root` that
    contain at least one image, searched recursively (so
    ``root/cat/2023/a.png`` is a *cat*). An image is a file whose name ends
    with one of :obj:`extensions`, case-insensitively. Files and folders
    whose name starts with ``'.'`` are skipped, and so are files directly in
    :obj:`root`. The folder is listed once at construction; images are
    decoded on access (:func:`PIL.Image.open` then ``convert('L')`` or
    ``convert('RGB')``), resized to :obj:`size` with bilinear resampling and
    scaled to :math:`[0, 1]`.

    Args:
        root (str or os.PathLike): The folder holding one sub-folder per
            class.
        size (int or (int, int), optional): Output size: an int for a square
            image or (H, W). (default: :obj:`64`)
        grayscale (bool, optional): If :obj:`True`, one channel (Pillow's
            ``'L'``), else three (RGB). (default: :obj:`False`)
        extensions (sequence of str, optional): The file endings of images.
            (default: :obj:`('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif',
            '.tiff', '.webp')`)
        transform (callable, optional): Applied to each image tensor on
            access. (default: :obj:`None`)

    Attributes:
        classes (list[str]): The class names, sorted; also
            :obj:`class_names`.
        class_to_idx (dict[str, int]): Class name to label.
        samples (list[tuple[str, int]]): (path, label) of every image, sorted
            by label then path.
        targets (torch.Tensor): long [len], the labels of :obj:`samples`.
        num_classes (int): Number of classes.
        in_channels (int): 1 if :obj:`grayscale` else 3.
        image_size (tuple[int, int]): (H, W).

    Shapes:
        - **item:** image :math:`(C, H, W)` float32 in :math:`[0, 1]` (or
          whatever :obj:`transform` returns), label :math:`()` long.

    Raises:
        FileNotFoundError: If :obj:`root` does not exist.
        NotADirectoryError: If :obj:`root` is not a folder.
        ValueError: If no sub-folder of :obj:`root` holds an image, or
            :obj:`size` or :obj:`extensions` is invalid; on access, if an
            image cannot be read (the message names the file).
        TypeError: If an argument has the wrong type.
        ImportError: If Pillow is not installed.
    """

    def __init__(
        self,
        root: Union[str, os.PathLike],
        size: Union[int, Sequence[int]] = 64,
        grayscale: bool = False,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        transform: Optional[Callable] = None,
    ) -> None:
        super().__init__()
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"'root' must be a path (got "
                            f"{type(root).__name__})")
        self.root = os.fspath(root)
        self.image_size = _check_size(size)
        if not isinstance(grayscale, bool):
            raise TypeError(f"'grayscale' must be a bool (got "
                            f"{type(grayscale).__name__})")
        self.grayscale = grayscale
        self.extensions = _check_extensions(extensions)
        self.transform = _check_transform(transform)
        _import_pil()  # fail early, with the install hint
        if not os.path.exists(self.root):
            raise FileNotFoundError(f"image folder root {self.root!r} does "
                                    f"not exist")
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"image folder root {self.root!r} is "
                                     f"not a folder")

        found: Dict[str, List[str]] = {}
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith('.') or not entry.is_dir():
                continue
            files = self._images_under(entry.path)
            if files:
                found[entry.name] = files
        if not found:
            raise ValueError(
                f"no sub-folder of {self.root!r} holds an image (a file "
                f"ending with one of {', '.join(self.extensions)}); expected "
                f"the layout root/<class>/<image>")
        self.classes: List[str] = sorted(found)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: List[Tuple[str, int]] = [
            (path, self.class_to_idx[c]) for c in self.classes
            for path in found[c]
        ]
        self.targets = torch.tensor([t for _, t in self.samples],
                                    dtype=torch.long)

    def _images_under(self, folder: str) -> List[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith('.')]
            for name in filenames:
                if (not name.startswith('.')
                        and name.lower().endswith(self.extensions)):
                    out.append(os.path.join(dirpath, name))
        return sorted(out)

    @property
    def class_names(self) -> List[str]:
        return self.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return 1 if self.grayscale else 3

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, path: str) -> Tensor:
        r"""Decodes, converts and resizes one image file.

        Returns:
            torch.Tensor: float32 [C, H, W] in :math:`[0, 1]`.

        Raises:
            ValueError: If the file cannot be read as an image (the message
                names :obj:`path`).
        """
        Image = _import_pil()
        resample = getattr(Image, 'Resampling', Image).BILINEAR
        h, w = self.image_size
        try:
            with Image.open(path) as im:
                im = im.convert('L' if self.grayscale else 'RGB')
                im = im.resize((w, h), resample=resample)
                array = np.array(im, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, EOFError,
                Image.DecompressionBombError) as e:
            raise ValueError(f"cannot read image {path!r}: {e}") from e
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)

    def __getitem__(self, index: int) -> Tuple[Any, Tensor]:
        i = check_index(index, len(self.samples))
        path, target = self.samples[i]
        image = self.load(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.tensor(target, dtype=torch.long)

    def split(self, fraction: float = 0.2,
              seed: int = 0) -> Tuple[Subset, Subset]:
        r"""Splits the images into a training and a validation part,
        stratified per class.

        Each class with :math:`n \geq 2` images puts
        :math:`\mathrm{round}(n \cdot` :obj:`fraction` :math:`)` of them,
        clipped to :math:`[1, n - 1]`, in the validation part, so it has
        images in both parts; a class with one image keeps it for training.
        The same arguments give the same split.

        Args:
            fraction (float, optional): Share of each class for validation,
                in :math:`(0, 1)`. (default: :obj:`0.2`)
            seed (int, optional): Non-negative seed. (default: :obj:`0`)

        Returns:
            (torch.utils.data.Subset, torch.utils.data.Subset): The training
            and validation parts, disjoint, indices sorted.

        Raises:
            ValueError: If :obj:`fraction` is not in :math:`(0, 1)` or
                :obj:`seed` is negative.
            TypeError: If an argument has the wrong type.
        """
        fraction = check_float(fraction, 'fraction', 0, 1, low_open=True,
                               high_open=True)
        seed = check_int(seed, 'seed', minimum=0)
        rng = np.random.default_rng(np.random.SeedSequence([seed]))
        targets = self.targets.numpy()
        train, val = [], []
        for c in range(self.num_classes):
            idx = rng.permutation(np.flatnonzero(targets == c))
            if len(idx) < 2:
                train.append(idx)
                continue
            n_val = min(max(int(round(len(idx) * fraction)), 1), len(idx) - 1)
            val.append(idx[:n_val])
            train.append(idx[n_val:])
        train_idx = np.sort(np.concatenate(train)).tolist()
        val_idx = (np.sort(np.concatenate(val)).tolist() if val else [])
        return Subset(self, train_idx), Subset(self, val_idx)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.root!r}, '
                f'{len(self)} images, {self.num_classes} classes, '
                f'size={self.image_size})')

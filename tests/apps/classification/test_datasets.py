import itertools
import os
import pickle
import re
import sys
import time

import numpy as np
import pytest
import torch

pytest.importorskip('sklearn')
PIL_Image = pytest.importorskip('PIL.Image')

from glore_pyg.apps.classification import datasets as vd  # noqa: E402
from glore_pyg.apps.classification.datasets import DigitMosaics, ImageFolder  # noqa: E402


@pytest.fixture(scope='module')
def digits():
    from sklearn.datasets import load_digits
    bunch = load_digits()
    return (torch.from_numpy(bunch.images / 16.0).float(),
            torch.from_numpy(bunch.target).long())


@pytest.fixture(scope='module')
def train():
    return DigitMosaics('train', size=4000)


@pytest.fixture(scope='module')
def test_split():
    return DigitMosaics('test', size=1000)


def chebyshev(cells):
    return (cells[:, 0] - cells[:, 1]).abs().max(dim=1).values


# ---------------------------------------------------------------------------
# DigitMosaics
# ---------------------------------------------------------------------------
def test_pools_are_disjoint_stratified_and_cover_all_scans(
        train, test_split, digits):
    _, target = digits
    tr = set(train.source_indices.tolist())
    te = set(test_split.source_indices.tolist())
    assert not tr & te
    assert tr | te == set(range(len(target)))
    # stratified: about 30 % of every class in the test pool
    te_idx = test_split.source_indices
    for c in range(10):
        n_c = int((target == c).sum())
        n_test = int((target[te_idx] == c).sum())
        assert abs(n_test - round(0.3 * n_c)) <= 1
    # every sample of a split draws its scans from that split's pool only
    assert set(train.sources.flatten().tolist()) <= tr
    assert set(test_split.sources.flatten().tolist()) <= te
    # ... and the pools are actually used (not a handful of scans)
    assert len(set(train.sources.flatten().tolist())) > 0.9 * len(tr)


def test_partition_depends_on_seed_and_fraction_only(train):
    other = DigitMosaics('train', size=10, grid=4, min_distance=2)
    assert torch.equal(other.source_indices, train.source_indices)
    reseeded = DigitMosaics('train', size=10, seed=1)
    assert not torch.equal(reseeded.source_indices, train.source_indices)
    smaller = DigitMosaics('test', size=10, test_fraction=0.1)
    assert 150 < len(smaller.source_indices) < 210


def test_labels_digits_and_sources_are_consistent(train, digits):
    _, target = digits
    assert train.labels.dtype == torch.long
    assert train.labels.shape == (4000, )
    assert torch.equal(train.labels, (train.digits[:, 0]
                                      == train.digits[:, 1]).long())
    assert torch.equal(target[train.sources], train.digits)
    equal = train.labels.bool()
    assert (train.sources[equal, 0] != train.sources[equal, 1]).all()


def test_label_balance_and_class_pairs(train):
    frac = train.labels.float().mean().item()
    assert 0.45 <= frac <= 0.55
    # every class appears, roughly uniformly, in both positions
    for k in range(2):
        counts = torch.bincount(train.digits[:, k], minlength=10)
        assert counts.min() > 300 and counts.max() < 500
    # different samples cover all 90 ordered pairs a != b
    diff = train.digits[~train.labels.bool()]
    pairs = set(map(tuple, diff.tolist()))
    assert pairs == {(a, b) for a in range(10) for b in range(10) if a != b}


def test_cells_are_far_apart_and_uniform_over_valid_pairs():
    ds = DigitMosaics('train', size=8000, grid=6, min_distance=4)
    assert ds.cells.shape == (8000, 2, 2)
    assert ds.cells.min() >= 0 and ds.cells.max() < 6
    assert (chebyshev(ds.cells) >= 4).all()
    cells = list(itertools.product(range(6), range(6)))
    valid = {p + q for p in cells for q in cells
             if max(abs(p[0] - q[0]), abs(p[1] - q[1])) >= 4}
    seen = [tuple(c) for c in ds.cells.reshape(-1, 4).tolist()]
    assert set(seen) == valid  # 396 ordered pairs, mean count ~20
    counts = np.unique(np.asarray(seen), axis=0, return_counts=True)[1]
    assert counts.min() >= 5 and counts.max() <= 45
    # the default board: 4 x 4 cells, at least 3 apart (60 ordered pairs)
    ds = DigitMosaics('train', size=8000)
    cells = list(itertools.product(range(4), range(4)))
    valid = {p + q for p in cells for q in cells
             if max(abs(p[0] - q[0]), abs(p[1] - q[1])) >= 3}
    assert len(valid) == 60
    assert {tuple(c) for c in ds.cells.reshape(-1, 4).tolist()} == valid


@pytest.mark.parametrize('grid,min_distance', [(2, 1), (3, 2), (7, 3)])
def test_other_grids(grid, min_distance, digits):
    ds = DigitMosaics('test', size=300, grid=grid, min_distance=min_distance)
    side = 8 * grid
    assert ds.image_size == (side, side)
    assert ds.images.shape == (300, 1, side, side)
    assert (chebyshev(ds.cells) >= min_distance).all()
    assert ds.cells.max() < grid
    check_pixels(ds, digits)


def check_pixels(ds, digits):
    scans, _ = digits
    images, labels = ds.tensors()
    assert torch.equal(labels, ds.labels)
    expected = torch.zeros_like(images)
    for i in range(len(ds)):
        for k in range(2):
            r, c = ds.cells[i, k].tolist()
            expected[i, 0, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = \
                scans[ds.sources[i, k]]
    assert torch.equal(images, expected)


def test_pixels_are_the_scans_and_zero_elsewhere(digits):
    ds = DigitMosaics('train', size=500)
    check_pixels(ds, digits)
    # the stored uint8 values are the scan values 0..16
    assert ds.images.dtype == torch.uint8
    assert ds.images.max() == 16
    # at most two non-empty cells per image
    blocks = ds.images.view(500, 4, 8, 4, 8).sum((2, 4)) > 0
    assert (blocks.flatten(1).sum(1) <= 2).all()


def test_getitem(train, digits):
    scans, _ = digits
    image, label = train[3]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert label.dtype == torch.long and label.dim() == 0
    assert 0.0 <= image.min() and image.max() <= 1.0
    r, c = train.cells[3, 0].tolist()
    assert torch.equal(image[0, 8 * r:8 * r + 8, 8 * c:8 * c + 8],
                       scans[train.sources[3, 0]])
    last, last_label = train[-1]
    assert torch.equal(last, train[len(train) - 1][0])
    assert last_label == train.labels[-1]
    assert train[torch.tensor(5)][1] == train.labels[5]
    n = len(train)
    with pytest.raises(IndexError, match=rf"^'index' must be an int in "
                       rf"\[-{n}, {n}\) \(a sequence of {n} items\), "
                       rf"got {n}$"):
        train[n]
    with pytest.raises(IndexError, match=rf"got {-n - 1}$"):
        train[-n - 1]
    with pytest.raises(TypeError, match=rf"^'index' must be an int in "
                       rf"\[-{n}, {n}\), got float 1\.5$"):
        train[1.5]
    with pytest.raises(TypeError, match="^'index' must be an int in"):
        train[True]


def test_transform_and_attributes():
    ds = DigitMosaics('test', size=20, transform=lambda x: x * 2 - 1)
    image, _ = ds[0]
    assert image.min() == -1.0
    assert len(ds) == 20
    assert ds.num_classes == 2 and ds.in_channels == 1
    assert ds.class_names == ('different', 'equal')
    assert ds.image_size == (32, 32)
    assert ds.digits.shape == (20, 2) and ds.sources.shape == (20, 2)
    assert ds.source_indices.dtype == torch.long
    assert len(DigitMosaics('test')) == 2000
    assert 'DigitMosaics' in repr(ds)


def test_describe(train):
    d = train.describe(-2)
    i = len(train) - 2
    assert d['label'] == int(train.labels[i])
    assert d['class_name'] == ('equal' if d['label'] else 'different')
    assert d['digits'] == tuple(train.digits[i].tolist())
    assert d['cells'] == tuple(map(tuple, train.cells[i].tolist()))
    assert d['sources'] == tuple(train.sources[i].tolist())
    assert d['distance'] >= 3
    with pytest.raises(IndexError, match="^'index' must be an int in "):
        train.describe(len(train))


def test_determinism(train):
    again = DigitMosaics('train', size=4000)
    for name in ('images', 'labels', 'digits', 'cells', 'sources'):
        assert torch.equal(getattr(again, name), getattr(train, name))
    other = DigitMosaics('train', size=4000, seed=1)
    assert not torch.equal(other.images, train.images)
    assert not torch.equal(other.labels, train.labels)
    # the two splits use different streams (not just different pools)
    te = DigitMosaics('test', size=4000)
    assert not torch.equal(te.labels, train.labels)
    assert not torch.equal(te.cells, train.cells)


def test_build_time():
    DigitMosaics('test', size=10)  # scikit-learn imported and data cached
    start = time.perf_counter()
    ds = DigitMosaics('train')
    elapsed = time.perf_counter() - start
    assert len(ds) == 8000
    assert elapsed < 2.0


def test_pickles():
    ds = DigitMosaics('test', size=10)
    copy = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copy.images, ds.images)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(split='val'), ValueError, "^'split'"),
    (dict(split=0), ValueError, "^'split'"),
    (dict(grid=1), ValueError, "^'grid' must be an int >= 2, got 1$"),
    (dict(grid=6.0), TypeError,
     r"^'grid' must be an int >= 2, got float 6\.0$"),
    (dict(grid=True), TypeError,
     "^'grid' must be an int >= 2, got bool True$"),
    (dict(min_distance=0), ValueError,
     r"^'min_distance' must be an int in \[1, 3\], got 0$"),
    (dict(min_distance=6), ValueError,
     r"^'min_distance' must be an int in \[1, 3\], got 6$"),
    (dict(grid=3, min_distance=3), ValueError,
     r"^'min_distance' must be an int in \[1, 2\], got 3$"),
    (dict(min_distance=4.0), TypeError,
     r"^'min_distance' must be an int in \[1, 3\], got float 4\.0$"),
    (dict(test_fraction=0.0), ValueError,
     r"^'test_fraction' must be a finite number in \(0, 1\), got 0\.0$"),
    (dict(test_fraction=1.0), ValueError,
     r"^'test_fraction' must be a finite number in \(0, 1\), got 1\.0$"),
    (dict(test_fraction=float('nan')), ValueError,
     r"^'test_fraction' must be a finite number in \(0, 1\), got nan$"),
    (dict(test_fraction='0.3'), TypeError,
     r"^'test_fraction' must be a finite number in \(0, 1\), got str "),
    (dict(size=0), ValueError, "^'size' must be an int >= 1, got 0$"),
    (dict(size=10.0), TypeError,
     r"^'size' must be an int >= 1, got float 10\.0$"),
    (dict(size=False), TypeError,
     "^'size' must be an int >= 1, got bool False$"),
    (dict(seed=-1), ValueError, "^'seed' must be an int >= 0, got -1$"),
    (dict(seed=1.0), TypeError,
     r"^'seed' must be an int >= 0, got float 1\.0$"),
    (dict(transform=3), TypeError, "^'transform'"),
])
def test_digit_mosaics_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        DigitMosaics(**kwargs)


def test_missing_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, 'sklearn', None)
    monkeypatch.setitem(sys.modules, 'sklearn.datasets', None)
    with pytest.raises(ImportError, match='pip install scikit-learn'):
        DigitMosaics('test', size=5)
    # argument errors come first, before the import
    with pytest.raises(ValueError, match='grid'):
        DigitMosaics(grid=1)


# ---------------------------------------------------------------------------
# ImageFolder
# ---------------------------------------------------------------------------
def write_image(path, color, size=(10, 12), mode='RGB', fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL_Image.new(mode, size, color).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'images'
    write_image(str(root / 'cat' / 'a.png'), (255, 0, 0))
    write_image(str(root / 'cat' / 'b.JPG'), (0, 0, 255), fmt='JPEG')
    write_image(str(root / 'cat' / '.hidden.png'), (0, 255, 0))
    (root / 'cat' / 'notes.txt').write_text('not an image')
    write_image(str(root / 'dog' / 'nested' / 'deep' / 'c.png'),
                (0, 255, 0), size=(5, 7))
    write_image(str(root / 'dog' / 'd.bmp'), 128, mode='L')
    write_image(str(root / 'bird' / 'e.gif'), (255, 255, 255))
    write_image(str(root / 'bird' / '.cache' / 'f.png'), (0, 0, 0))
    # no image inside: not a class; hidden folder: not a class
    (root / 'empty').mkdir()
    (root / 'empty' / 'readme.md').write_text('#')
    write_image(str(root / '.git' / 'g.png'), (0, 0, 0))
    write_image(str(root / 'loose.png'), (0, 0, 0))  # not in a class folder
    return root


def test_image_folder_listing(folder):
    ds = ImageFolder(folder, size=16)
    assert ds.classes == ['bird', 'cat', 'dog']
    assert ds.class_names == ds.classes
    assert ds.class_to_idx == {'bird': 0, 'cat': 1, 'dog': 2}
    rel = [(os.path.relpath(p, folder), t) for p, t in ds.samples]
    assert rel == [
        (os.path.join('bird', 'e.gif'), 0),
        (os.path.join('cat', 'a.png'), 1),
        (os.path.join('cat', 'b.JPG'), 1),
        (os.path.join('dog', 'd.bmp'), 2),
        (os.path.join('dog', 'nested', 'deep', 'c.png'), 2),
    ]
    assert ds.targets.dtype == torch.long
    assert ds.targets.tolist() == [0, 1, 1, 2, 2]
    assert len(ds) == 5 and ds.num_classes == 3 and ds.in_channels == 3
    assert ds.image_size == (16, 16)
    assert 'ImageFolder' in repr(ds)


def test_image_folder_items(folder):
    ds = ImageFolder(str(folder), size=(8, 12))
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 8, 12) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert label.dtype == torch.long and label.dim() == 0
        assert label == ds.targets[i]
    red, _ = ds[1]  # cat/a.png, solid red: bilinear keeps it exact
    assert torch.allclose(red[0], torch.ones(8, 12))
    assert torch.allclose(red[1:], torch.zeros(2, 8, 12))
    gray, _ = ds[3]  # dog/d.bmp, L = 128 everywhere
    assert torch.allclose(gray, torch.full((3, 8, 12), 128 / 255))
    assert torch.equal(ds[-1][0], ds[4][0])
    with pytest.raises(IndexError, match=r"^'index' must be an int in "
                       r"\[-5, 5\) \(a sequence of 5 items\), got 5$"):
        ds[5]
    with pytest.raises(IndexError, match="got -6$"):
        ds[-6]
    # iteration through __getitem__ ends at the IndexError
    assert [int(label) for _, label in ds] == ds.targets.tolist()


def test_image_folder_grayscale_and_transform(folder):
    ds = ImageFolder(folder, size=4, grayscale=True,
                     transform=lambda x: x * 10)
    assert ds.in_channels == 1
    image, _ = ds[1]  # pure red -> L = 0.299 * 255 = 76
    assert image.shape == (1, 4, 4)
    assert torch.allclose(image, torch.full((1, 4, 4), 76 / 255 * 10))


def test_image_folder_extensions(folder):
    ds = ImageFolder(folder, extensions=('PNG', ))
    assert ds.classes == ['cat', 'dog']
    assert len(ds) == 2


def test_image_folder_corrupt_file(folder):
    bad = folder / 'cat' / 'broken.png'
    bad.write_bytes(b'this is not a png')
    ds = ImageFolder(folder, size=8)  # listing does not decode
    index = [p for p, _ in ds.samples].index(str(bad))
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        ds[index]
    ds[0]  # the others still load


def test_image_folder_errors(tmp_path, folder):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match='nowhere'):
        ImageFolder(missing)
    with pytest.raises(NotADirectoryError, match='loose.png'):
        ImageFolder(folder / 'loose.png')
    empty = tmp_path / 'no_images'
    (empty / 'a').mkdir(parents=True)
    (empty / 'a' / 'x.txt').write_text('x')
    with pytest.raises(ValueError, match=r'no_images.*\.png'):
        ImageFolder(empty)
    for size, error, match in [
            (0, ValueError, "^'size' must be an int >= 1, got 0$"),
            ((8, 0), ValueError, r"^'size\[1\]' must be an int >= 1, got 0$"),
            ((1, 2, 3), ValueError, r"^'size' must be an int or a pair "
             r"\(H, W\) of ints, got 3 values"),
            ('a', TypeError, "^'size' must be an int or a pair"),
            (True, TypeError, "^'size' must be an int or a pair"),
            ((8, 2.0), TypeError,
             r"^'size\[1\]' must be an int >= 1, got float 2\.0$")]:
        with pytest.raises(error, match=match):
            ImageFolder(folder, size=size)
    with pytest.raises(ValueError, match='extensions'):
        ImageFolder(folder, extensions=())
    with pytest.raises(TypeError, match='grayscale'):
        ImageFolder(folder, grayscale='yes')
    with pytest.raises(TypeError, match='transform'):
        ImageFolder(folder, transform='flip')


def test_missing_pillow(monkeypatch, folder):
    monkeypatch.setitem(sys.modules, 'PIL', None)
    monkeypatch.setitem(sys.modules, 'PIL.Image', None)
    with pytest.raises(ImportError, match='pip install pillow'):
        ImageFolder(folder)


def test_image_folder_split(tmp_path):
    root = tmp_path / 'split'
    counts = {'a': 10, 'b': 5, 'c': 2, 'd': 1}
    for name, n in counts.items():
        for k in range(n):
            write_image(str(root / name / f'{k}.png'), (k, k, k), size=(2, 2))
    ds = ImageFolder(root, size=2)
    train, val = ds.split(0.2, seed=0)
    ti, vi = set(train.indices), set(val.indices)
    assert not ti & vi and ti | vi == set(range(len(ds)))
    assert train.dataset is ds and val.dataset is ds
    val_counts = torch.bincount(ds.targets[list(vi)], minlength=4).tolist()
    train_counts = torch.bincount(ds.targets[list(ti)], minlength=4).tolist()
    assert val_counts == [2, 1, 1, 0]  # round(n * 0.2) clipped to [1, n-1]
    assert train_counts == [8, 4, 1, 1]
    again = ds.split(0.2, seed=0)
    assert again[0].indices == train.indices
    assert again[1].indices == val.indices
    other = ds.split(0.2, seed=1)
    assert other[1].indices != val.indices
    image, label = val[0]
    assert image.shape == (3, 2, 2) and label == ds.targets[val.indices[0]]
    with pytest.raises(ValueError, match=r"^'fraction' must be a finite "
                       r"number in \(0, 1\), got 1\.0$"):
        ds.split(1.0)
    with pytest.raises(TypeError,
                       match="^'seed' must be an int >= 0, got str '0'$"):
        ds.split(0.2, seed='0')


def test_module_exports():
    assert set(vd.__all__) == {'DigitMosaics', 'ImageFolder'}

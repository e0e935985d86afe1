import pickle
import sys

import numpy as np
import pytest
import torch

from glore_pyg.apps.segmentation.datasets import (
    FROG_CLASS_NAMES,
    FrogTissues,
    load_frog_point_cloud,
)
from glore_pyg.apps.segmentation.datasets import frog as frog_module


@pytest.fixture(scope='module')
def cloud():
    pytest.importorskip('pyvista')
    return load_frog_point_cloud()


@pytest.fixture(scope='module')
def train(cloud):
    return FrogTissues('train', num_points=1024, num_samples=8, seed=0)


@pytest.fixture(scope='module')
def test(cloud):
    return FrogTissues('test', num_points=1024, num_samples=8, seed=0)


def test_cloud(cloud):
    pos, y = cloud
    assert pos.dtype == np.float32 and pos.shape[1] == 3
    assert y.dtype == np.int64 and y.shape == (len(pos), )
    # 15 named tissues, all present, as classes 0..14
    assert np.array_equal(np.unique(y), np.arange(15))
    assert len(FROG_CLASS_NAMES) == 15
    # image units: x, y on the 2-voxel grid, z on 2 x 1.5
    assert np.all(pos[:, :2] % 2 == 0) and np.all(pos[:, 2] % 3 == 0)
    assert pos.max(0)[0] < 500 and pos.max(0)[1] < 470
    assert pos.max(0)[2] < 136 * 1.5
    # cached and read-only: one conversion per process
    assert load_frog_point_cloud()[0] is pos
    with pytest.raises(ValueError):
        pos[0, 0] = 1.0


def test_conversion_is_deterministic(cloud):
    # rebuild without the cache, on a coarser grid (fast)
    pos, y = frog_module._cloud.__wrapped__(4, True)
    again, y_again = frog_module._cloud.__wrapped__(4, True)
    assert np.array_equal(pos, again) and np.array_equal(y, y_again)
    volume, _ = frog_module._cloud.__wrapped__(4, False)
    assert len(volume) > len(pos)  # the surface is a subset of the volume


def test_splits_are_disjoint(train, test, cloud):
    mid = frog_module.FROG_MIDLINE_Y
    assert (train.points[:, 1] < mid - 4).all()
    assert (test.points[:, 1] > mid + 4).all()
    train_keys = {p.tobytes() for p in train.points}
    assert not any(p.tobytes() in train_keys for p in test.points)
    # both halves hold most tissues and a fair share of the points
    assert len(np.unique(train.labels)) == 15
    assert len(np.unique(test.labels)) >= 13
    share = len(train.points) / (len(train.points) + len(test.points))
    assert 0.4 < share < 0.6
    # the gap slab belongs to neither split
    pos, _ = cloud
    in_gap = np.abs(pos[:, 1] - mid) <= 4
    assert len(train.points) + len(test.points) + in_gap.sum() == len(pos)


def test_samples(train):
    assert len(train) == 8 and train.num_classes == 15
    assert train.class_names == FROG_CLASS_NAMES
    assert train.ignore_index is None and train.class_weights is None
    data = train[0]
    assert data.pos.shape == (1024, 3) and data.pos.dtype == torch.float32
    assert data.y.shape == (1024, ) and data.y.dtype == torch.long
    assert data.x.shape == (1024, 27) and data.x.dtype == torch.float32
    assert 0 <= data.y.min() and data.y.max() < 15
    # a column around the origin in x/y, absolute z
    assert data.pos[:, :2].abs().max() <= train.block_size / 2 == 128
    assert data.pos[:, 2].min() >= 0
    # drawn without replacement when the column holds enough points
    small = FrogTissues('train', num_points=64, num_samples=4, seed=1)
    for data in small:
        assert len(torch.unique(data.pos, dim=0)) == 64


def same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x.pos, y.pos) and torch.equal(x.y, y.y)
        for x, y in zip(a, b))


def test_columns_are_keyed_by_seed_epoch_and_index(cloud):
    a = FrogTissues('train', num_points=256, num_samples=4, seed=3)
    b = FrogTissues('train', num_points=256, num_samples=4, seed=3)
    c = FrogTissues('train', num_points=256, num_samples=4, seed=4)
    first = [a[i] for i in range(4)]
    # the same (seed, epoch, idx): the same column, from another instance,
    # in another order, read again
    assert same(first[::-1], [b[i] for i in (3, 2, 1, 0)])
    assert same(first, [a[i] for i in range(4)])
    assert not torch.equal(first[0].pos, first[1].pos)
    assert not torch.equal(first[0].pos, c[0].pos)
    # another epoch, other columns; back to an epoch, its columns again
    a.set_epoch(1)
    assert a.epoch == 1
    second = [a[i] for i in range(4)]
    assert not any(torch.equal(x.pos, y.pos) for x, y in zip(first, second))
    b.set_epoch(1)
    assert same(second, [b[i] for i in range(4)])
    a.set_epoch(0)
    assert same(first, [a[i] for i in range(4)])


def test_columns_survive_pickling(cloud):
    ds = FrogTissues('train', num_points=256, num_samples=3, seed=2)
    ds.set_epoch(5)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch == 5
    assert same([ds[i] for i in range(3)], [copy[i] for i in range(3)])


def test_dataloader_workers_draw_the_keyed_columns(cloud):
    """Workers hold copies of the data set: the columns do not depend on
    which process draws them, and the epoch set before the loader is
    iterated reaches them."""
    from torch_geometric.loader import DataLoader

    def batches(num_workers, epoch):
        ds = FrogTissues('train', num_points=128, num_samples=6, seed=1)
        ds.set_epoch(epoch)
        return list(DataLoader(ds, batch_size=2, num_workers=num_workers))

    main, workers = batches(0, 2), batches(2, 2)
    assert same(main, workers)
    assert not same(main, batches(0, 0))


def test_test_split_is_fixed_without_an_epoch(test):
    # a validation split never given an epoch draws the same columns
    assert test.epoch == 0
    assert same([test[i] for i in range(3)], [test[i] for i in range(3)])
    tiles = FrogTissues('test', whole_scene=True, block_size=128.0)
    before = tiles[0]
    tiles.set_epoch(4)
    assert torch.equal(before.pos, tiles[0].pos)


def test_set_epoch_rejects_bad_input(train):
    ds = FrogTissues('train', num_points=64, num_samples=2)
    with pytest.raises(ValueError,
                       match="^'epoch' must be an int >= 0, got -1$"):
        ds.set_epoch(-1)
    for bad in (1.0, '1', True, None):
        with pytest.raises(TypeError, match="^'epoch' must be an int >= 0, "
                           f"got {type(bad).__name__} "):
            ds.set_epoch(bad)
    assert ds.epoch == 0
    ds.set_epoch(np.int64(2))
    assert ds.epoch == 2 and type(ds.epoch) is int


def test_whole_scene_covers_the_split(cloud):
    ds = FrogTissues('test', whole_scene=True, block_size=128.0, margin=8.0,
                     center_xy=False)
    count = np.zeros(len(ds.points), dtype=np.int64)
    for cell in ds:
        np.add.at(count, cell.point_idx[cell.inner].numpy(), 1)
        assert torch.equal(cell.pos, torch.from_numpy(
            ds.points[cell.point_idx.numpy()]))
        assert torch.equal(cell.y, ds.cloud().y[cell.point_idx])
    assert (count == 1).all()


def test_location_features_are_the_mirror_symmetric_frame(cloud):
    """``x`` is the point's place in the whole frog: x and z scaled to
    [0, 1] over the cloud, y the distance from the midline scaled by the
    largest one; a point and its mirror image get the same features."""
    pos, _ = cloud
    mid = frog_module.FROG_MIDLINE_Y
    low, high = pos.min(0).astype(np.float64), pos.max(0).astype(np.float64)
    offset = np.abs(pos[:, 1].astype(np.float64) - mid)
    for split in ('train', 'test'):
        ds = FrogTissues(split, whole_scene=True, block_size=128.0)
        cell = ds[len(ds) // 2]
        p = ds.points[cell.point_idx.numpy()].astype(np.float64)
        expected = np.stack([
            (p[:, 0] - low[0]) / (high[0] - low[0]),
            np.abs(p[:, 1] - mid) / offset.max(),
            (p[:, 2] - low[2]) / (high[2] - low[2])], axis=1)
        assert np.allclose(cell.x[:, :3].numpy(), expected, atol=1e-6)
        assert cell.x[:, :3].min() >= 0 and cell.x[:, :3].max() <= 1
        # then sin, cos of 2^k pi u: coordinate-major, frequency-minor
        angle = expected[:, :, None] * np.pi * 2.0 ** np.arange(4)
        assert np.allclose(cell.x[:, 3:15].numpy(),
                           np.sin(angle).reshape(len(p), 12), atol=1e-5)
        assert np.allclose(cell.x[:, 15:].numpy(),
                           np.cos(angle).reshape(len(p), 12), atol=1e-5)
    # mirror images: the train point (x, 233 - t, z) and the test point
    # (x, 233 + t, z) have the same features
    train = FrogTissues('train', whole_scene=True, block_size=512.0)
    test = FrogTissues('test', whole_scene=True, block_size=512.0)
    a, b = train[0], test[0]
    key = {tuple(np.round([q[0], 2 * mid - q[1], q[2]], 3)): i
           for i, q in enumerate(train.points[a.point_idx.numpy()])}
    pairs = [(key[k], j) for j, q in enumerate(test.points[b.point_idx.numpy()])
             if (k := tuple(np.round(q, 3))) in key]
    assert len(pairs) > 1000
    i, j = map(list, zip(*pairs))
    assert torch.allclose(a.x[i], b.x[j], atol=1e-5)
    off = FrogTissues('train', num_points=64, num_samples=2, location=False)
    assert off[0].x is None
    raw = FrogTissues('train', num_points=64, num_samples=2, frequencies=0)
    full = FrogTissues('train', num_points=64, num_samples=2)
    assert torch.equal(raw[0].x, full[0].x[:, :3])


def test_flip_mirrors_half_the_columns_about_their_centre(cloud):
    plain = FrogTissues('train', num_points=256, num_samples=16, seed=5)
    flipped = FrogTissues('train', num_points=256, num_samples=16, seed=5,
                          flip=True)
    mirrored = 0
    for a, b in zip(plain, flipped):
        # the same points (labels, features), y negated or kept
        assert torch.equal(a.y, b.y) and torch.equal(a.x, b.x)
        assert torch.equal(a.pos[:, [0, 2]], b.pos[:, [0, 2]])
        if torch.equal(a.pos[:, 1], -b.pos[:, 1]):
            mirrored += 1
        else:
            assert torch.equal(a.pos, b.pos)
    assert 0 < mirrored < 16
    # keyed like the columns: another instance draws the same flips
    again = FrogTissues('train', num_points=256, num_samples=16, seed=5,
                        flip=True)
    assert same(list(flipped), list(again))


def test_class_weights_are_pointnet2s_rule_on_the_training_half(cloud):
    _, y = cloud
    train = FrogTissues('train', num_points=64, num_samples=2,
                        weighted=True)
    test = FrogTissues('test', num_points=64, num_samples=2, weighted=True)
    freq = np.bincount(train.labels, minlength=15) / len(train.labels)
    expected = torch.tensor(1 / np.log(1.2 + freq), dtype=torch.float32)
    assert torch.allclose(train.class_weights, expected)
    assert torch.equal(test.class_weights, train.class_weights)
    assert FrogTissues('train', num_points=64,
                       num_samples=2).class_weights is None


def test_bad_arguments(cloud):
    with pytest.raises(ValueError, match="'split'"):
        FrogTissues('val')
    with pytest.raises(ValueError,
                       match="^'stride' must be an int >= 1, got 0$"):
        load_frog_point_cloud(stride=0)
    with pytest.raises(ValueError, match=r"^'block_size' must be a finite "
                       r"number > 0, got -1\.0$"):
        FrogTissues(block_size=-1.0)
    with pytest.raises(ValueError, match="^'gap' must be a finite number "
                       ">= 0, got nan$"):
        FrogTissues(gap=float('nan'))
    with pytest.raises(TypeError, match="^'num_points' must be an int >= 1, "
                       "got str 'many'$"):
        FrogTissues(num_points='many')
    with pytest.raises(ValueError,
                       match="^'frequencies' must be an int >= 0, got -1$"):
        FrogTissues(frequencies=-1)


def test_missing_pyvista_says_how_to_install(monkeypatch):
    # runs without pyvista too: a None entry makes ``import pyvista`` fail
    monkeypatch.setitem(sys.modules, 'pyvista', None)
    with pytest.raises(ImportError, match=r'pip install "glore-pyg\[data\]"'):
        frog_module._import_pyvista()

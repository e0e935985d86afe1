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
    assert data.x is None
    assert 0 <= data.y.min() and data.y.max() < 15
    # a column around the origin in x/y, absolute z
    assert data.pos[:, :2].abs().max() <= 96 / 2
    assert data.pos[:, 2].min() >= 0
    # drawn without replacement when the column holds enough points
    small = FrogTissues('train', num_points=64, num_samples=4, seed=1)
    for data in small:
        assert len(torch.unique(data.pos, dim=0)) == 64


def test_deterministic(cloud):
    a = FrogTissues('train', num_points=256, num_samples=4, seed=3)
    b = FrogTissues('train', num_points=256, num_samples=4, seed=3)
    c = FrogTissues('train', num_points=256, num_samples=4, seed=4)
    first = [a[i].pos for i in range(4)]
    assert all(torch.equal(x, b[i].pos) for i, x in enumerate(first))
    assert not torch.equal(first[0], c[0].pos)


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


def test_bad_arguments(cloud):
    with pytest.raises(ValueError, match="'split'"):
        FrogTissues('val')
    with pytest.raises(ValueError, match="'stride'"):
        load_frog_point_cloud(stride=0)
    with pytest.raises(ValueError, match="'block_size'"):
        FrogTissues(block_size=-1.0)
    with pytest.raises(TypeError, match="'num_points'"):
        FrogTissues(num_points='many')


def test_missing_pyvista_says_how_to_install(monkeypatch):
    # runs without pyvista too: a None entry makes ``import pyvista`` fail
    monkeypatch.setitem(sys.modules, 'pyvista', None)
    with pytest.raises(ImportError, match=r'pip install "glore-pyg\[data\]"'):
        frog_module._import_pyvista()

import pickle

import numpy as np
import pytest
import torch

from glore_pyg.apps.segmentation.datasets import (
    SCANNET_CLASS_NAMES,
    ScanNetPickle,
    sample_scannet_column,
    tile_columns,
)


def write(root, split, *objects):
    """The PointNet++ format: objects pickled one after the other."""
    with open(root / f'scannet_{split}.pickle', 'wb') as f:
        for obj in objects:
            pickle.dump(obj, f, protocol=2)


def room(rng, n=6000, size=(4.0, 3.0, 2.5), unannotated=0.0, dtype=np.int32):
    """Points uniform in a box; labels 1..20, a fraction of them 0."""
    points = (rng.random((n, 3)) * size).astype(np.float32)
    labels = rng.integers(1, 21, n)
    labels[rng.random(n) < unannotated] = 0
    return points, labels.astype(dtype)


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    scenes = [room(rng, n, size) for n, size in
              [(6000, (4.0, 3.0, 2.5)), (3000, (2.0, 5.0, 2.0)),
               (4000, (3.2, 3.2, 3.0))]]
    write(tmp_path, 'train', [p for p, _ in scenes], [y for _, y in scenes])
    write(tmp_path, 'test', [p for p, _ in scenes[:2]],
          [y.astype(np.float64) for _, y in scenes[:2]])
    return tmp_path


def test_reads_the_format(root):
    ds = ScanNetPickle(root, num_points=1024)
    assert len(ds) == 3 and ds.num_classes == 21 and ds.ignore_index == 0
    assert ds.class_names == SCANNET_CLASS_NAMES and len(ds.class_names) == 21
    assert ds.scene_labels[0].dtype == np.int64
    assert ds.scene_points[0].dtype == np.float32
    data = ds[0]
    assert data.pos.shape == (1024, 3) and data.pos.dtype == torch.float32
    assert data.y.shape == (1024, ) and data.y.dtype == torch.long
    assert data.weight.shape == (1024, ) and data.x is None
    assert 0 <= data.y.min() and data.y.max() <= 20
    # Python 2 pickles often hold float labels: cast to int64
    test = ScanNetPickle(root, split='test')
    assert test.scene_labels[1].dtype == np.int64
    assert ScanNetPickle(root).num_points == 8192
    assert len(ScanNetPickle(root)[0].pos) == 8192


def test_class_weights_formula(root):
    ds = ScanNetPickle(root)
    counts = np.zeros(21)
    for y in ds.scene_labels:
        counts += np.histogram(y, range(22))[0]  # PointNet++'s histogram
    expected = 1 / np.log(1.2 + counts / counts.sum())
    assert torch.allclose(ds.class_weights, torch.tensor(expected).float())
    assert ds.class_weights[0] == pytest.approx(1 / np.log(1.2))  # no 0s
    # PointNet++ weighs the test split uniformly
    assert torch.equal(ScanNetPickle(root, split='test').class_weights,
                       torch.ones(21))


def test_training_column(root):
    ds = ScanNetPickle(root, num_points=2048, center_xy=False, seed=1)
    points = ds.scene_points[0]
    for _ in range(5):
        data = ds[0]
        pos = data.pos.numpy()
        # every sampled point is a scene point ...
        gaps = np.abs(points[None] - pos[:200, None]).sum(-1).min(1)
        assert (gaps == 0).all()
        # ... inside a 1.5 m column grown by 0.2 m, over the full height
        assert (np.ptp(pos[:, :2], axis=0) <= 1.5 + 0.4 + 1e-5).all()
        # weights: the class weight inside the column, 0 in the margin
        w, y = data.weight, data.y
        inside = w > 0
        assert torch.allclose(w[inside], ds.class_weights[y[inside]])
        assert 0 < inside.float().mean() < 1

    centred = ScanNetPickle(root, num_points=2048, seed=1)[0]
    assert centred.pos[:, :2].abs().max() <= 0.75 + 0.2 + 1e-5
    # the inner column is 1.5 m wide around the centre
    inner = centred.pos[centred.weight > 0, :2]
    assert inner.abs().max() <= 0.75 + 0.01 + 1e-5
    # z keeps the scene's coordinates
    assert centred.pos[:, 2].min() >= 0


def test_margin_points_have_zero_weight(root):
    ds = ScanNetPickle(root, num_points=4096, seed=3)
    data = ds[2]
    outside = (data.pos[:, :2].abs() > 0.75 + 0.01 + 1e-5).any(1)
    assert outside.any()
    assert (data.weight[outside] == 0).all()


def test_acceptance_by_annotation():
    rng = np.random.default_rng(0)
    points, labels = room(rng, n=20000, size=(6.0, 3.0, 2.0))
    # the scene's right half (x > 3 m) is unannotated
    labels[points[:, 0] > 3.0] = 0
    results = [sample_scannet_column(points, labels, rng) for _ in range(20)]
    accepted = [r for r in results if r[3]]
    assert len(accepted) >= 15  # refused columns are redrawn (10 tries)
    for cand, inner, centre, _ in accepted:
        assert np.mean(labels[cand] > 0) >= 0.7
        # >= 70% annotated needs the centre well inside the annotated half
        assert centre[0] < 2.7
    # a scene without annotation is never accepted; the last try is returned
    none = np.zeros_like(labels)
    cand, inner, centre, accepted = sample_scannet_column(points, none, rng)
    assert not accepted and len(cand) > 0 and inner.any()


def test_acceptance_by_occupancy():
    rng = np.random.default_rng(0)
    # 1.5 m column of a sparse scene: ~40 points in 31 x 31 x 62 voxels
    sparse, labels = room(rng, n=400, size=(4.0, 4.0, 2.0))
    assert not any(sample_scannet_column(sparse, labels, rng)[3]
                   for _ in range(5))
    dense, labels = room(rng, n=40000, size=(4.0, 4.0, 2.0))
    assert all(sample_scannet_column(dense, labels, rng)[3] for _ in range(5))


def test_column_geometry():
    rng = np.random.default_rng(0)
    points, labels = room(rng, n=20000, size=(6.0, 6.0, 3.0))
    cand, inner, centre, _ = sample_scannet_column(points, labels, rng,
                                                   block_size=1.5, margin=0.2)
    offset = np.abs(points[:, :2] - centre[:2])
    expected = np.flatnonzero((offset <= 0.95).all(1))
    assert np.array_equal(np.sort(cand), expected)
    assert np.array_equal(inner, (offset[cand] <= 0.76).all(1))


def columns(ds, indices):
    return [ds[i] for i in indices]


def same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x.pos, y.pos) and torch.equal(x.y, y.y)
        and torch.equal(x.weight, y.weight) for x, y in zip(a, b))


def test_columns_are_keyed_by_seed_epoch_and_index(root):
    a = ScanNetPickle(root, num_points=256, seed=5)
    b = ScanNetPickle(root, num_points=256, seed=5)
    order = [0, 1, 2, 0, 2, 1]
    first = columns(a, order)
    # the same (seed, epoch, idx): the same column, read again, in another
    # order or from another instance
    assert same(first[:3], [first[3], first[5], first[4]])
    assert same(first[::-1], [b[i] for i in order[::-1]])
    assert not torch.equal(first[0].pos, first[1].pos)
    # another seed, another column
    assert not torch.equal(first[0].pos,
                           ScanNetPickle(root, num_points=256, seed=6)[0].pos)
    # another epoch, other columns; back to an epoch, its columns again
    a.set_epoch(1)
    assert a.epoch == 1
    second = columns(a, order)
    assert not any(torch.equal(x.pos, y.pos) for x, y in zip(first, second))
    b.set_epoch(1)
    assert same(second, columns(b, order))
    a.set_epoch(0)
    assert same(first, columns(a, order))


def test_columns_survive_pickling(root):
    ds = ScanNetPickle(root, num_points=256, seed=2)
    ds.set_epoch(3)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch == 3
    assert same(columns(ds, range(3)), columns(copy, range(3)))


def test_dataloader_workers_draw_the_keyed_columns(root):
    """Workers hold copies of the data set: the columns do not depend on
    which process draws them, and the epoch set before the loader is
    iterated reaches them."""
    from torch_geometric.loader import DataLoader

    def batches(num_workers, epoch):
        ds = ScanNetPickle(root, num_points=128, seed=4)
        ds.set_epoch(epoch)
        return list(DataLoader(ds, batch_size=1, num_workers=num_workers))

    main, workers = batches(0, 1), batches(2, 1)
    assert same(main, workers)
    assert not same(main, batches(0, 0))


def test_whole_scene_ignores_the_epoch(root):
    ds = ScanNetPickle(root, split='test', whole_scene=True)
    before = ds[1]
    ds.set_epoch(7)
    assert torch.equal(before.pos, ds[1].pos)


def test_set_epoch_rejects_bad_input(root):
    ds = ScanNetPickle(root, num_points=64)
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


def test_whole_scene_covers_every_point_once(root):
    calls = []

    def transform(data):
        calls.append(data.num_nodes)
        return data

    ds = ScanNetPickle(root, split='test', whole_scene=True, center_xy=False,
                       transform=transform)
    for idx in range(len(ds)):
        batch = ds[idx]
        points = ds.scene_points[idx]
        scene = ds.scene(idx)
        assert torch.equal(scene.pos, torch.from_numpy(points))
        # every point predicted exactly once by the column that owns it
        owned = batch.point_idx[batch.inner]
        assert torch.equal(owned.sort().values, torch.arange(len(points)))
        # positions and labels map back through point_idx
        assert torch.equal(batch.pos,
                           torch.from_numpy(points)[batch.point_idx])
        assert torch.equal(batch.y, scene.y[batch.point_idx])
        # margin points are context: weight 0
        assert (batch.weight[~batch.inner] == 0).all()
        assert (batch.weight[batch.inner] == 1).all()  # test weights are 1
        extent = np.ptp(points[:, :2], axis=0)
        cells = np.prod(np.maximum(np.ceil(extent / 1.5), 1))
        assert batch.num_graphs <= cells
        for cell in batch.to_data_list():
            own = cell.pos[cell.inner, :2]
            assert (own.max(0).values - own.min(0).values <= 1.5 + 1e-5).all()
            xy = cell.pos[:, :2]
            span = xy.max(0).values - xy.min(0).values
            assert (span <= 1.5 + 0.4 + 1e-5).all()
    assert len(calls) > len(ds)  # applied per column, not per batch


def test_whole_scene_centres_each_cell(root):
    ds = ScanNetPickle(root, split='test', whole_scene=True)
    for cell in ds[0].to_data_list():
        own = cell.pos[cell.inner, :2]
        assert own.abs().max() <= 0.75 + 1e-5
        assert cell.pos[:, :2].abs().max() <= 0.95 + 1e-5


def test_tile_columns_edges():
    # points exactly on cell borders and on the far edge
    xs = np.array([0.0, 1.5, 3.0, 4.5, 1.4999999, 3.0000001])
    points = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1)
    tiles = tile_columns(points.astype(np.float32), 1.5, 0.0)
    owners = np.concatenate([idx[inner] for idx, inner, _ in tiles])
    assert np.array_equal(np.sort(owners), np.arange(len(xs)))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        ScanNetPickle(tmp_path, split='test')
    assert 'scannet_test.pickle' in str(e.value)
    assert '[N, 3]' in str(e.value) and 'pickled' in str(e.value)


def test_malformed_pickles(tmp_path):
    rng = np.random.default_rng(0)
    p, y = room(rng, n=100)

    write(tmp_path, 'train', [p])
    with pytest.raises(ValueError, match='holds 1 pickled object'):
        ScanNetPickle(tmp_path)
    write(tmp_path, 'train', [p], [y], [y])
    with pytest.raises(ValueError, match='more than two'):
        ScanNetPickle(tmp_path)
    write(tmp_path, 'train', [p, p], [y])
    with pytest.raises(ValueError, match='2 point arrays but 1 label'):
        ScanNetPickle(tmp_path)
    write(tmp_path, 'train', [p, p], [y, y[:50]])
    with pytest.raises(ValueError, match='scene 1: labels have shape'):
        ScanNetPickle(tmp_path)
    bad = y.copy()
    bad[7] = 21
    write(tmp_path, 'train', [p, p, p], [y, y, bad])
    with pytest.raises(ValueError, match=r'scene 2: label 21 .* 0\.\.20'):
        ScanNetPickle(tmp_path)
    write(tmp_path, 'train', [p, p], [y, y + 0.5])
    with pytest.raises(ValueError,
                       match=r'scene 1: label \d+\.5 is not an integer'):
        ScanNetPickle(tmp_path)
    write(tmp_path, 'train', [p[:, :2]], [y])
    with pytest.raises(ValueError, match=r'scene 0: points have shape'):
        ScanNetPickle(tmp_path)
    write(tmp_path, 'train', p, y)
    with pytest.raises(ValueError, match='expected a list'):
        ScanNetPickle(tmp_path)
    (tmp_path / 'scannet_train.pickle').write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='not a readable pickle'):
        ScanNetPickle(tmp_path)


def test_bad_arguments(root):
    with pytest.raises(ValueError, match="'split'"):
        ScanNetPickle(root, split='val')
    with pytest.raises(ValueError,
                       match="^'num_points' must be an int >= 1, got 0$"):
        ScanNetPickle(root, num_points=0)
    with pytest.raises(TypeError, match=r"^'num_points' must be an int >= 1, "
                       r"got float 10\.0$"):
        ScanNetPickle(root, num_points=10.0)
    with pytest.raises(ValueError, match=r"^'block_size' must be a finite "
                       r"number > 0, got 0\.0$"):
        ScanNetPickle(root, block_size=0)
    with pytest.raises(ValueError, match="^'block_size' must be a finite "
                       "number > 0, got inf$"):
        ScanNetPickle(root, block_size=float('inf'))
    with pytest.raises(ValueError, match=r"^'margin' must be a finite "
                       r"number >= 0, got -0\.1$"):
        ScanNetPickle(root, margin=-0.1)
    with pytest.raises(TypeError, match="^'seed' must be an int >= 0, "
                       "got NoneType None$"):
        ScanNetPickle(root, seed=None)
    with pytest.raises(TypeError, match="'root'"):
        ScanNetPickle(3)

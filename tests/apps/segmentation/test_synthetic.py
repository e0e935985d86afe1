import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from glore_pyg.apps.segmentation.datasets import (
    AMBIGUOUS_PAIRS,
    CLASS_NAMES,
    ROOM_TYPES,
    SyntheticIndoorScenes,
    generate_room,
)

BED, SOFA = CLASS_NAMES.index('bed'), CLASS_NAMES.index('sofa')
AMBIGUOUS = [c for pair in AMBIGUOUS_PAIRS for c in pair]


def _anchor(y):
    return (y == BED) | (y == SOFA)


def _ambiguous(y):
    return torch.isin(y, torch.tensor(AMBIGUOUS))


@pytest.fixture(scope='module')
def rooms():
    return list(SyntheticIndoorScenes('train', num_rooms=40, num_points=2048))


def test_item_layout(rooms):
    ds = SyntheticIndoorScenes('val', num_rooms=3, num_points=1000)
    assert len(ds) == 3 and ds.num_classes == len(CLASS_NAMES) == 11
    assert ds.class_names == CLASS_NAMES and ds.ignore_index is None
    assert ds.class_weights is None and ds.ambiguous_pairs == AMBIGUOUS_PAIRS
    data = ds[0]
    assert data.pos.shape == (1000, 3) and data.pos.dtype == torch.float32
    assert data.x.shape == (1000, 3) and data.x.dtype == torch.float32
    assert data.y.shape == (1000, ) and data.y.dtype == torch.long
    assert 0 <= data.x.min() and data.x.max() <= 1
    assert data.room_type.shape == (1, )
    colourless = SyntheticIndoorScenes('val', num_rooms=1, use_color=False)
    assert colourless[0].x is None
    assert 'SyntheticIndoorScenes(3, split=val' in repr(ds)


def test_labels_in_range_and_consistent_with_room_type(rooms):
    seen = torch.zeros(len(CLASS_NAMES), dtype=torch.bool)
    for data in rooms:
        assert data.y.min() >= 0 and data.y.max() < len(CLASS_NAMES)
        seen[data.y.unique()] = True
        bedroom = data.room_type.item() == 0
        # exactly one anchor, the one of the room type
        assert (data.y == BED).any() == bedroom
        assert (data.y == SOFA).any() == (not bedroom)
        # the label of every ambiguous object follows the room type
        for bedroom_label, living_label in AMBIGUOUS_PAIRS:
            present = (data.y == bedroom_label) | (data.y == living_label)
            assert present.any()  # every room holds both kinds of object
            expected = bedroom_label if bedroom else living_label
            assert (data.y[present] == expected).all()
        # the floor is at z = 0 and the room has walls
        assert data.pos[data.y == 0, 2].abs().max() < 0.05
    assert seen.all(), 'every class occurs in 40 rooms'


def test_room_types_are_balanced():
    types = [generate_room((3, 0, i), num_points=256).room_type.item()
             for i in range(200)]
    assert 0.4 < np.mean(types) < 0.6


def test_deterministic():
    a = SyntheticIndoorScenes('train', num_rooms=4, num_points=512, seed=7)
    b = SyntheticIndoorScenes('train', num_rooms=4, num_points=512, seed=7)
    for i in range(4):
        for key in ('pos', 'x', 'y', 'instance', 'room_type'):
            assert torch.equal(a[i][key], b[i][key])
            assert torch.equal(a[i][key], a[i][key])  # on-the-fly, repeatable
    c = SyntheticIndoorScenes('train', num_rooms=4, num_points=512, seed=8)
    assert not torch.equal(a[0].pos, c[0].pos)
    assert not torch.equal(a[0].pos, a[1].pos)


def test_splits_use_disjoint_seeds():
    # ``seed + split + index`` would make train room 1 equal val room 0
    splits = {
        s: SyntheticIndoorScenes(s, num_rooms=5, num_points=256)
        for s in ('train', 'val', 'test')
    }
    keys = set()
    for ds in splits.values():
        for data in ds:
            keys.add(data.pos.numpy().tobytes())
    assert len(keys) == 15


def test_ambiguous_objects_are_bit_identical_across_room_types():
    """The same seed in a bedroom and in a living room: every point outside
    the anchor has the same position and colour, yet the cabinets and panels
    change label. No function of those points can label both rooms right."""
    for seed in range(5):
        bedroom = generate_room(seed, num_points=2048, room_type='bedroom')
        living = generate_room(seed, num_points=2048, room_type=1)
        assert bedroom.room_type.item() == 0 and living.room_type.item() == 1
        rest = ~_anchor(bedroom.y)
        assert torch.equal(rest, ~_anchor(living.y))  # same slots in the array
        assert torch.equal(bedroom.pos[rest], living.pos[rest])
        assert torch.equal(bedroom.x[rest], living.x[rest])
        changed = bedroom.y != living.y
        # the labels differ exactly on the anchor and the ambiguous objects
        assert torch.equal(changed, _anchor(bedroom.y) | _ambiguous(bedroom.y))
        for bedroom_label, living_label in AMBIGUOUS_PAIRS:
            mask = bedroom.y == bedroom_label
            assert mask.any()
            assert (living.y[mask] == living_label).all()


@pytest.mark.parametrize('context_distance', [1.0, 1.5, 2.0])
def test_anchor_is_beyond_context_distance(context_distance):
    """No point of the anchor lies within ``context_distance`` of an
    ambiguous point: a ball of smaller radius around it holds the same points
    in both room types."""
    for i in range(30):
        data = generate_room((0, 0, i), num_points=2048,
                             context_distance=context_distance)
        dist = torch.cdist(data.pos[_ambiguous(data.y)],
                           data.pos[_anchor(data.y)])
        # noise is 5 mm per coordinate: 5 cm is ten standard deviations
        assert dist.min() > context_distance - 0.05


def test_local_neighbourhoods_are_identical_but_labels_differ():
    radius = 1.0  # a generous receptive field, below context_distance 1.5
    bedroom = generate_room(11, num_points=4096, room_type='bedroom')
    living = generate_room(11, num_points=4096, room_type='living room')
    centres = torch.nonzero(_ambiguous(bedroom.y)).flatten()
    near_a = torch.cdist(bedroom.pos[centres], bedroom.pos) < radius
    near_b = torch.cdist(living.pos[centres], living.pos) < radius
    assert torch.equal(near_a, near_b)  # the same neighbours ...
    cols = near_a.any(0)
    assert torch.equal(bedroom.pos[cols], living.pos[cols])  # ... same inputs
    assert torch.equal(bedroom.x[cols], living.x[cols])
    assert not _anchor(bedroom.y[cols]).any()
    assert (bedroom.y[centres] != living.y[centres]).all()  # other labels


def test_pairs_share_geometry_and_colour_across_rooms(rooms):
    """Across different rooms, the two labels of a pair have the same shape
    statistics up to translation and rotation (sorted eigenvalues of the
    horizontal covariance, height) and the same colour distribution."""

    def stats(label):
        out = []
        for data in rooms:
            for inst in data.instance[data.y == label].unique():
                m = (data.instance == inst)
                pos, rgb = data.pos[m].double(), data.x[m].double()
                xy = pos[:, :2] - pos[:, :2].mean(0)
                eig = torch.linalg.eigvalsh(xy.T @ xy / len(xy))
                out.append(torch.cat([eig, pos[:, 2].mean(0, keepdim=True),
                                      pos[:, 2].std(0, keepdim=True),
                                      rgb.mean(0), rgb.std(0)]))
        return torch.stack(out)

    for bedroom_label, living_label in AMBIGUOUS_PAIRS:
        a, b = stats(bedroom_label), stats(living_label)
        assert len(a) >= 5 and len(b) >= 5
        spread = torch.cat([a, b]).std(0) + 0.01
        assert ((a.mean(0) - b.mean(0)).abs() / spread).max() < 1.0


def test_global_context_decides(rooms):
    """What a global unit can see: whether the room holds bed points fixes
    the label of every ambiguous point."""
    for data in rooms:
        has_bed = bool((data.y == BED).any())
        for bedroom_label, living_label in AMBIGUOUS_PAIRS:
            mask = (data.y == bedroom_label) | (data.y == living_label)
            expected = bedroom_label if has_bed else living_label
            assert (data.y[mask] == expected).all()


def test_batches_with_pyg_loader():
    ds = SyntheticIndoorScenes('test', num_rooms=4, num_points=300,
                               transform=lambda d: d.update({'tag': 1}))
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.num_graphs == 4 and batch.pos.shape == (1200, 3)
    assert batch.room_type.shape == (4, ) and batch.tag.tolist() == [1] * 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="'split'"):
        SyntheticIndoorScenes('validation')
    with pytest.raises(ValueError,
                       match="^'num_points' must be an int >= 64, got 10$"):
        SyntheticIndoorScenes(num_points=10)
    with pytest.raises(TypeError, match=r"^'num_rooms' must be an int >= 1, "
                       r"got float 2\.5$"):
        SyntheticIndoorScenes(num_rooms=2.5)
    with pytest.raises(ValueError,
                       match="^'num_rooms' must be an int >= 1, got 0$"):
        SyntheticIndoorScenes(num_rooms=0)
    with pytest.raises(ValueError, match=r"^'context_distance' must be a "
                       r"finite number in \(0, 2\], got 3\.0$"):
        SyntheticIndoorScenes(context_distance=3.0)
    with pytest.raises(ValueError, match="^'seed' must be an int >= 0, "
                       "got -1$"):
        SyntheticIndoorScenes(seed=-1)
    with pytest.raises(ValueError, match=r"^'seed\[1\]' must be an int >= 0, "
                       r"got -2$"):
        generate_room([1, -2])
    with pytest.raises(ValueError, match="^'seed' must be a non-negative int"):
        generate_room([])
    with pytest.raises(TypeError, match="^'seed' must be a non-negative int"):
        generate_room(1.5)
    with pytest.raises(TypeError, match="^'seed' must be an int >= 0, got "
                       "bool True$"):
        generate_room(True)
    with pytest.raises(ValueError, match="^'room_type' must be 0, 1, "
                       "'bedroom' or 'living room', got 'kitchen'$"):
        generate_room(0, room_type='kitchen')
    with pytest.raises(ValueError, match="^'room_type' must be 0, 1, "
                       "'bedroom' or 'living room', got 2$"):
        generate_room(0, room_type=2)
    with pytest.raises(TypeError, match="^'room_type' must be 0, 1, "
                       r"'bedroom' or 'living room', got float 1\.0$"):
        generate_room(0, room_type=1.0)
    with pytest.raises(ValueError, match=r"^'noise' must be a finite number "
                       r"in \[0, 0\.1\], got -0\.1$"):
        generate_room(0, noise=-0.1)
    assert ROOM_TYPES == ('bedroom', 'living room')

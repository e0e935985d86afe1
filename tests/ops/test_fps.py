"""fps against a plain per-cloud reference loop (written here), batched with
empty, one-point and unequal clouds."""
import math

import pytest
import torch

from glore_pyg.ops import fps

# clouds of sizes sharing a power of two (33, 40, 50) run together, the
# others in groups of their own
SIZES = [7, 0, 1, 33, 40, 100, 50, 2]


def batch_of(sizes):
    return torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))


def make(sizes, dims, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(sum(sizes), dims, generator=g, dtype=dtype)


def reference(pos, start, m):
    """Farthest point sampling of one cloud, one point at a time."""
    if m == 0:
        return []
    picks = [start]
    nearest = ((pos - pos[start]) ** 2).sum(-1)
    while len(picks) < m:
        j = int(nearest.argmax())
        picks.append(j)
        nearest = torch.minimum(nearest, ((pos - pos[j]) ** 2).sum(-1))
    return picks


def expected_count(n, ratio):
    return int(torch.ceil(torch.tensor(n, dtype=torch.float32)
                          * torch.tensor(ratio, dtype=torch.float32)))


def split(out, pos, sizes, ratio):
    """Our picks, cloud by cloud, as local indices; checks the counts and
    that each cloud's picks are its own."""
    begins = [0] + torch.tensor(sizes).cumsum(0).tolist()
    counts = [expected_count(n, ratio) for n in sizes]
    assert out.dtype == torch.long and out.numel() == sum(counts)
    at, result = 0, []
    for b, (n, m) in enumerate(zip(sizes, counts)):
        local = out[at:at + m] - begins[b]
        assert bool(((local >= 0) & (local < n)).all())
        result.append(local.tolist())
        at += m
    return result


@pytest.mark.parametrize('dims', [2, 3])
@pytest.mark.parametrize('ratio', [0.25, 0.3, 0.5, 1.0])
def test_deterministic_matches_reference(dims, ratio):
    pos = make(SIZES, dims, seed=dims)
    out = fps(pos, batch_of(SIZES), ratio=ratio, random_start=False)
    begins = [0] + torch.tensor(SIZES).cumsum(0).tolist()
    for b, picks in enumerate(split(out, pos, SIZES, ratio)):
        cloud = pos[begins[b]:begins[b + 1]]
        assert picks == reference(cloud, 0, len(picks))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_start_is_a_valid_sequence(seed):
    pos = make(SIZES, 3, seed=10 + seed)
    torch.manual_seed(seed)
    out = fps(pos, batch_of(SIZES), ratio=0.5)
    torch.manual_seed(seed)
    assert torch.equal(out, fps(pos, batch_of(SIZES), ratio=0.5))
    begins = [0] + torch.tensor(SIZES).cumsum(0).tolist()
    for b, picks in enumerate(split(out, pos, SIZES, 0.5)):
        if picks:
            cloud = pos[begins[b]:begins[b + 1]]
            assert picks == reference(cloud, picks[0], len(picks))


def test_random_start_varies():
    pos = make([100], 2)
    starts = set()
    for seed in range(8):
        torch.manual_seed(seed)
        starts.add(int(fps(pos, ratio=0.1)[0]))
    assert len(starts) > 2


def test_count_is_ceil_in_float32():
    """pyg-lib / torch_cluster take ceil(n * ratio) in float32: 25 * 0.6 is
    16 there (float32(0.6) is a little above 0.6), 15 in float64."""
    assert math.ceil(25 * 0.6) == 15
    assert fps(make([25], 2), ratio=0.6, random_start=False).numel() == 16
    assert fps(make([7], 2), ratio=0.5).numel() == 4
    assert fps(make([5], 2), ratio=1.0, random_start=False).tolist() == \
        reference(make([5], 2), 0, 5)


def test_small_examples():
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    assert fps(x, ratio=0.5, random_start=False).tolist() == [0, 3]
    line = torch.tensor([[0.0], [1.0], [2.0], [10.0], [4.0]])
    assert fps(line, ratio=0.6, random_start=False).tolist() == [0, 3, 4]


def test_shapes_dtypes_and_empty():
    pos = make([6, 5], 3, dtype=torch.float32)
    b = batch_of([6, 5])
    out = fps(pos, b, 0.5, False)
    assert out.dtype == torch.long and out.tolist()[0] == 0
    # more dimensions are flattened, a 1-D tensor is a column
    assert torch.equal(fps(pos.view(11, 3, 1), b, 0.5, False), out)
    assert fps(torch.arange(4.0), ratio=0.5, random_start=False).tolist() == \
        [0, 3]
    assert fps(torch.empty(0, 3), ratio=0.5).shape == (0,)
    assert torch.equal(fps(pos, b, 0.5, False, batch_size=4), out)
    half = fps(pos.half(), b, 0.5, False)
    assert half.numel() == out.numel()

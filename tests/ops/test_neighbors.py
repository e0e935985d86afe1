"""knn and radius against brute force (a ``torch.cdist`` per cloud, written
here independently of ``glore_pyg.ops``) on batched clouds with empty and
one-point clouds, in 2-D and 3-D, through every fallback path: scipy's
trees, the torch path, and the torch path in tiny chunks."""
import contextlib
import random

import pytest
import torch

from glore_pyg.ops import _backend, _neighbors, knn, radius
from glore_pyg.ops._clouds import Layout, blocks

# points per cloud of x and of y: queries over an empty x cloud (1),
# one-point clouds (2 in x, 0 and 2 ... in y), an empty query cloud (4), a
# larger cloud (5)
SIZES_X = [5, 0, 1, 17, 3, 40]
SIZES_Y = [4, 3, 2, 9, 0, 25]

# (forced implementation, chunk budget): None is the dispatch
PATHS = [('scipy', None), ('scipy', 3), ('torch', None), ('torch', 1),
         ('torch', 7), ('torch', 60), (None, None)]
PATH_IDS = ['scipy', 'scipy-chunk3', 'torch', 'torch-chunk1', 'torch-chunk7',
            'torch-chunk60', 'dispatch']


def batch_of(sizes):
    return torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))


def make(sizes, dims, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(sum(sizes), dims, generator=g, dtype=dtype)


@contextlib.contextmanager
def path(name, chunk=None):
    """Force implementation ``name`` (None: the dispatch), optionally with a
    tiny chunk budget."""
    old = _backend.CHUNK_ENTRIES
    if chunk is not None:
        _backend.CHUNK_ENTRIES = chunk
    try:
        with _backend.forced(name):
            yield
    finally:
        _backend.CHUNK_ENTRIES = old


def brute(x, y, batch_x, batch_y, k, r=None, cosine=False):
    """{query: sorted distances of its expected neighbours}."""
    if cosine:
        x = torch.nn.functional.normalize(x, dim=1)
        y = torch.nn.functional.normalize(y, dim=1)
    out = {}
    for j in range(y.size(0)):
        cand = (batch_x == batch_y[j]).nonzero().view(-1)
        d = torch.cdist(y[j:j + 1].double(), x[cand].double(),
                        compute_mode='donot_use_mm_for_euclid_dist')[0]
        if r is not None:
            d = d[d < r]
        out[j] = d.sort().values[:k]
    return out


def check_edges(edges, x, y, batch_x, batch_y, k, r=None, cosine=False,
                atol=1e-10):
    """Per query: neighbours of its cloud, by increasing distance, whose
    distances are the brute-force ones (indices may differ on ties);
    queries in increasing order."""
    assert edges.dtype == torch.long and edges.dim() == 2
    assert edges.size(0) == 2
    row, col = edges
    assert bool((row[1:] >= row[:-1]).all()), 'not grouped by query'
    ref = brute(x, y, batch_x, batch_y, k, r, cosine)
    if cosine:
        x = torch.nn.functional.normalize(x, dim=1)
        y = torch.nn.functional.normalize(y, dim=1)
    assert sum(v.numel() for v in ref.values()) == row.numel()
    for j, expected in ref.items():
        nbrs = col[row == j]
        assert nbrs.unique().numel() == nbrs.numel(), 'duplicate neighbour'
        assert bool((batch_x[nbrs] == batch_y[j]).all()), 'other cloud'
        d = (x[nbrs].double() - y[j].double()).norm(dim=1)
        assert bool((d[1:] >= d[:-1] - atol).all()), 'not by distance'
        torch.testing.assert_close(d, expected, atol=atol, rtol=0)


# ---------------------------------------------------------------------- knn
@pytest.mark.parametrize('name,chunk', PATHS, ids=PATH_IDS)
@pytest.mark.parametrize('dims', [2, 3])
@pytest.mark.parametrize('k', [1, 4, 50])
def test_knn_matches_brute_force(name, chunk, dims, k):
    x, y = make(SIZES_X, dims, seed=1), make(SIZES_Y, dims, seed=2)
    bx, by = batch_of(SIZES_X), batch_of(SIZES_Y)
    with path(name, chunk):
        edges = knn(x, y, k, bx, by)
    check_edges(edges, x, y, bx, by, k)


@pytest.mark.parametrize('name,chunk', PATHS, ids=PATH_IDS)
def test_knn_cosine(name, chunk):
    x, y = make(SIZES_X, 3, seed=3) - 0.5, make(SIZES_Y, 3, seed=4) - 0.5
    bx, by = batch_of(SIZES_X), batch_of(SIZES_Y)
    with path(name, chunk):
        edges = knn(x, y, 3, bx, by, cosine=True)
    check_edges(edges, x, y, bx, by, 3, cosine=True)


@pytest.mark.parametrize('name', ['scipy', 'torch'])
def test_knn_float32_single_cloud_and_workers(name):
    x, y = make([300], 3, torch.float32, 5), make([70], 3, torch.float32, 6)
    with path(name):
        edges = knn(x, y, 8, num_workers=2)
    assert edges.shape == (2, 70 * 8)
    zeros = torch.zeros(300, dtype=torch.long)
    check_edges(edges, x, y, zeros, zeros[:70], 8, atol=1e-5)


@pytest.mark.parametrize('name', ['scipy', 'torch'])
def test_knn_self_query_finds_itself_first(name):
    x = make([6, 9], 2)
    b = batch_of([6, 9])
    with path(name):
        row, col = knn(x, x, 1, b, b)
    assert torch.equal(row, torch.arange(15))
    assert torch.equal(col, torch.arange(15))


@pytest.mark.parametrize('name', ['scipy', 'torch'])
def test_one_batch_vector_puts_the_other_set_in_cloud_0(name):
    x = make([10], 2)
    y = make([3, 4], 2, seed=9)
    by = batch_of([3, 4])
    with path(name):
        edges = knn(x, y, 2, None, by)
        back = knn(y, x, 2, by, None)
    zeros = torch.zeros(10, dtype=torch.long)
    check_edges(edges, x, y, zeros, by, 2)
    assert edges.size(1) == 3 * 2  # cloud 1 has no points
    check_edges(back, y, x, by, zeros, 2)


@pytest.mark.parametrize('name', ['scipy', 'torch'])
def test_batch_size_and_trailing_empty_clouds(name):
    x, y = make([4, 3], 2), make([2, 2], 2, seed=3)
    bx, by = batch_of([4, 3]), batch_of([2, 2])
    with path(name):
        a = knn(x, y, 2, bx, by)
        b = knn(x, y, 2, bx, by, batch_size=5)
    assert torch.equal(a, b)


@pytest.mark.parametrize('name', ['scipy', 'torch', None])
def test_empty_inputs(name):
    full, empty = make([4], 3), torch.empty(0, 3, dtype=torch.float64)
    with path(name):
        for a, b in [(full, empty), (empty, full), (empty, empty)]:
            for out in (knn(a, b, 2), radius(a, b, 0.5)):
                assert out.shape == (2, 0) and out.dtype == torch.long
        out = knn(full, full, 2, torch.zeros(4, dtype=torch.long),
                  torch.zeros(4, dtype=torch.long), batch_size=3)
        assert out.shape == (2, 8)


@pytest.mark.parametrize('name', ['scipy', 'torch'])
def test_one_dimensional_positions_are_columns(name):
    x = torch.tensor([0.0, 1.0, 5.0, 5.5])
    y = torch.tensor([0.9, 5.4])
    with path(name):
        row, col = knn(x, y, 1)
    assert row.tolist() == [0, 1] and col.tolist() == [1, 3]


# ------------------------------------------------------------------- radius
@pytest.mark.parametrize('name,chunk', PATHS, ids=PATH_IDS)
@pytest.mark.parametrize('dims,r', [(2, 0.3), (3, 0.45)])
@pytest.mark.parametrize('max_nn', [1, 3, 1000])
def test_radius_matches_brute_force(name, chunk, dims, r, max_nn):
    x, y = make(SIZES_X, dims, seed=7), make(SIZES_Y, dims, seed=8)
    bx, by = batch_of(SIZES_X), batch_of(SIZES_Y)
    with path(name, chunk):
        edges = radius(x, y, r, bx, by, max_num_neighbors=max_nn)
    check_edges(edges, x, y, bx, by, max_nn, r=r)
    if max_nn == 1000:
        assert edges.size(1) > 20  # the radius did find neighbours


@pytest.mark.parametrize('name,chunk', PATHS, ids=PATH_IDS)
@pytest.mark.parametrize('max_nn', [2, 3, 1000])
def test_radius_counting_pass(name, chunk, max_nn, monkeypatch):
    """A ``max_num_neighbors`` above ``_COUNT_FIRST`` first counts the
    points within ``r`` (lowered here so that small clouds take it)."""
    monkeypatch.setattr(_neighbors, '_COUNT_FIRST', 2)
    x, y = make(SIZES_X, 3, seed=17), make(SIZES_Y, 3, seed=18)
    bx, by = batch_of(SIZES_X), batch_of(SIZES_Y)
    with path(name, chunk):
        edges = radius(x, y, 0.4, bx, by, max_num_neighbors=max_nn)
        none = radius(x, y, 1e-9, bx, by, max_num_neighbors=max_nn)
    check_edges(edges, x, y, bx, by, max_nn, r=0.4)
    assert none.shape == (2, 0)


@pytest.mark.parametrize('name', ['scipy', 'torch'])
def test_radius_large_clouds_many_neighbours(name):
    sx, sy = [300, 0, 150], [30, 5, 20]
    x, y = make(sx, 3, seed=19), make(sy, 3, seed=20)
    bx, by = batch_of(sx), batch_of(sy)
    with path(name, 5000):
        for max_nn in (200, 10 ** 6):
            edges = radius(x, y, 0.6, bx, by, max_num_neighbors=max_nn)
            check_edges(edges, x, y, bx, by, max_nn, r=0.6)
        assert edges.size(1) > 200 * 5


@pytest.mark.parametrize('name,chunk', PATHS, ids=PATH_IDS)
def test_radius_is_strict(name, chunk):
    """Distance exactly ``r`` is out (torch_cluster's ``d^2 < r^2``)."""
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    y = torch.tensor([[0.0, 0.0]])
    with path(name, chunk):
        assert sorted(radius(x, y, 5.0)[1].tolist()) == [0, 3]
        assert sorted(radius(x, y, 5.001)[1].tolist()) == [0, 1, 3]
        assert radius(x, y, 5.001, max_num_neighbors=2)[1].tolist() == [0, 3]


def test_radius_truncation_keeps_the_nearest_on_a_line():
    x = torch.arange(20.0).view(-1, 1)
    y = torch.tensor([[9.9]])
    for name in ('scipy', 'torch'):
        with path(name):
            col = radius(x, y, 5.0, max_num_neighbors=4)[1]
        assert col.tolist() == [10, 9, 11, 8]


def test_backends_agree_on_large_cloud_with_chunks():
    """A cloud larger than the chunk budget, scipy vs torch in chunks."""
    x, y = make([500, 300], 3, torch.float32, 11), make([200, 100], 3,
                                                         torch.float32, 12)
    bx, by = batch_of([500, 300]), batch_of([200, 100])
    with path('scipy'):
        a = radius(x, y, 0.2, bx, by, 64)
        ka = knn(x, y, 16, bx, by)
    with path('torch', 1000):
        b = radius(x, y, 0.2, bx, by, 64)
        kb = knn(x, y, 16, bx, by)
    assert torch.equal(a[0], b[0]) and torch.equal(ka[0], kb[0])
    # continuous random points: no ties, so the same neighbours
    assert torch.equal(a[1], b[1]) and torch.equal(ka[1], kb[1])


# ------------------------------------------------------------ chunk layout
@pytest.mark.parametrize('seed', range(20))
def test_blocks_cover_each_same_cloud_pair_once(seed):
    rnd = random.Random(seed)
    num = rnd.randint(1, 7)
    sx = [rnd.choice([0, 1, 2, 5, 13]) for _ in range(num)]
    sy = [rnd.choice([0, 1, 3, 8]) for _ in range(num)]
    budget = rnd.choice([1, 4, 10, 30, 1000])
    bx, by = batch_of(sx), batch_of(sy)
    ptr_x = [0] + torch.tensor(sx).cumsum(0).tolist()
    ptr_y = [0] + torch.tensor(sy).cumsum(0).tolist()
    lay = Layout(num, ptr_x, ptr_y, bx, by)
    covered = torch.zeros(sum(sy), sum(sx), dtype=torch.long)
    last = 0
    for y0, y1, x0, x1, mixed in blocks(lay, budget):
        assert y0 >= last  # in query order, rows never revisited
        last = y1
        assert (y1 - y0) * (x1 - x0) <= budget or y1 - y0 == 1
        same = by[y0:y1, None] == bx[None, x0:x1]
        assert mixed or bool(same.all())
        covered[y0:y1, x0:x1] += same.long()
    assert torch.equal(covered, (by[:, None] == bx[None, :]).long())

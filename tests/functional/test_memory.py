"""functional.memory: the buffer cache and huge-page advice behind the units'
large CPU buffers."""
import importlib
import threading

import pytest
import torch

from glore_pyg.functional import memory

BIG = memory.CACHE_MIN_BYTES // 4 + 1024  # float32 elements: a cached
# buffer


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache at the default limit."""
    limit = memory.cache_limit()
    memory.set_cache_limit(0)
    memory.set_cache_limit(limit)
    yield
    memory.set_cache_limit(0)
    memory.set_cache_limit(limit)


@pytest.fixture
def no_cache():
    previous = memory.set_cache_limit(0)
    yield
    memory.set_cache_limit(previous)


@pytest.fixture
def advice(monkeypatch):
    """Records madvise calls instead of making them (any platform)."""
    calls = []
    monkeypatch.setattr(memory, '_probed', True)
    monkeypatch.setattr(memory, '_madvise',
                        lambda addr, size, flag: calls.append(
                            (addr, size, flag)) or 0)
    monkeypatch.setattr(memory, '_enabled', True)
    return calls


def test_empty_takes_dtype_and_device_of_like():
    like = torch.zeros(2, dtype=torch.float64)
    t = memory.empty((3, 4), like)
    assert t.shape == (3, 4) and t.dtype == torch.float64
    assert t.device == like.device


@pytest.mark.parametrize('cached', [True, False])
def test_large_buffer_advised_on_its_aligned_interior(advice, cached,
                                                      monkeypatch):
    if not cached:
        monkeypatch.setattr(memory._cache, 'limit', 0)
    like = torch.zeros(1)
    # uncached: above glibc's largest mmap threshold (32 MB), so always fresh
    # memory (a reused heap block gets no advice)
    t = memory.empty(((BIG if cached else (33 << 20) // 4) + 12345, ), like)
    assert (sum(memory.cached_bytes()) > 0) == cached
    (addr, size, flag), = advice
    start, nbytes = t.data_ptr(), t.untyped_storage().nbytes()
    H = memory.HUGE_PAGE
    assert flag == 14  # MADV_HUGEPAGE
    assert addr % H == 0 and size % H == 0 and size > 0
    assert start <= addr and addr - start < H  # first aligned byte
    assert addr + size <= start + nbytes < addr + size + H


def test_small_buffers_switch_off_and_compile_are_left_alone(
        advice, monkeypatch):
    like = torch.zeros(1)
    memory.empty((memory.MIN_BYTES // 4 - 1, ), like)
    assert advice == []
    previous = memory.set_huge_pages(False)
    assert previous is True
    memory.empty((memory.MIN_BYTES // 4 + 1, ), like)
    assert advice == [] and not memory.huge_pages_available()
    assert memory.set_huge_pages(True) is False
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    memory.empty((memory.MIN_BYTES // 4 + 1, ), like)
    assert advice == []


def test_out_buffer_only_outside_grad_mode():
    like = torch.zeros(1)
    with torch.enable_grad():
        assert memory.out_buffer((2, 3), like) is None
    with torch.no_grad():
        assert memory.out_buffer((2, 3), like).shape == (2, 3)


def test_environment_switch(monkeypatch):
    monkeypatch.setenv('GLORE_PYG_HUGE_PAGES', '0')
    try:
        importlib.reload(memory)
        assert not memory.huge_pages_available()
    finally:
        monkeypatch.delenv('GLORE_PYG_HUGE_PAGES')
        importlib.reload(memory)
    assert memory._enabled


def vm_flags(address):
    with open('/proc/self/smaps') as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if '-' in head and ':' not in head:
                lo, hi = (int(v, 16) for v in head.split('-'))
                inside = lo <= address < hi
            elif inside and head == 'VmFlags:':
                return line.split()[1:]
    return None


@pytest.mark.skipif(not memory.huge_pages_available(),
                    reason='no transparent huge pages in madvise mode')
def test_kernel_marks_the_buffer_for_huge_pages():
    t = memory.empty((64 << 20 >> 2, ), torch.zeros(1))  # 64 MiB
    H = memory.HUGE_PAGE
    first = -(-t.data_ptr() // H) * H
    assert 'hg' in vm_flags(first)  # VM_HUGEPAGE
    t.fill_(1.5)  # the memory behaves as any other
    assert t.sum().item() == 1.5 * t.numel()


def test_resident_memory_is_not_advised(advice, monkeypatch):
    monkeypatch.setattr(memory, '_fresh', lambda address: False)
    memory.empty((memory.MIN_BYTES // 4 + 1, ), torch.zeros(1))
    assert advice == []


@pytest.mark.skipif(not memory.huge_pages_available(),
                    reason='no transparent huge pages in madvise mode')
def test_fresh_tells_untouched_from_resident_pages():
    t = torch.empty(64 << 20 >> 2)  # 64 MiB: mapped, untouched
    H = memory.HUGE_PAGE
    first = -(-t.data_ptr() // H) * H
    assert memory._fresh(first)
    t.fill_(0)
    assert not memory._fresh(first)


# The buffer cache

def test_freed_buffer_is_handed_out_again_and_live_one_is_not():
    like = torch.zeros(1)
    a = memory.empty((BIG, 3), like)
    address = a.data_ptr()
    b = memory.empty((BIG, 3), like)  # a is alive: another buffer
    assert b.data_ptr() != address
    del a
    c = memory.empty((BIG, 3), like)
    assert c.data_ptr() == address and c.shape == (BIG, 3)
    assert memory.cached_bytes()[1] == 0  # both in use


def test_best_fit_never_larger():
    # the smallest free buffer that holds a request serves it, however much
    # smaller the request; a larger request gets a new buffer
    like = torch.zeros(1)
    a = memory.empty((BIG * 4, ), like)
    b = memory.empty((BIG * 2, ), like)
    big, mid = a.data_ptr(), b.data_ptr()
    capacity = a.untyped_storage().nbytes()
    assert capacity >= BIG * 16 and capacity % memory.HUGE_PAGE == 0
    del a, b
    small = memory.empty((BIG, ), like)  # both hold it: the smaller one
    assert small.data_ptr() == mid
    other = memory.empty((BIG, ), like)  # the larger one, already resident
    assert other.data_ptr() == big
    del small, other
    larger = memory.empty((capacity // 4 + 1, ), like)
    assert larger.data_ptr() not in (big, mid)


def test_views_and_saved_tensors_keep_a_buffer_in_use():
    like = torch.zeros(1)
    a = memory.empty((BIG, ), like)
    address = a.data_ptr()
    view = a[10:20]
    del a
    assert memory.empty((BIG, ), like).data_ptr() != address
    del view
    w = torch.ones(BIG, requires_grad=True)
    b = memory.empty((BIG, ), like).fill_(2.0)
    assert b.data_ptr() == address
    loss = (w * b).sum()  # autograd saves b
    del b
    taken = memory.empty((BIG, ), like).fill_(-1.0)
    assert taken.data_ptr() != address
    loss.backward()
    assert torch.equal(w.grad, torch.full((BIG, ), 2.0))


def test_buffer_serves_other_dtypes():
    a = memory.empty((BIG, ), torch.zeros(1))
    address = a.data_ptr()
    del a
    d = memory.empty((BIG // 2, ), torch.zeros(1, dtype=torch.float64))
    assert d.data_ptr() == address and d.dtype == torch.float64
    d.fill_(0.25)
    assert d.sum().item() == 0.25 * (BIG // 2)


def test_limit_releases_least_recently_used_free_buffers():
    like = torch.zeros(1)
    first = memory.empty((BIG, ), like)
    second = memory.empty((BIG * 2, ), like)
    third = memory.empty((BIG * 3, ), like)
    sizes = [t.untyped_storage().nbytes() for t in (first, second, third)]
    addresses = [t.data_ptr() for t in (first, second, third)]
    del first, second, third  # recency: when the cache handed them out
    assert memory.cached_bytes() == (0, sum(sizes))
    memory.set_cache_limit(sizes[1] + sizes[2])
    assert memory.cached_bytes() == (0, sizes[1] + sizes[2])
    # the least recently used went; the other two serve their sizes
    two = memory.empty((BIG * 2, ), like)
    three = memory.empty((BIG * 3, ), like)
    assert [two.data_ptr(), three.data_ptr()] == addresses[1:]
    assert memory.cached_bytes() == (sizes[1] + sizes[2], 0)


def test_empty_cache_keeps_buffers_in_use():
    like = torch.zeros(1)
    kept = memory.empty((BIG, ), like)
    memory.empty((BIG * 2, ), like)  # freed at once
    in_use, free = memory.cached_bytes()
    assert in_use == kept.untyped_storage().nbytes() and free > 0
    memory.empty_cache()
    assert memory.cached_bytes() == (in_use, 0)
    address = kept.data_ptr()
    del kept
    assert memory.empty((BIG, ), like).data_ptr() == address


def test_limit_zero_switches_the_cache_off(no_cache):
    like = torch.zeros(1)
    a = memory.empty((BIG, ), like)
    assert memory.cached_bytes() == (0, 0)
    assert memory.cache_limit() == 0
    del a


def test_limit_argument_is_checked():
    for bad in (-1, 1.5, True, '1'):
        with pytest.raises(ValueError, match="'nbytes'"):
            memory.set_cache_limit(bad)


def test_environment_sets_the_limit(monkeypatch):
    try:
        monkeypatch.setenv('GLORE_PYG_BUFFER_CACHE', '0')
        importlib.reload(memory)
        assert memory.cache_limit() == 0
        for bad in ('2G', '-1'):
            monkeypatch.setenv('GLORE_PYG_BUFFER_CACHE', bad)
            with pytest.raises(ValueError, match='GLORE_PYG_BUFFER_CACHE'):
                importlib.reload(memory)
    finally:
        monkeypatch.delenv('GLORE_PYG_BUFFER_CACHE')
        importlib.reload(memory)
    assert memory.cache_limit() == 2 << 30


def test_not_cached_small_meta_fake_compile_and_deterministic(monkeypatch):
    like = torch.zeros(1)
    memory.empty((memory.CACHE_MIN_BYTES // 4, ), like)  # not more than it
    memory.empty((BIG, ), torch.zeros(1, device='meta'))
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode:
        fake = memory.empty((BIG, ), mode.from_tensor(like))
    assert type(fake) is not torch.Tensor
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        filled = memory.empty((BIG, ), like)
        assert torch.isnan(filled).all()  # as torch.empty fills it
    finally:
        torch.use_deterministic_algorithms(previous)
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    memory.empty((BIG, ), like)
    assert memory.cached_bytes() == (0, 0)


def test_threads_never_share_a_live_buffer():
    like = torch.zeros(1)
    errors = []

    def work(tag):
        for i in range(30):
            t = memory.empty((BIG, ), like).fill_(tag)
            other = memory.empty((BIG + (i % 3) * 1000, ), like).fill_(-tag)
            if not (t == tag).all() or not (other == -tag).all():
                errors.append(tag)

    threads = [threading.Thread(target=work, args=(k + 1.0, ))
               for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    in_use, free = memory.cached_bytes()
    # each thread holds at most four at once (two, and the next two)
    assert in_use == 0 and free <= 16 * (BIG * 4 + memory.HUGE_PAGE)


def test_unit_values_do_not_depend_on_the_cache_and_steps_reuse_it():
    from glore_pyg.nn import LatentGNNConv
    torch.manual_seed(0)
    unit = LatentGNNConv(64, [8, 8], channel_stride=1)
    with torch.no_grad():
        unit.gamma.fill_(0.5)
    x = torch.randn(140000, 64)  # [N, 64] float32 buffers: 36 MB
    batch = torch.cat([torch.zeros(50000), torch.ones(90000)]).long()

    def step():
        xg = x.clone().requires_grad_()
        out = unit(xg, batch)
        (out * torch.linspace(-1, 1, 64)).sum().backward()
        grads = [p.grad.clone() for p in unit.parameters()]
        unit.zero_grad()
        # copies: the step's own tensors go back to the cache
        return out.detach().clone(), xg.grad.clone(), grads

    previous = memory.set_cache_limit(0)
    plain = step()
    memory.set_cache_limit(previous)
    first = step()
    cached = sum(memory.cached_bytes())
    assert cached > 0
    second = step()
    assert sum(memory.cached_bytes()) == cached  # all served from the cache
    for run in (first, second):
        torch.testing.assert_close(run[0], plain[0], rtol=0, atol=0)
        torch.testing.assert_close(run[1], plain[1], rtol=0, atol=0)
        for a, b in zip(run[2], plain[2]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_varying_sizes_keep_free_buffers_within_the_limit():
    like = torch.zeros(1)
    memory.set_cache_limit(3 * BIG * 4)
    generator = torch.Generator().manual_seed(0)
    alive = []
    for step in range(40):
        n = BIG + int(torch.randint(0, BIG, (1, ), generator=generator))
        alive.append(memory.empty((n, ), like).fill_(step))
        if len(alive) > 2:
            alive.pop(0)
        in_use, free = memory.cached_bytes()
        # the limit holds at each call; the buffer freed since is extra
        assert free <= 3 * BIG * 4 + 2 * (BIG * 4 + memory.HUGE_PAGE)
        assert all((t == step - len(alive) + 1 + i).all()
                   for i, t in enumerate(alive))
    alive.clear()
    memory.empty((BIG, ), like)  # a call applies the limit again
    assert memory.cached_bytes()[1] <= 3 * BIG * 4 + BIG * 4 + \
        memory.HUGE_PAGE


def test_unit_in_inference_mode_with_the_cache():
    from glore_pyg.nn import LatentGNNConv
    torch.manual_seed(0)
    unit = LatentGNNConv(64, [8], channel_stride=1).eval()
    with torch.no_grad():
        unit.gamma.fill_(0.5)
    x = torch.randn(140000, 64)  # [N, 64] float32: 36 MB, cached
    previous = memory.set_cache_limit(0)
    with torch.inference_mode():
        plain = unit(x)
    memory.set_cache_limit(previous)
    with torch.inference_mode():
        first = unit(x).clone()
        second = unit(x)
    assert sum(memory.cached_bytes()) > 0
    assert torch.equal(first, plain) and torch.equal(second, plain)

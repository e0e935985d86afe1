"""functional.memory: huge-page advice on the units' large CPU buffers."""
import importlib

import pytest
import torch

from glore_pyg.functional import memory


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


def test_large_buffer_advised_on_its_aligned_interior(advice):
    like = torch.zeros(1)
    t = memory.empty((memory.MIN_BYTES // 4 + 12345, ), like)
    (addr, size, flag), = advice
    start, nbytes = t.data_ptr(), t.numel() * 4
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

"""The benchmark suite runs end to end on tiny sizes (its numbers are not
asserted), and its references compute what our units compute."""
import pytest
import torch

from tests.scripts import load

suite = load('benchmarks/suite.py')

ROWS = [f'grid-{u}{f}-{m}' for u in ('latentgnn', 'glore')
        for f in ('', '-cl') for m in ('time', 'compiled', 'memory')]
ROWS += [f'clouds-{u}-{m}' for u in ('latentgnn', 'glore')
         for m in ('naive', 'compiled', 'time', 'memory')]
ROWS += ['clouds-latentgnn-attention', 'clouds-latentgnn-attention-memory']
ROWS += ['scale-lean', 'scale-plain-1m', 'scale-dense-1m', 'scale-lean-1m',
         'nonlocal-max-n', 'nonlocal-latentgnn-memory']


@pytest.mark.slow  # 136 s on 2 CPU cores
def test_quick_suite_has_every_row(capsys):
    rows = suite.main(['--quick'])
    assert sorted(r['key'] for r in rows) == sorted(ROWS)
    out = capsys.readouterr().out
    for r in rows:
        assert r['comparison'] in out
        assert (r['target'] is None) == (r['met'] is None)
    # float32 outputs of ours vs dense (eager and compiled), padded and
    # naive references, and of the compiled units vs eager
    diffs = [r['diff'] for r in rows if r['diff'] is not None]
    assert len(diffs) == 14 and max(diffs) < 1e-4


@pytest.mark.slow  # 13 s
def test_only_runs_the_chosen_sections():
    rows = suite.main(['--quick', '--only', 'grid'])
    assert sorted(r['key'] for r in rows) == sorted(
        k for k in ROWS if k.startswith('grid-'))
    with pytest.raises(SystemExit):
        suite.main(['--quick', '--only', 'grid,nope'])
    with pytest.raises(SystemExit):
        suite.main(['--quick', '--only', 'grid', '--write'])


CASES = [('grid', unit, 'dense') for unit in ('latentgnn', 'glore')]
CASES += [('clouds', unit, ref) for unit in ('latentgnn', 'glore')
          for ref in ('padded', 'naive')]


@pytest.mark.parametrize('case,unit,ref', CASES)
def test_reference_matches_unit_float64(case, unit, ref):
    """Outputs and input gradients, in float64."""
    size = dict(suite.QUICK[case], C=12, d=5)
    ours, make = suite.build(case, 'ours', unit, **size)
    other = suite.build(case, ref, unit, **size)[0]
    grads = []
    for module in (ours.double(), other.double()):
        x, *rest = make(False)
        x = x.detach().double().requires_grad_()
        out = module(x, *rest)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(
            out)).sum().backward()
        grads.append((out.detach(), x.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


LEAKY = '''
import torch


class Leaky(torch.nn.Module):
    """Keeps a new 64 MB tensor alive at every call."""
    def __init__(self):
        super().__init__()
        self.kept, self.w = [], torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        if x.numel() > 1:
            self.kept.append(torch.ones(16 << 20))
        return x * self.w


def build():
    return Leaky(), lambda tiny: (torch.ones(1 if tiny else 4,
                                             requires_grad=True), )
'''


def test_peak_rss_counts_every_step(tmp_path):
    """The peak over several steps, and the first step's on its own."""
    peak_rss = suite.peak_rss  # measure as the suite imported it
    path = tmp_path / 'leaky.py'
    path.write_text(LEAKY)
    one = peak_rss((str(path), 'build'), {}, 4 << 30)
    three = peak_rss((str(path), 'build'), {}, 4 << 30, steps=3)
    assert one['ok'] and three['ok'], (one, three)
    mb = 1 << 20
    assert one['increment'] == one['first_increment']
    assert 60 * mb < one['increment'] < 100 * mb
    assert 60 * mb < three['first_increment'] < 100 * mb
    # two more 64 MB tensors
    assert 120 * mb < three['increment'] - three['first_increment'] < 140 * mb
    with pytest.raises(ValueError,
                       match="^'steps' must be an int >= 1, got 0$"):
        peak_rss((str(path), 'build'), {}, 4 << 30, steps=0)
    with pytest.raises(TypeError, match=r"^'steps' must be an int >= 1, "
                       r"got float 2\.0$"):
        peak_rss((str(path), 'build'), {}, 4 << 30, steps=2.0)


@pytest.mark.slow  # 39 s
def test_allocator_script_runs_every_setting():
    """benchmarks/allocators.py on tiny sizes: a row per case and allocator
    setting (skipped where the library is not installed)."""
    allocators = load('benchmarks/allocators.py')
    results = allocators.main(['--quick', '--steps', '1'])
    assert set(results) == {(case, name) for case in allocators.CASES
                            for name in allocators.SETTINGS}
    for (case, name), r in results.items():
        if r is None:  # LD_PRELOAD library missing on this machine
            assert 'LD_PRELOAD' in allocators.SETTINGS[name]
            continue
        assert r['seconds'] > 0 and r['peak'] >= 0

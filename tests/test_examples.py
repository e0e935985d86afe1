"""The README's main command and the benchmark script keep working (tiny
sizes; their numbers are not asserted, only that they run and agree)."""
import re

import pytest

from tests.scripts import load


def test_quickstart_runs(capsys):
    load('examples/quickstart.py').main(['--steps', '2'])
    out = capsys.readouterr().out
    assert re.search(r'MLP \+ LatentGNNConv accuracy:\s+[01]\.\d{3}', out)
    # a freshly inserted unit leaves the CNN's output unchanged
    assert out.count('unchanged at insertion: True') == 2


def test_fused_vs_naive_benchmark_runs(capsys):
    load('benchmarks/fused_vs_naive.py').main(
        ['--clouds', '2', '--points', '40', '--channels', '4', '--latent',
         '3', '--repeat', '1'])
    out = capsys.readouterr().out
    err = float(re.search(r'max \|fused - naive\| = (\S+)', out).group(1))
    assert err < 1e-4
    assert re.search(r'naive / fused time ratio: [\d.]+x', out)


@pytest.mark.slow  # trains four CNNs
def test_cnn_insertion_example_runs(tmp_path, capsys):
    pytest.importorskip('lightning')
    pytest.importorskip('sklearn')
    load('examples/cnn_insertion.py').main(
        ['--epochs', '1', '--train-size', '64', '--val-size', '32', '--out',
         str(tmp_path)])
    out = capsys.readouterr().out
    # multiply-adds: 817,889,280 FLOPs / 2
    assert '| layer3.1 | GloRe2d | 1024 | 1.641M | 0.4089 |' in out
    for name in ('baseline', '+GloRe', '+LatentGNN', '+non-local'):
        assert re.search(rf'\| {re.escape(name)} \| [\d,]+ \| [\d.]+M \| '
                         r'[01]\.\d{3} \|', out), name
    assert out.count('wrote ') == 3
    assert (tmp_path / 'GloRe' / 'pictures' / 'latent_graph.png').exists()

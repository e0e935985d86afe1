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


def _collective_bytes(S, C=64, d=64, c=16, item=8):
    """docs/scaling.md's bytes per training step of the example's network
    (each process's collective inputs, forward + backward): the metadata
    all-gather of each unit, LatentGNN's chunk moments (float64) and latent
    sums, GloRe's latent sums and node counts, and the BatchNorms."""
    meta = 7 * 8

    def batchnorm(F):  # DistributedBatchNorm: [F + 1] and [F], twice
        return 2 * (2 * F + 1) * item

    latentgnn = (meta + 2 * 8 * (2 * 2 * c + 2 * 2 * d + 2 * C) +
                 2 * item * S * d * (c + 1) + 8 * S)
    glore = meta + 2 * item * S * d * (2 * d) + 8 * S + batchnorm(C)
    return latentgnn + glore + batchnorm(C)  # + the per-point BatchNorm


def test_sharded_cloud_example_on_two_processes(tmp_path, capsys):
    load('examples/sharded_cloud.py').main(
        ['--points', '3000', '--chunk-size', '512', '--steps', '2',
         '--double', '--processes', '1,2', '--timeout', '240', '--out',
         str(tmp_path)])
    out = capsys.readouterr().out
    rows = re.findall(r'^\| (\d) \| (\d) \| ([\d,]+) \| [\d.]+ \| \d+ MiB \| '
                      r'[\d.]+ \| ([\d,]+) B \| (\S+) \|$', out, re.M)
    assert [(p, r) for p, r, *_ in rows] == [('1', '0'), ('2', '0'),
                                             ('2', '1')]
    assert [n for _, _, n, _, _ in rows] == ['3,000', '1,500', '1,500']
    for _, _, _, sent, diff in rows[1:]:
        assert float(diff) < 1e-10
        assert int(sent.replace(',', '')) == _collective_bytes(1)

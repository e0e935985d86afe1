"""The glore-pyg console script's classify command and both pictures
commands (tiny runs)."""
import json
import re

import pytest

pytest.importorskip('lightning')
pytest.importorskip('sklearn')
pytest.importorskip('matplotlib')
from glore_pyg.apps.cli import CLASSIFY_CONFIGURATIONS, main  # noqa: E402



def assert_png(path):
    """A PNG file of a real picture: at least 300 x 300 pixels, not
    blank."""
    import numpy as np
    from matplotlib.image import imread
    pixels = imread(path)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 300
    assert float(np.var(pixels[..., :3])) > 1e-3


TINY = ['--train-size', '48', '--val-size', '32', '--epochs', '1',
        '--batch-size', '16', '--no-progress', '--accelerator', 'cpu']


@pytest.mark.parametrize('spec', ['glore', 'latentgnn:d=4', 'nonlocal'])
def test_train_evaluate_and_pictures(tmp_path, capsys, spec):
    out = tmp_path / 'run'
    assert main(['classify', 'train', '--out', str(out), '--units',
                 f'layer3={spec}', *TINY]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert 0 <= metrics['val_acc'] <= 1
    # without a progress bar, one line per epoch
    assert re.search(r'^epoch 1/1: train_loss [\d.]+, val_acc [\d.]+, '
                     r'val_loss [\d.]+ \([\d.]+ s\)$', captured.err, re.M)
    main(['classify', 'evaluate', '--out', str(out)])
    assert json.loads(capsys.readouterr().out)['val_acc'] == pytest.approx(
        metrics['val_acc'])
    main(['classify', 'pictures', '--out', str(out), '--index', '3'])
    paths = capsys.readouterr().out.split()
    assert [p.rsplit('/', 1)[1] for p in paths] == [
        'projection_maps.png', 'latent_graph_heatmap.png', 'latent_graph.png']
    for path in paths:
        assert_png(path)


def test_compare_prints_the_table(tmp_path, capsys):
    rows = main(['classify', 'compare', '--out', str(tmp_path), '--only',
                 'baseline,+GloRe', '--json', str(tmp_path / 't.json'),
                 *TINY]) or json.loads((tmp_path / 't.json').read_text())
    out = capsys.readouterr().out
    assert '| baseline |' in out and '| +GloRe |' in out
    assert 'accuracy' in out.splitlines()[0]
    assert rows[1]['params'] > rows[0]['params']
    assert rows[1]['flops'] > rows[0]['flops']
    assert set(CLASSIFY_CONFIGURATIONS) >= {r['name'] for r in rows}
    with pytest.raises(SystemExit, match='no inserted unit'):
        main(['classify', 'pictures', '--out',
              str(tmp_path / 'baseline' / 'seed0')])


def test_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(['classify', 'train', '--out', str(tmp_path), '--units',
              'glore'])
    assert 'NAME=SPEC' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='result.json not found'):
        main(['classify', 'evaluate', '--out', str(tmp_path / 'none')])
    with pytest.raises(SystemExit, match='result.json not found'):
        main(['classify', 'pictures', '--out', str(tmp_path / 'none')])
    with pytest.raises(SystemExit, match=r"unknown configuration\(s\)"):
        main(['classify', 'compare', '--out', str(tmp_path), '--only',
              'baseline,+mlp'])


def test_single_seed_table_and_clean_errors(tmp_path, capsys):
    from glore_pyg.apps.cli import CLASSIFY_METRICS, table
    row = dict(name='a', seeds=1, params=10, flops=2_000_000,
               val_acc=(0.5, 0.0), seconds_per_epoch=(1.5, 0.0),
               peak_rss_bytes=(2e9, 0.0))
    assert '| a | 0.000M | 2M | 50.0 | 1.50 | 2.00 GB |' in table(
        [row], CLASSIFY_METRICS)
    # mistakes of the user end in one line, not a traceback
    with pytest.raises(SystemExit, match="classify train: 'folder' needs"):
        main(['classify', 'train', '--out', str(tmp_path / 'f'), '--data',
              'folder', *TINY])
    with pytest.raises(SystemExit, match="classify train: 'points': "
                       "ResNet has no sub-module 'layer9'"):
        main(['classify', 'train', '--out', str(tmp_path / 'g'),
              '--units', 'layer9=glore', *TINY])


def test_folder_evaluation_refuses_other_classes(tmp_path, capsys):
    from PIL import Image
    for root, classes in (('a', ('cats', 'dogs')), ('b', ('cats', 'owls'))):
        for cls in classes:
            (tmp_path / root / cls).mkdir(parents=True)
            for i in range(4):
                Image.new('RGB', (12, 10), (40 * i, 90, 200)).save(
                    tmp_path / root / cls / f'{i}.png')
    out = tmp_path / 'run'
    main(['classify', 'train', '--out', str(out), '--data', 'folder',
          '--root', str(tmp_path / 'a'), '--image-size', '16',
          '--val-fraction', '0.25', *TINY])
    capsys.readouterr()
    main(['classify', 'evaluate', '--out', str(out)])
    assert 0 <= json.loads(capsys.readouterr().out)['val_acc'] <= 1
    with pytest.raises(SystemExit, match=r"trained on the classes \['cats', "
                       r"'dogs'\], the evaluation images have \['cats', "
                       r"'owls'\]"):
        main(['classify', 'evaluate', '--out', str(out), '--root',
              str(tmp_path / 'b')])


def test_segment_pictures(tmp_path, capsys):
    out = tmp_path / 'seg'
    main(['segment', 'train', '--out', str(out), '--units',
          'sa2=latentgnn:d=4', '--points', '256', '--train-size', '4',
          '--val-size', '2', '--epochs', '1', '--batch-size', '4',
          '--no-progress', '--accelerator', 'cpu'])
    capsys.readouterr()
    main(['segment', 'pictures', '--out', str(out), '--to',
          str(tmp_path / 'pics')])
    paths = capsys.readouterr().out.split()
    assert len(paths) == 3
    for path in paths:
        assert_png(path)
    with pytest.raises(SystemExit, match=r"no unit at 'sa1'.*\['sa2'\]"):
        main(['segment', 'pictures', '--out', str(out), '--level', 'sa1'])

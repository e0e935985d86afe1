"""The glore-pyg console script's segment command (tiny runs)."""
import json

import pytest

pytest.importorskip('lightning')
from glore_pyg.apps.cli import CONFIGURATIONS, main, table  # noqa: E402

TINY = ['--points', '256', '--train-size', '4', '--val-size', '2',
        '--epochs', '1', '--batch-size', '4', '--no-progress',
        '--accelerator', 'cpu']


def test_train_and_evaluate(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['segment', 'train', '--out', str(out), '--units',
                 'sa2=latentgnn:d=4', *TINY]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics['val_miou'] <= 1
    main(['segment', 'evaluate', '--out', str(out)])
    evaluated = json.loads(capsys.readouterr().out)
    # the checkpoint re-evaluated on the same validation split
    assert evaluated['val_miou'] == pytest.approx(metrics['val_miou'])
    result = json.loads((out / 'result.json').read_text())
    assert result['config']['units'] == {'sa2': 'latentgnn:d=4'}
    with pytest.raises(SystemExit, match="'whole_scene' evaluation is "
                       "ScanNet's protocol"):
        main(['segment', 'evaluate', '--out', str(out), '--whole-scene'])


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / 'cfg.json'
    cfg.write_text(json.dumps({'epochs': 1, 'points': 256, 'train_size': 4,
                               'val_size': 2, 'batch_size': 4,
                               'no_progress': True}))
    main(['segment', 'train', '--out', str(tmp_path / 'r'), '--config',
          str(cfg), '--accelerator', 'cpu'])
    result = json.loads((tmp_path / 'r' / 'result.json').read_text())
    assert result['epochs'] == 1 and result['config']['num_points'] == 256
    cfg.write_text(json.dumps({'epochz': 3}))
    with pytest.raises(SystemExit):
        main(['segment', 'train', '--out', str(tmp_path / 'q'), '--config',
              str(cfg)])
    assert "unknown option 'epochz'" in capsys.readouterr().err


def test_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(['segment', 'train', '--out', str(tmp_path), '--units',
              'latentgnn'])
    assert 'LEVEL=SPEC' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='result.json not found'):
        main(['segment', 'evaluate', '--out', str(tmp_path / 'none')])
    with pytest.raises(SystemExit, match=r"unknown configuration\(s\)"):
        main(['segment', 'compare', '--out', str(tmp_path), '--only',
              'baseline,+mlp'])
    with pytest.raises(SystemExit):
        main(['segment', 'train', '--out', str(tmp_path), '--data', 'kitti'])


def test_compare_runs_each_configuration(tmp_path, capsys):
    rows = main(['segment', 'compare', '--out', str(tmp_path), '--only',
                 'baseline,+LatentGNN (1 kernel)', '--level', 'sa2',
                 '--json', str(tmp_path / 't.json'), *TINY]) or json.loads(
        (tmp_path / 't.json').read_text())
    out = capsys.readouterr().out
    assert '| baseline |' in out and '+LatentGNN (1 kernel)' in out
    assert rows[1]['params'] > rows[0]['params']
    assert set(CONFIGURATIONS) >= {r['name'] for r in rows}


def test_table_mean_and_std():
    row = dict(name='a', seeds=2, params=1000, flops=2_000_000,
               val_point_acc=(0.5, 0.1), val_voxel_acc=(0.4, 0.0),
               val_class_point_acc=(None, None), val_miou=(0.25, 0.05),
               seconds_per_epoch=(1.5, 0.25),
               peak_rss_bytes=(2e9, 0.0))
    text = table([row])
    assert '| a | 0.001M | 2M | 50.0 ± 10.0 | 40.0 ± 0.0 | - | 25.0 ± 5.0 ' \
           '| 1.50 ± 0.25 | 2.00 ± 0.00 GB |' in text

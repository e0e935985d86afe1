"""Lightning training of PointNet++ segmentation: resume, configuration
checks, mixed precision (tiny runs)."""
import json

import pytest

L = pytest.importorskip('lightning')
from tests.lightning_helpers import (Interrupt, assert_same_weights,  # noqa
                                     weights)
from glore_pyg.apps.segmentation.training import fit  # noqa: E402

TINY = dict(units={'sa3': 'latentgnn:d=8'}, epochs=2, batch_size=4,
            num_points=256, train_size=8, val_size=4, progress=False,
            accelerator='cpu')


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = fit(tmp_path / 'straight', **TINY)
    with pytest.raises(RuntimeError, match='interrupted'):
        fit(tmp_path / 'resumed', callbacks=[Interrupt()], **TINY)
    assert weights(tmp_path / 'resumed')[1] == 0  # only epoch 0 saved
    resumed = fit(tmp_path / 'resumed', **TINY)
    assert_same_weights(weights(tmp_path / 'straight'),
                        weights(tmp_path / 'resumed'))
    assert straight['metrics'] == resumed['metrics']
    # per-epoch metrics on disk, and a fresh start differs from a resume
    rows = (tmp_path / 'resumed' / 'metrics.csv').read_text().splitlines()
    assert rows[0].count('val_miou') == 1 and len(rows) > 2
    saved = json.loads((tmp_path / 'resumed' / 'result.json').read_text())
    assert saved['metrics'] == resumed['metrics']
    assert saved['params'] > 0 and saved['flops'] > 0


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    fit(tmp_path, **dict(TINY, epochs=1))
    with pytest.raises(ValueError, match=r"belongs to another configuration"
                       r": units is \{'sa3': 'latentgnn:d=8'\} there, "
                       r"\{'sa3': 'glore'\} here"):
        fit(tmp_path, **dict(TINY, units={'sa3': 'glore'}))
    (tmp_path / 'checkpoints' / 'last.ckpt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match="Cannot read checkpoint"):
        fit(tmp_path, **TINY)


def test_bf16_mixed_precision(tmp_path):
    r = fit(tmp_path, precision='bf16-mixed', **dict(TINY, epochs=1))
    assert 0 <= r['metrics']['val_point_acc'] <= 1


def test_bad_configuration_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown data set 'kitti'"):
        fit(tmp_path, data='kitti', **TINY)
    with pytest.raises(ValueError, match="Unknown level 'sa7'"):
        fit(tmp_path, **dict(TINY, units={'sa7': 'glore'}))
    with pytest.raises(ValueError, match="Unknown unit 'transformer'"):
        fit(tmp_path, **dict(TINY, units={'sa1': 'transformer'}))
    with pytest.raises(ValueError, match="'scannet' needs 'root'"):
        fit(tmp_path, data='scannet', **TINY)
    with pytest.raises(FileNotFoundError, match='scannet_train.pickle'):
        fit(tmp_path, data='scannet', root=str(tmp_path), **TINY)


def test_scannet_training_and_whole_scene_evaluation(tmp_path):
    """PointNet++'s pickles: train on columns (per-point weights), then
    evaluate every point of every test scene once."""
    import pickle

    import numpy as np

    from glore_pyg.apps.segmentation.training import evaluate
    rng = np.random.default_rng(0)
    scenes = [((rng.random((n, 3)) * (2.0, 2.0, 1.5)).astype(np.float32),
               rng.integers(0, 21, n).astype(np.int32)) for n in (900, 700)]
    for split in ('train', 'test'):
        with open(tmp_path / f'scannet_{split}.pickle', 'wb') as f:
            pickle.dump([p for p, _ in scenes], f, protocol=2)
            pickle.dump([y for _, y in scenes], f, protocol=2)
    run = tmp_path / 'run'
    r = fit(run, data='scannet', root=str(tmp_path),
            **dict(TINY, epochs=1, train_size=None, val_size=None))
    assert r['config']['data'] == 'scannet'
    m = evaluate(run, whole_scene=True)
    assert 0 <= m['val_point_acc'] <= 1 and 0 <= m['val_voxel_acc'] <= 1
    assert json.loads((run / 'evaluation.json').read_text()) == m

"""Exact resume for every data set: a run interrupted after its first
epoch and resumed from its last checkpoint ends bit-identical to an
uninterrupted run with the same seed (regression: the frog and ScanNet crop
samplers used to draw the first epoch's crops again)."""
import pytest

pytest.importorskip('lightning')
from tests.apps.helpers import (assert_same_weights, command_of, fit,  # noqa
                                root_of, weights)

PRESETS = ['synthetic', 'frog', 'scannet', 'digits', 'folder']


@pytest.mark.parametrize('preset', PRESETS)
def test_interrupted_run_resumes_bit_identical(tmp_path, preset):
    root = root_of(preset, tmp_path)
    command = command_of(preset)
    units = ('{sa3: latentgnn:d=8}' if command == 'segment'
             else '{layer3: latentgnn:d=4}')
    common = ['--trainer.max_epochs', '2', '--model.units', units,
              '--seed_everything', '3']
    assert fit(command, preset, tmp_path / 'whole', *common, root=root) == 0
    with pytest.raises(RuntimeError, match='interrupted'):
        fit(command, preset, tmp_path / 'cut', *common,
            '--trainer.callbacks', 'tests.apps.helpers.Interrupt', root=root)
    assert weights(tmp_path / 'cut')[1:] != weights(tmp_path / 'whole')[1:]
    assert fit(command, preset, tmp_path / 'cut', *common, root=root) == 0
    assert_same_weights(weights(tmp_path / 'cut'),
                        weights(tmp_path / 'whole'))


def test_epochs_see_different_crops_and_orders(tmp_path):
    """Epoch e's order and crops come from (seed, e): a second epoch is not
    the first one again (what made the old resume differ)."""
    from glore_pyg.apps.base import EpochSampler
    from glore_pyg.apps.segmentation.task import SegmentationData
    pytest.importorskip('pyvista')
    data = SegmentationData('frog', num_points=64, train_size=6, val_size=2)
    sampler = EpochSampler(data.train_set, seed=0)
    sampler.set_epoch(0)
    first = (list(sampler), data.train_set[0].pos.clone())
    sampler.set_epoch(1)
    second = (list(sampler), data.train_set[0].pos.clone())
    assert sorted(first[0]) == sorted(second[0]) == list(range(6))
    assert first[0] != second[0]
    assert not bool((first[1] == second[1]).all())
    sampler.set_epoch(0)
    assert list(sampler) == first[0]
    assert bool((data.train_set[0].pos == first[1]).all())

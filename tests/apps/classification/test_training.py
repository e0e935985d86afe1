"""Lightning training of the image classifier: resume, configuration
checks, mixed precision, a folder of images (tiny runs)."""
import json

import pytest
import torch

L = pytest.importorskip('lightning')
from tests.lightning_helpers import (Interrupt, assert_same_weights,  # noqa
                                     weights)
pytest.importorskip('sklearn')
from glore_pyg.apps.classification import inserted_units  # noqa: E402
from glore_pyg.apps.classification.training import (build_model, evaluate, fit,  # noqa
                                       load_run)

TINY = dict(units={'layer3': 'latentgnn:d=4'}, epochs=2, batch_size=16,
            train_size=48, val_size=32, progress=False, accelerator='cpu')


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = fit(tmp_path / 'straight', **TINY)
    with pytest.raises(RuntimeError, match='interrupted'):
        fit(tmp_path / 'resumed', callbacks=[Interrupt()], **TINY)
    assert weights(tmp_path / 'resumed')[1] == 0  # only epoch 0 saved
    resumed = fit(tmp_path / 'resumed', **TINY)
    assert_same_weights(weights(tmp_path / 'straight'),
                        weights(tmp_path / 'resumed'))
    assert straight['metrics'] == resumed['metrics']
    rows = (tmp_path / 'resumed' / 'metrics.csv').read_text().splitlines()
    assert rows[0].count('val_acc') == 1 and len(rows) > 2
    saved = json.loads((tmp_path / 'resumed' / 'result.json').read_text())
    assert saved['metrics'] == resumed['metrics']
    assert 0 <= saved['metrics']['val_acc'] <= 1
    # the unit's overhead is its own parameters and a share of the FLOPs
    (row,) = saved['overhead']
    task, _ = load_run(tmp_path / 'resumed')
    unit = inserted_units(task.model)['layer3']
    assert row['name'] == 'layer3' and row['channels'] == 64
    assert row['params'] == sum(p.numel() for p in unit.parameters())
    assert 0 < row['flops'] < saved['flops']
    assert saved['input_shape'] == [1, 1, 32, 32]
    # the checkpoint re-evaluated gives the recorded accuracy
    again = evaluate(tmp_path / 'resumed')
    assert again['val_acc'] == pytest.approx(saved['metrics']['val_acc'])


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    fit(tmp_path, **dict(TINY, epochs=1))
    with pytest.raises(ValueError, match=r"belongs to another configuration"
                       r": units is \{'layer3': 'latentgnn:d=4'\} there, "
                       r"\{'layer3': 'glore'\} here"):
        fit(tmp_path, **dict(TINY, units={'layer3': 'glore'}))


def test_bf16_mixed_precision(tmp_path):
    r = fit(tmp_path, precision='bf16-mixed', **dict(
        TINY, epochs=1, units={'layer2': 'glore', 'layer3': 'nonlocal'}))
    assert 0 <= r['metrics']['val_acc'] <= 1


def test_folder_of_images(tmp_path):
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for cls, level in (('cats', 60), ('dogs', 190)):
        (tmp_path / 'images' / cls).mkdir(parents=True)
        for i in range(6):
            pixels = (torch.rand(20, 24, 3, generator=g) * 60 + level)
            Image.fromarray(pixels.byte().numpy()).save(
                tmp_path / 'images' / cls / f'{i}.png')
    r = fit(tmp_path / 'run', data='folder', root=str(tmp_path / 'images'),
            image_size=16, units={'layer2': 'glore'}, epochs=1,
            batch_size=4, progress=False, accelerator='cpu')
    assert r['input_shape'] == [1, 3, 16, 16]
    assert r['config']['root'] == str(tmp_path / 'images')
    assert 0 <= r['metrics']['val_acc'] <= 1


def test_bad_configuration_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown data set 'cifar'"):
        fit(tmp_path, data='cifar', **TINY)
    with pytest.raises(ValueError, match="close names"):
        fit(tmp_path, **dict(TINY, units={'layer5': 'glore'}))
    with pytest.raises(ValueError, match="Unknown unit 'transformer'"):
        fit(tmp_path, **dict(TINY, units={'layer1': 'transformer'}))
    with pytest.raises(ValueError, match="'folder' needs 'root'"):
        fit(tmp_path, data='folder', **TINY)
    with pytest.raises(ValueError, match="Unknown architecture 'vgg'"):
        build_model('vgg', 1, 2)
    with pytest.raises(FileNotFoundError, match='result.json not found'):
        load_run(tmp_path / 'nothing')


def test_pretrained_backbone_weights(tmp_path, capsys):
    from glore_pyg.apps.classification.training import load_backbone_weights
    source = build_model('digits', 1, 10)  # another number of classes
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    torch.save(source.state_dict(), tmp_path / 'w.pt')
    model = build_model('digits', 1, 2, {'layer3': 'glore',
                                         'layer2.0': 'nonlocal'})
    fresh_unit = {k: v.clone() for k, v in
                  inserted_units(model)['layer3'].state_dict().items()}
    report = load_backbone_weights(model, tmp_path / 'w.pt')
    assert report == dict(skipped=['fc.weight', 'fc.bias'])
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.layer2[0].module.conv1.weight,
                               source.layer2[0].conv1.weight)
    assert not torch.equal(model.fc.weight[:2], source.fc.weight[:2])
    for k, v in inserted_units(model)['layer3'].state_dict().items():
        torch.testing.assert_close(v, fresh_unit[k])
    with pytest.raises(ValueError, match='do not fit ResNet: .*missing'):
        load_backbone_weights(build_model('resnet18', 1, 2),
                              tmp_path / 'w.pt')
    with pytest.raises(FileNotFoundError, match='not found'):
        load_backbone_weights(model, tmp_path / 'none.pt')
    # through fit: loaded before training, recorded in the configuration
    r = fit(tmp_path / 'run', pretrained=str(tmp_path / 'w.pt'),
            **dict(TINY, epochs=1))
    assert r['config']['pretrained'] == str(tmp_path / 'w.pt')
    assert "left out ['fc.weight', 'fc.bias']" in capsys.readouterr().err

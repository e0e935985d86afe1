"""glore_pyg.nn.eval_mode: evaluation mode for a moment, each module's own
mode restored."""
import pytest
import torch
from torch import nn

from glore_pyg.nn import eval_mode


def frozen_bn_model():
    """A network in training mode with one BatchNorm frozen in eval mode
    (fine-tuning with frozen statistics)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(4, 4, 1),
                                        nn.BatchNorm2d(4)))
    model.train()
    model[1].eval()
    return model


def modes(model):
    return [(name, m.training) for name, m in model.named_modules()]


def test_mixed_modes_restored():
    model = frozen_bn_model()
    before = modes(model)
    with eval_mode(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
        model(torch.randn(2, 3, 4, 4))
    assert modes(model) == before
    assert model.training and not model[1].training
    # model.train(previous) would have unfrozen the BatchNorm
    assert model[3][1].training


def test_running_statistics_untouched_inside():
    model = frozen_bn_model()
    stats = model[3][1].running_mean.clone()
    with eval_mode(model):
        model(torch.randn(2, 3, 4, 4))
    torch.testing.assert_close(model[3][1].running_mean, stats, rtol=0,
                               atol=0)


def test_restored_after_an_exception():
    model = frozen_bn_model()
    before = modes(model)
    with pytest.raises(RuntimeError, match='boom'):
        with eval_mode(model):
            raise RuntimeError('boom')
    assert modes(model) == before


def test_eval_model_stays_eval():
    model = frozen_bn_model().eval()
    with eval_mode(model):
        pass
    assert not any(m.training for m in model.modules())


def test_type_error():
    with pytest.raises(TypeError, match="'module' must be a torch.nn.Module"
                                        ", got str"):
        with eval_mode('model'):
            pass

"""What the training tests of both applications share."""
import lightning as L
import torch


class Interrupt(L.Callback):
    """Stops the run at the start of the second epoch, after the first
    epoch's checkpoint was written (as a killed process would)."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise RuntimeError('interrupted')


def weights(folder):
    """``(state_dict, epoch, global_step)`` of a run folder's last
    checkpoint."""
    state = torch.load(folder / 'checkpoints' / 'last.ckpt',
                       map_location='cpu', weights_only=False)
    return state['state_dict'], state['epoch'], state['global_step']


def assert_same_weights(a, b):
    """Two ``weights()`` results are identical, bit for bit."""
    assert a[1:] == b[1:] and a[0].keys() == b[0].keys()
    for key in a[0]:
        torch.testing.assert_close(a[0][key], b[0][key], rtol=0, atol=0,
                                   msg=key)

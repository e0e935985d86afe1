"""``applied_weight`` of the two bipartite stages: the normalised weights of
each sample (an independent per-sample reference) that produce the stage's
output."""
import pytest
import torch

from glore_pyg.functional import Segments
from glore_pyg.nn.stages import LatentToVisible, VisibleToLatent
from tests.layouts import batch_of, normalize_dense

C, D, DT = 4, 3, torch.float64
SIZES = [3, 1, 5]


@pytest.mark.parametrize('stage,normalize', [
    (VisibleToLatent, None), (VisibleToLatent, 'l2_visible'),
    (VisibleToLatent, 'l2_latent'), (LatentToVisible, None),
    (LatentToVisible, 'l2_latent')])
def test_applied_weight_is_the_weight_as_applied(stage, normalize):
    torch.manual_seed(0)
    n = sum(SIZES)
    w = torch.randn(n, D, dtype=DT)
    x = torch.randn(n, C, dtype=DT)  # visible features
    z = torch.randn(len(SIZES), D, C, dtype=DT)  # latent features
    pooling = stage is VisibleToLatent
    conv = stage(normalize)
    out = conv(x if pooling else z, w, batch=batch_of(SIZES))
    used = conv.applied_weight(w, Segments.from_batch(w, batch_of(SIZES)))
    start = 0
    for s, size in enumerate(SIZES):
        rows = slice(start, start + size)
        ref = normalize_dense(w[rows], normalize)
        torch.testing.assert_close(used[rows], ref)
        if pooling:
            torch.testing.assert_close(out[s], ref.t() @ x[rows])
        else:
            torch.testing.assert_close(out[rows], ref @ z[s])
        start += size

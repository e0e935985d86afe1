import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors in the tests are tiny: one intra-op thread avoids OpenMP
    oversubscription on small shared machines (tenfold slowdowns)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Property-based tests (hypothesis): a short profile for CI, a longer one on
# demand with HYPOTHESIS_PROFILE=thorough.
try:
    import os

    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - the test extra brings it
    pass
else:
    settings.register_profile(
        'ci', max_examples=25, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(
        'thorough', max_examples=500, deadline=None,
        suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch, request):
    """The chunked LatentGNN path raises chunks on the CPU to 32 MiB per
    tensor (glibc's mmap threshold): the tests' tiny inputs would then be
    one chunk.  They run with the chunk sizes they ask for, except the
    tests marked ``lean_chunks``, which check the floor itself."""
    if 'lean_chunks' not in request.keywords:
        import glore_pyg.nn.units.latentgnn as latentgnn
        monkeypatch.setattr(latentgnn, 'LEAN_BYTES', 0)
    yield

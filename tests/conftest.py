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

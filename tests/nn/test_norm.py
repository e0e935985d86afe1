"""DistributedBatchNorm: BatchNorm over the batches of several gloo
processes equals BatchNorm1d / 2d on their concatenation (outputs, input
and parameter gradients, running statistics), with unequal batches and a
process without rows; gradcheck in float64 through the collectives."""
import pytest
import torch
from torch import nn

from glore_pyg.nn import DistributedBatchNorm, convert_distributed_batchnorm
from tests import multiprocess


def run(case: str, world: int) -> None:
    multiprocess.run(__name__, case, world)


SIZES = {2: [4, 9], 3: [5, 0, 7]}  # rows (or maps) per process


def _against_batchnorm(rank, world, dims, momentum):
    torch.manual_seed(0)
    sizes = SIZES[world]
    C = 3
    shape = {1: (C, ), 2: (C, 4), 3: (C, 3, 2)}[dims]
    reference = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[
        dims](C, momentum=momentum).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    bn = convert_distributed_batchnorm(
        {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[dims](
            C, momentum=momentum).double())
    bn.load_state_dict(reference.state_dict())
    assert isinstance(bn, DistributedBatchNorm)
    start = sum(sizes[:rank])
    for step in range(2):  # two steps: the running statistics move twice
        x = torch.randn(sum(sizes), *shape, dtype=torch.double) * 3 + 1
        g = torch.randn_like(x)
        x_ref = x.clone().requires_grad_()
        out_ref = reference(x_ref)
        (out_ref * g).sum().backward()
        x_local = x[start:start + sizes[rank]].clone().requires_grad_()
        out = bn(x_local)
        (out * g[start:start + sizes[rank]]).sum().backward()
        rows = slice(start, start + sizes[rank])
        torch.testing.assert_close(out, out_ref[rows])
        torch.testing.assert_close(x_local.grad, x_ref.grad[rows])
        # the parameter gradients summed over the processes (what DDP
        # averages) equal the single batch's
        import torch.distributed as dist
        for p, q in ((bn.weight, reference.weight),
                     (bn.bias, reference.bias)):
            total = p.grad.clone()
            dist.all_reduce(total)
            torch.testing.assert_close(total, q.grad)
            p.grad, q.grad = None, None
        torch.testing.assert_close(bn.running_mean, reference.running_mean)
        torch.testing.assert_close(bn.running_var, reference.running_var)
        assert int(bn.num_batches_tracked) == int(
            reference.num_batches_tracked) == step + 1
    bn.eval()
    reference.eval()
    x = torch.randn(sizes[rank], *shape, dtype=torch.double)
    torch.testing.assert_close(bn(x), reference(x))


def _gradcheck(rank, world):
    # a group of one: the collectives run, so gradcheck sees their backward
    torch.manual_seed(0)
    bn = DistributedBatchNorm(3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
    x = torch.randn(6, 3, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: torch.nn.functional.linear(bn(x).transpose(1, 2),
                                                   torch.eye(3,
                                                             dtype=x.dtype)),
        (x, bn.weight, bn.bias))


def _every_shape(rank, world):
    # rows [N, C], sequences [N, C, L], maps [N, C, H, W]; momentum 0.1,
    # cumulative (None) and 0.3
    for dims, momentum in ((1, 0.1), (1, None), (2, 0.1), (3, 0.3)):
        _against_batchnorm(rank, world, dims, momentum)


# one process start per world size: the cases run one after the other
CASES = {'every_shape': _every_shape, 'gradcheck': _gradcheck}


@pytest.mark.parametrize('world', [2, 3])
def test_equals_batchnorm_on_the_concatenated_batch(world):
    run('every_shape', world)


def test_gradcheck_through_the_collectives():
    run('gradcheck', 1)


def test_one_process_is_an_ordinary_batchnorm():
    torch.manual_seed(0)
    reference = nn.BatchNorm2d(4)
    bn = convert_distributed_batchnorm(nn.Sequential(nn.BatchNorm2d(4)))[0]
    assert type(bn) is DistributedBatchNorm
    x = torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(bn(x), reference(x))
    torch.testing.assert_close(bn.running_var, reference.running_var)


def test_convert_reaches_the_units_and_keeps_the_state():
    from glore_pyg.nn import GloReConv, LatentGNNConv
    model = nn.Sequential(LatentGNNConv(16, [4]), GloReConv(16, num_mid=4),
                          nn.BatchNorm1d(16))
    model[2].eval()  # a frozen BatchNorm keeps its mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_distributed_batchnorm(model)
    norms = [m for m in converted.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d,
                               nn.BatchNorm3d, nn.SyncBatchNorm))]
    assert norms and all(type(m) is DistributedBatchNorm for m in norms)
    assert converted[2].training is False and converted[0].training
    after = converted.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    x, batch = torch.randn(10, 16), torch.tensor([0] * 4 + [1] * 6)
    torch.manual_seed(0)
    out = converted[1](converted[0](x, batch), batch)
    assert out.shape == (10, 16)
    with pytest.raises(TypeError, match="'module' must be a torch.nn.Module"):
        convert_distributed_batchnorm('bn')

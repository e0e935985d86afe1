"""Sharded units (glore_pyg.nn.shard_units): on 2 and 3 gloo processes, each
holding some visible nodes of the same samples, every process's output, input
gradient, the parameter gradients summed over processes and the BatchNorm
running statistics equal one process on the whole samples (float64, 1e-10):
uneven shards, an empty shard, a sample on one process only, the chunked
path, grid adapters split by rows, bf16 autocast; and the error cases, each
an error on every process (a hang would fail by the harness's timeout)."""
import pytest
import torch
import torch.distributed as dist

from glore_pyg.functional.shard import ShardMismatchError
from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNN2d, LatentGNNConv,
                          NonLocalConv, shard_units)
from tests import multiprocess
from tests.weights import randomize

TOL = dict(rtol=0, atol=1e-10)
C = 8
SIZES = [12, 18, 5]  # visible nodes of each sample


def owners(world: int) -> torch.Tensor:
    """The process of each visible node: uneven; with 2 processes sample 1
    lives on process 1 only and sample 2 on process 0 only; with 3,
    process 1 holds nothing."""
    if world == 1:
        return torch.zeros(sum(SIZES), dtype=torch.long)
    g = torch.Generator().manual_seed(7)
    parts = [(torch.rand(SIZES[0], generator=g) < 0.3).long(),
             torch.ones(SIZES[1], dtype=torch.long),
             torch.zeros(SIZES[2], dtype=torch.long)]
    rank = torch.cat(parts)
    return rank * 2 if world == 3 else rank  # 3: processes 0 and 2


UNITS = {
    'latentgnn': lambda: LatentGNNConv(C, [4, 3], channel_stride=2),
    'latentgnn_sym': lambda: LatentGNNConv(C, [4], channel_stride=2,
                                           mode='symmetric', graph_conv=True),
    'glore_mean': lambda: GloReConv(C, 4, normalize=True),
    'glore': lambda: GloReConv(C, 3),
    'chunked': lambda: LatentGNNConv(C, [4, 3], channel_stride=2,
                                     chunk_size=4),
}


def _step(unit, x, batch, weight, batch_size):
    """One forward + backward with a loss summed over rows, so that the
    processes' losses add up to the single-process loss."""
    x = x.detach().clone().requires_grad_()
    unit.zero_grad()
    out = unit(x, batch, batch_size=batch_size)
    (out * weight).sum().backward()
    return out.detach(), x.grad


def _summed_grads(unit):
    grads = {}
    for name, p in unit.named_parameters():
        g = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
        dist.all_reduce(g)
        grads[name] = g
    return grads


def _cloud(rank, world, dtype=torch.float64):
    """The samples' rows ``x [N, C]``, loss weights ``[N, C]``, ``batch``
    and this process's rows (a mask), the same on every process."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(sum(SIZES), C, generator=g, dtype=dtype)
    weight = torch.randn(sum(SIZES), C, generator=g, dtype=dtype)
    batch = torch.arange(3).repeat_interleave(torch.tensor(SIZES))
    return x, weight, batch, owners(world) == rank


def _pair(make, dtype=torch.float64):
    """The same random unit twice: for one process, and sharded."""
    return (randomize(make(), dtype=dtype),
            shard_units(randomize(make(), dtype=dtype)))


def _exact(rank, world, name):
    x, weight, batch, mine = _cloud(rank, world)
    single, sharded = _pair(UNITS[name])
    for step, training in enumerate([True, True, False]):
        single.train(training)
        sharded.train(training)
        out, gx = _step(single, x, batch, weight, 3)
        out_p, gx_p = _step(sharded, x[mine], batch[mine], weight[mine], 3)
        torch.testing.assert_close(out_p, out[mine], **TOL)
        torch.testing.assert_close(gx_p, gx[mine], **TOL)
        summed = _summed_grads(sharded)
        for pname, p in single.named_parameters():
            torch.testing.assert_close(summed[pname], p.grad, **TOL,
                                       msg=f'{name} step {step} {pname}')
        for (bname, b), (_, b_p) in zip(single.named_buffers(),
                                        sharded.named_buffers()):
            torch.testing.assert_close(b_p, b, **TOL, msg=bname)


def _projections(rank, world):
    # return_projection: each process's projection rows equal the rows of
    # one process's, with the normalisation over all visible nodes
    x, _, batch, mine = _cloud(rank, world)
    for name in ('latentgnn', 'latentgnn_sym', 'glore_mean'):
        single, sharded = _pair(UNITS[name])
        _, ref = single(x, batch, batch_size=3, return_projection=True)
        _, got = sharded(x[mine], batch[mine], batch_size=3,
                         return_projection=True)
        assert len(got) == len(ref)
        for p, q in zip(got, ref):
            torch.testing.assert_close(p.visible_to_latent,
                                       q.visible_to_latent[mine], **TOL)
            torch.testing.assert_close(p.latent_to_visible,
                                       q.latent_to_visible[mine], **TOL)
            torch.testing.assert_close(p.latent_graph, q.latent_graph, **TOL)
            assert torch.equal(p.batch, batch[mine])


def _every_unit(rank, world):
    for name in UNITS:
        _exact(rank, world, name)
    _projections(rank, world)


def _grid(rank, world):
    # each process holds some rows of every image: [B, C, H_p, W]
    rows = {2: [3, 4], 3: [2, 0, 5]}[world]
    H = sum(rows)
    start = sum(rows[:rank])
    for make in (lambda: LatentGNN2d(C, [4], channel_stride=2),
                 lambda: GloRe2d(C, 3, normalize=True)):
        g = torch.Generator().manual_seed(5)
        x = torch.randn(2, C, H, 3, generator=g, dtype=torch.float64)
        weight = torch.randn(x.shape, generator=g, dtype=torch.float64)
        single, sharded = _pair(make)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xs = x.clone(memory_format=fmt).requires_grad_()
            single.zero_grad()
            out = single(xs)
            (out * weight).sum().backward()
            part = x[:, :, start:start + rows[rank]].clone(
                memory_format=fmt).requires_grad_()
            sharded.zero_grad()
            out_p = sharded(part)
            (out_p * weight[:, :, start:start + rows[rank]]).sum().backward()
            sl = slice(start, start + rows[rank])
            torch.testing.assert_close(out_p, out[:, :, sl], **TOL)
            torch.testing.assert_close(part.grad, xs.grad[:, :, sl], **TOL)
            summed = _summed_grads(sharded)
            for pname, p in single.named_parameters():
                torch.testing.assert_close(summed[pname], p.grad, **TOL,
                                           msg=pname)


def _autocast(rank, world):
    # bf16 autocast: the sharded unit against one process under autocast,
    # within bf16 rounding (the sums are all-reduced in float32)
    x, _, batch, mine = _cloud(rank, world, torch.float32)
    for name in ('latentgnn', 'glore_mean', 'chunked'):
        single, sharded = _pair(UNITS[name], torch.float32)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = single(x, batch, batch_size=3)
            out_p = sharded(x[mine], batch[mine], batch_size=3)
        assert out_p.dtype == torch.float32
        torch.testing.assert_close(out_p, out[mine], rtol=0.05, atol=0.05)


def _expect(error, match, fn):
    with pytest.raises(error, match=match):
        fn()


def _errors(rank, world):
    x = torch.randn(10, C)
    batch = torch.tensor([0] * 4 + [1] * 6)
    unit = shard_units(LatentGNNConv(C, [4], channel_stride=2))
    # the processes disagree on batch_size
    _expect(ShardMismatchError, r"disagree on the number of samples "
            r"\('batch_size'\) \(rank 0: 2, rank 1: 3\)",
            lambda: unit(x, batch, batch_size=2 + rank))
    # ... on the unit's configuration
    other = shard_units(LatentGNNConv(C, [4 + rank], channel_stride=2))
    _expect(ShardMismatchError, r"disagree on the unit's configuration "
            r"\(its repr and parameter shapes\) \(rank 0: LatentGNNConv\(8, "
            r"latent_dims=\[4\].* \[[0-9a-f]{8}\], rank 1: LatentGNNConv\(8, "
            r"latent_dims=\[5\]",
            lambda: other(x, batch, batch_size=2))
    # ... on the channels (each process's unit fits its own input)
    wide = shard_units(LatentGNNConv(C + rank, [4], channel_stride=2))
    _expect(ShardMismatchError, "disagree on the input's channels",
            lambda: wide(torch.randn(10, C + rank), batch, batch_size=2))
    # ... on training / evaluation mode
    unit.train(rank == 0)
    _expect(ShardMismatchError, "disagree on training / evaluation mode",
            lambda: unit(x, batch, batch_size=2))
    unit.train()
    # ... on return_projection (its normalisations may need collectives)
    _expect(ShardMismatchError, "disagree on 'return_projection'",
            lambda: unit(x, batch, batch_size=2,
                         return_projection=rank == 0))
    # an input rejected on one process: its own error there, on all others
    # an error that points to it
    if rank == 0:
        _expect(TypeError, "'x' is torch.float64",
                lambda: unit(x.double(), batch, batch_size=2))
    else:
        _expect(ShardMismatchError, r"process\(es\) \[0\] of the group "
                "rejected their input", lambda: unit(x, batch, batch_size=2))
    # 'batch' without 'batch_size', on every process
    _expect(ValueError, "needs 'batch_size' with 'batch'",
            lambda: unit(x, batch))
    # the group still works after all of these
    out = unit(x, batch, batch_size=2)
    assert out.shape == x.shape


class _Net(torch.nn.Module):
    """Per-point layers around a LatentGNN and a GloRe unit."""

    def __init__(self, classes=3):
        super().__init__()
        self.embed = torch.nn.Sequential(torch.nn.Linear(4, C),
                                         torch.nn.BatchNorm1d(C),
                                         torch.nn.ReLU())
        self.latentgnn = LatentGNNConv(C, [4], channel_stride=2)
        self.glore = GloReConv(C, 3, normalize=True)
        self.head = torch.nn.Linear(C, classes)

    def forward(self, x, batch, batch_size):
        h = self.embed(x)
        h = self.latentgnn(h, batch, batch_size=batch_size)
        return self.head(self.glore(h, batch, batch_size=batch_size))


def _ddp(rank, world):
    """The docs' recipe: each sample split over the ranks of a DDP run.
    The units get a process group of their own; each rank's loss is its
    part of the global mean times the number of ranks, since DDP averages
    the gradients.  Two SGD steps equal two steps on one process."""
    import copy
    from torch.nn.parallel import DistributedDataParallel
    from glore_pyg.nn import convert_distributed_batchnorm
    g = torch.Generator().manual_seed(11)
    x = torch.randn(sum(SIZES), 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (sum(SIZES), ), generator=g)
    batch = torch.arange(3).repeat_interleave(torch.tensor(SIZES))
    mine = owners(world) == rank
    torch.manual_seed(0)
    single = randomize(_Net())
    net = copy.deepcopy(single)
    group = dist.new_group()  # the units' collectives, apart from DDP's
    shard_units(net, group)
    convert_distributed_batchnorm(net, group)  # the per-point BatchNorm
    ddp = DistributedDataParallel(net)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    opt_single = torch.optim.SGD(single.parameters(), lr=0.5)
    ce = torch.nn.functional.cross_entropy
    for _ in range(2):
        opt_single.zero_grad()
        ce(single(x, batch, 3), y).backward()  # mean over all points
        opt_single.step()
        opt.zero_grad()
        local = ce(ddp(x[mine], batch[mine], 3), y[mine], reduction='sum')
        (local * world / len(y)).backward()
        opt.step()
    for (name, p), (_, q) in zip(single.state_dict().items(),
                                 net.state_dict().items()):
        torch.testing.assert_close(q, p, **TOL, msg=name)


def _compiled(rank, world):
    # torch.compile'd sharded units: the collectives run eagerly (graph
    # breaks), the rest compiled; the same rows and gradients
    x, _, batch, mine = _cloud(rank, world)
    for name in ('latentgnn', 'glore_mean'):
        single, sharded = _pair(UNITS[name])
        sharded = torch.compile(sharded)
        out, gx = _step(single, x, batch, torch.ones_like(x), 3)
        out_p, gx_p = _step(sharded, x[mine], batch[mine],
                            torch.ones_like(x[mine]), 3)
        torch.testing.assert_close(out_p, out[mine], rtol=0, atol=1e-9)
        torch.testing.assert_close(gx_p, gx[mine], rtol=0, atol=1e-9)


CASES = {'compiled': _compiled, 'every_unit': _every_unit, 'grid': _grid, 'autocast': _autocast,
         'errors': _errors, 'ddp': _ddp}


def run(case: str, world: int) -> None:
    multiprocess.run(__name__, case, world)


@pytest.mark.parametrize('world', [2, 3])
def test_sharded_units_equal_one_process(world):
    run('every_unit', world)


@pytest.mark.parametrize('world', [2, 3])
def test_grid_adapters_split_by_rows(world):
    run('grid', world)


@pytest.mark.slow  # compiles on every process
def test_compiled_sharded_units():
    run('compiled', 2)


def test_bf16_autocast():
    run('autocast', 2)


@pytest.mark.parametrize('world', [2, 3])
def test_ddp_recipe_equals_one_process(world):
    run('ddp', world)


def test_errors_on_every_process():
    run('errors', 2)


def test_without_a_process_group_is_an_error():
    unit = shard_units(GloReConv(C, 4))
    with pytest.raises(RuntimeError, match="GloReConv is sharded .* no "
                       "initialised process group"):
        unit(torch.randn(5, C))
    grid = shard_units(LatentGNN2d(C, [4]))
    with pytest.raises(RuntimeError, match="LatentGNN2d is sharded"):
        grid(torch.randn(1, C, 2, 2))


def test_shard_units_converts_batchnorm_and_keeps_keys():
    from glore_pyg.nn import DistributedBatchNorm
    unit = randomize(LatentGNNConv(C, [4]))
    state = {k: v.clone() for k, v in unit.state_dict().items()}
    net = torch.nn.Sequential(torch.nn.Linear(C, C), unit)
    assert shard_units(net) is net
    assert unit.shard is not None and net[0].__class__ is torch.nn.Linear
    bns = [m for m in unit.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns and all(type(m) is DistributedBatchNorm for m in bns)
    assert unit.state_dict().keys() == state.keys()
    for k, v in unit.state_dict().items():
        assert torch.equal(v, state[k])


def test_shard_units_errors():
    with pytest.raises(TypeError, match="NonLocalConv cannot be sharded"):
        shard_units(torch.nn.Sequential(NonLocalConv(C)))
    with pytest.raises(ValueError, match="holds no global-reasoning unit"):
        shard_units(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="'module' must be a torch.nn.Module"):
        shard_units('unit')

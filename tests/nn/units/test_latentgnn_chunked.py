"""The memory-lean chunked path of LatentGNNConv (``chunk_size``) computes
exactly what the plain path computes: outputs, every gradient and the
BatchNorm running statistics."""
import copy

import pytest
import torch

from glore_pyg.nn import LatentGNN2d, LatentGNNConv

C = 12


def pair(h, chunk_size, training, seed=0, **kwargs):
    plain = h.randomize(LatentGNNConv(C, **kwargs), seed)
    chunked = copy.deepcopy(plain)
    chunked.chunk_size = chunk_size
    return plain.train(training), chunked.train(training)


def run(unit, x, **layout):
    x = x.clone().requires_grad_()
    out = unit(x, **layout)
    # a non-uniform output gradient, so every path of backward is exercised
    weight = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out * weight).sum(),
                                [x] + list(unit.parameters()))
    return out, grads


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
@pytest.mark.parametrize('graph_conv', [False, True])
def test_chunked_equals_plain(h, training, mode, graph_conv):
    sizes = [17, 0, 5, 23]  # an empty sample; chunks do not divide sizes
    plain, chunked = pair(h, 4, training, latent_dims=[4, 3],
                          channel_stride=3, mode=mode, graph_conv=graph_conv)
    x = h.randn(sum(sizes), C, seed=1)
    batch = h.batch_of(sizes)
    out_p, grads_p = run(plain, x, batch=batch, batch_size=len(sizes))
    out_c, grads_c = run(chunked, x, batch=batch, batch_size=len(sizes))
    h.assert_close(out_c, out_p)
    for name, gp, gc in zip(['x'] + [n for n, _ in plain.named_parameters()],
                            grads_p, grads_c):
        assert gp is not None and gc is not None, name
        h.assert_close(gc, gp, atol=1e-9)
    for (name, bp), bc in zip(plain.named_buffers(), chunked.buffers()):
        h.assert_close(bc.double(), bp.double(), atol=1e-12)
    # the comparison is not vacuous: the residual branch is far from zero
    assert (out_p - x).abs().max() > 1e-2


@pytest.mark.parametrize('chunk_size', [1, 7, 1000])
def test_chunk_sizes(h, chunk_size):
    plain, chunked = pair(h, chunk_size, True, latent_dims=[5])
    x = h.randn(40, C, seed=2)
    out_p, grads_p = run(plain, x)
    out_c, grads_c = run(chunked, x)
    h.assert_close(out_c, out_p)
    for gp, gc in zip(grads_p, grads_c):
        h.assert_close(gc, gp, atol=1e-9)


def test_without_residual_and_grid(h):
    plain = h.randomize(LatentGNN2d(C, [4], without_residual=True))
    chunked = copy.deepcopy(plain)
    chunked.unit.chunk_size = 10
    x = h.randn(2, C, 5, 7, seed=3)
    h.assert_close(chunked(x), plain(x))


def test_chunked_is_lean(h):
    # Only the input, not its N x d intermediates, is kept for backward.
    plain, chunked = pair(h, 8, True, latent_dims=[6], channel_stride=1)
    x = h.randn(2000, C, seed=4).requires_grad_()

    def saved_bytes(unit):
        storages = {}  # each distinct storage once (x is saved by 6 passes)

        def pack(t):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            unit(x)
        return sum(storages.values())

    lean, full = saved_bytes(chunked), saved_bytes(plain)
    input_bytes = x.numel() * x.element_size()
    assert full > 8 * input_bytes  # the plain path keeps N x d tensors
    assert lean < 1.5 * input_bytes  # x itself, parameters, statistics


def test_chunk_size_errors(h):
    with pytest.raises(ValueError,
                       match="^'chunk_size' must be an int >= 1, got 0$"):
        LatentGNNConv(C, [4], chunk_size=0)
    with pytest.raises(TypeError, match=r"^'chunk_size' must be an int >= 1, "
                       r"got float 4\.0$"):
        LatentGNNConv(C, [4], chunk_size=4.0)
    unit = LatentGNNConv(C, [4], chunk_size=4)
    with pytest.raises(ValueError, match="'return_projection' is not"):
        unit(torch.randn(10, C), return_projection=True)
    assert 'chunk_size=4' in repr(unit)
    with pytest.raises(ValueError, match="has no 'chunk_size'"):
        LatentGNNConv(C, [4]).chunk_rows(torch.randn(10, C))


def test_training_needs_two_nodes(h):
    unit = LatentGNNConv(C, [4], chunk_size=4).train()
    with pytest.raises(ValueError, match='more than one visible node'):
        unit(torch.randn(1, C))


def test_flop_counter_sees_the_chunked_path(h):
    # Module hooks must not fire inside the chunked autograd.Functions
    # (FlopCounterMode's module tracker failed there).
    from torch.utils.flop_counter import FlopCounterMode
    plain, chunked = pair(h, 8, True, latent_dims=[4])
    x = h.randn(30, C, seed=5).requires_grad_()
    flops = []
    for unit in (plain, chunked):
        with FlopCounterMode(display=False) as counter:
            unit(x).sum().backward()
        flops.append(counter.get_total_flops())
    assert flops[1] > flops[0] > 0  # the chunked path recomputes


@pytest.mark.lean_chunks
def test_cpu_chunks_hold_at_least_32_mib():
    """On the CPU, chunk_size is raised so that a [rows, C] chunk tensor
    is above glibc's largest mmap threshold (32 MiB): smaller chunks stay
    resident in its heap (measured 13.5-15.9x the input's bytes at 65,536
    rows, C = 64, against 5x at 262,144).  Larger chunks are kept."""
    from glore_pyg.nn.units.latentgnn import LEAN_BYTES
    assert LEAN_BYTES > 32 << 20
    small = LatentGNNConv(64, [64], chunk_size=65536)
    x32 = torch.zeros(1, 64)
    rows = small.chunk_rows(x32)
    assert rows * 64 * 4 >= 32 << 20 and (rows - 1) * 64 * 4 < LEAN_BYTES
    assert small.chunk_rows(x32.double()) == -(-LEAN_BYTES // (64 * 8))
    big = LatentGNNConv(64, [64], chunk_size=1 << 20)
    assert big.chunk_rows(x32) == 1 << 20
    # the outputs do not depend on the chunking
    from tests.weights import randomize
    unit = randomize(LatentGNNConv(8, [4], chunk_size=5), 0).eval()
    x = torch.randn(40, 8, dtype=torch.float64)
    assert unit.chunk_rows(x) >= 40  # one chunk here
    plain = LatentGNNConv(8, [4]).double().eval()
    plain.load_state_dict(unit.state_dict())
    assert (unit(x) - x).abs().max() > 0.05
    torch.testing.assert_close(unit(x), plain(x))


# BatchNorm settings other than the default, applied to both units: the
# chunked path must normalise and update the running statistics as each
# BatchNorm1d module would.
def _momentum_none(unit):
    for m in unit.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = None  # cumulative average over num_batches_tracked


def _mixed_modes(unit):
    # some heads normalise with running statistics while the others train
    unit.down_v2l[1].eval()
    unit.psi_l2v[0][1].eval()
    unit.up[1].eval()


def _no_running_stats(unit):
    # batch statistics in eval mode too, nothing to update
    for m in unit.modules():
        if isinstance(m, torch.nn.BatchNorm1d) and m is not unit.up[1]:
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


def _not_affine(unit):
    for m in (unit.down_l2v[1], unit.psi_v2l[1][1], unit.up[1]):
        m.affine = False
        m.weight = m.bias = None


BN_SETTINGS = {'momentum_none': _momentum_none, 'mixed_modes': _mixed_modes,
               'no_running_stats': _no_running_stats,
               'not_affine': _not_affine}


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('setting', list(BN_SETTINGS))
def test_batchnorm_settings_match_plain(h, setting, training):
    sizes = [9, 14]
    plain, chunked = pair(h, 4, training, seed=6, latent_dims=[4, 3],
                          channel_stride=3, graph_conv=True)
    for unit in (plain, chunked):
        BN_SETTINGS[setting](unit)
    batch = h.batch_of(sizes)
    for step in range(3):  # momentum=None: a different factor each step
        x = h.randn(sum(sizes), C, seed=7 + step)
        out_p, grads_p = run(plain, x, batch=batch)
        out_c, grads_c = run(chunked, x, batch=batch)
        h.assert_close(out_c, out_p)
        for gp, gc in zip(grads_p, grads_c):
            h.assert_close(gc, gp, atol=1e-9)
        for (name, bp), bc in zip(plain.named_buffers(), chunked.buffers()):
            assert torch.equal(bc, bp) if bp.dtype == torch.long else \
                torch.allclose(bc, bp, atol=1e-12, rtol=0), name
    assert (out_p - x).abs().max() > 1e-2
    if training and setting != 'no_running_stats':
        assert int(chunked.psi_v2l[0][1].num_batches_tracked) == 3


@pytest.mark.parametrize('setting', ['mixed_modes', 'not_affine'])
def test_gradgradcheck_batchnorm_settings(h, setting):
    # eval-mode heads (F.batch_norm with running statistics) next to heads
    # normalised with the chunks' batch statistics, twice differentiable
    from torch.autograd import gradcheck, gradgradcheck
    _, unit = pair(h, 2, True, seed=8, latent_dims=[3, 2], graph_conv=True)
    BN_SETTINGS[setting](unit)
    x = h.randn(7, C, seed=9).requires_grad_()
    batch = h.batch_of([3, 4])

    def fn(t):
        return unit(t, batch=batch)

    tol = dict(eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    assert gradcheck(fn, (x, ), **tol)
    assert gradgradcheck(fn, (x, ), **tol)

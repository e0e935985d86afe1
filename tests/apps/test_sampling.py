"""How an epoch is split over processes: :class:`ProcessBatches` against
the batches one process takes, for many sizes."""
import pytest
import torch

pytest.importorskip('lightning')
from glore_pyg.apps.base import EpochSampler, ProcessBatches  # noqa: E402


def _shares(n, batch_size, world, train, epoch=3):
    data = list(range(n))
    order = EpochSampler(data, seed=7) if train else \
        torch.utils.data.SequentialSampler(data)
    if train:
        order.set_epoch(epoch)
    return [list(ProcessBatches(order, batch_size, world, rank, train))
            for rank in range(world)], list(order)


@pytest.mark.parametrize('n,world', [
    (n, w) for n in (2, 3, 5, 16, 17, 31, 33, 50) for w in (1, 2, 3)
    if w <= n])  # more processes than samples is refused earlier
@pytest.mark.parametrize('batch_size', [1, 4, 8])
def test_training_shares_partition_the_global_batches(n, world, batch_size):
    shares, order = _shares(n, batch_size, world, True)
    # every process takes part in every step, none with an empty batch
    steps = {len(s) for s in shares}
    assert len(steps) == 1
    assert all(len(b) >= 1 for s in shares for b in s)
    # step by step, the union is a run of the epoch's order; over the
    # epoch every sample once (nothing repeated, nothing dropped)
    start = 0
    for step in zip(*shares):
        together = sorted(i for b in step for i in b)
        size = len(together)
        assert together == sorted(order[start:start + size])
        assert max(map(len, step)) - min(map(len, step)) <= 1
        start += size
    assert start == n
    # one process with the global batch takes the same steps, except that
    # a tail smaller than the number of processes joins the step before
    one, _ = _shares(n, batch_size * world, 1, True)
    if n % (batch_size * world) == 0 or n % (batch_size * world) >= world:
        assert [sorted(b) for b in one[0]] == [
            sorted(i for b in step for i in b) for step in zip(*shares)]
    assert len(shares[0]) == len(ProcessBatches(
        EpochSampler(list(range(n)), 7), batch_size, world, 0))


@pytest.mark.parametrize('n,world', [(1, 2), (5, 2), (7, 3), (33, 2)])
def test_evaluation_shares_take_each_sample_once(n, world):
    shares, _ = _shares(n, 4, world, False)
    seen = sorted(i for s in shares for b in s for i in b)
    assert seen == list(range(n))
    for rank, s in enumerate(shares):
        assert len(s) == len(ProcessBatches(
            torch.utils.data.SequentialSampler(range(n)), 4, world, rank,
            train=False))


def test_epochs_differ_and_repeat():
    a, order_a = _shares(20, 4, 2, True, epoch=0)
    b, order_b = _shares(20, 4, 2, True, epoch=1)
    assert order_a != order_b and sorted(order_a) == sorted(order_b)
    assert _shares(20, 4, 2, True, epoch=0) == (a, order_a)


def test_one_process_order_is_pytorchs_distributed_sampler():
    data = list(range(13))
    ours = EpochSampler(data, seed=5)
    ours.set_epoch(2)
    theirs = torch.utils.data.DistributedSampler(
        data, num_replicas=1, rank=0, shuffle=True, seed=5)
    theirs.set_epoch(2)
    assert list(ours) == list(theirs)


@pytest.mark.parametrize('kwargs,match', [
    (dict(rank=2, num_replicas=2), "'rank': 2 is not below"),
    (dict(batch_size=0), "'batch_size'"),
    (dict(num_replicas=0), "'num_replicas'"),
])
def test_bad_arguments(kwargs, match):
    args = dict(sampler=range(4), batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ProcessBatches(**args)


def test_segmentation_loss_is_torch_cross_entropy_and_splits():
    """``loss_terms`` gives F.cross_entropy's weighted mean with the
    ignored label left out, and the terms of two halves add up to it."""
    from torch_geometric.data import Data
    from glore_pyg.apps.segmentation.task import SegmentationTask
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 5, generator=g)
    y = torch.randint(0, 5, (40,), generator=g)
    w = [0.5, 1.0, 2.0, 1.5, 0.25]
    task = SegmentationTask(num_classes=5, class_weights=w, ignore_index=3)
    ref = torch.nn.functional.cross_entropy(
        logits, y, weight=torch.tensor(w), ignore_index=3)
    torch.testing.assert_close(task.loss(logits, Data(y=y)), ref)
    t1, c1 = task.loss_terms(logits[:15], Data(y=y[:15]))
    t2, c2 = task.loss_terms(logits[15:], Data(y=y[15:]))
    torch.testing.assert_close((t1 + t2) / (c1 + c2), ref)
    # per-point weights (ScanNet's margins)
    pw = torch.rand(40, generator=g)
    per = torch.nn.functional.cross_entropy(logits, y, reduction='none')
    torch.testing.assert_close(task.loss(logits, Data(y=y, weight=pw)),
                               (per * pw).sum() / pw.sum())


def test_classification_loss_is_the_mean_cross_entropy():
    from glore_pyg.apps.classification.task import ClassificationTask
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(9, 4, generator=g), torch.randint(0, 4, (9,))
    task = ClassificationTask.__new__(ClassificationTask)
    torch.testing.assert_close(
        ClassificationTask.loss(task, logits, (None, y)),
        torch.nn.functional.cross_entropy(logits, y))


def test_collective_failures_are_told_apart():
    from glore_pyg.apps.base import is_collective_failure
    assert is_collective_failure(RuntimeError(
        '[../gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:26503: '
        'Connection reset by peer'))
    assert is_collective_failure(torch.distributed.DistError('x'))
    assert not is_collective_failure(RuntimeError('mat1 and mat2 shapes '
                                                  'cannot be multiplied'))
    assert not is_collective_failure(ValueError('gloo'))


def test_predictions_are_named_by_data_set_index(tmp_path):
    import numpy as np
    from glore_pyg.apps.classification.task import write_predictions as cls
    from glore_pyg.apps.segmentation.task import write_predictions as seg
    items = [dict(pred=torch.tensor(p), y=torch.tensor(p % 2))
             for p in (5, 6, 7)]
    cls(items, tmp_path / 'c', ids=[2, 0, 1])
    assert np.load(tmp_path / 'c' / 'predictions.npy').tolist() == [6, 7, 5]
    with pytest.raises(ValueError, match="'ids': not a permutation"):
        cls(items, tmp_path / 'c', ids=[0, 0, 1])
    clouds = [dict(pos=torch.rand(4, 3), pred=torch.full((4,), k))
              for k in (1, 2)]
    seg(clouds, tmp_path / 's', ids=[7, 3])
    assert np.load(tmp_path / 's' / 'cloud3.npy').tolist() == [2] * 4
    assert np.load(tmp_path / 's' / 'cloud7.npy').tolist() == [1] * 4
    with pytest.raises(ValueError, match="'ids': 1 for 2 items"):
        seg(clouds, tmp_path / 's', ids=[1])

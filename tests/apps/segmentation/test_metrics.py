"""Segmentation metrics: a hand-computed example, a plain-Python reference on
random clouds, torchmetrics where it defines the same number, batches of
clouds, accumulation, and the argument checks."""
import math
from collections import defaultdict
from fractions import Fraction as F

import numpy as np
import pytest
import torch

torchmetrics = pytest.importorskip('torchmetrics')

from torchmetrics.classification import (  # noqa: E402
    MulticlassAccuracy, MulticlassJaccardIndex)

from glore_pyg.apps.segmentation.metrics import (  # noqa: E402
    SegmentationMetrics, class_point_accuracy, class_voxel_accuracy,
    confusion_matrix, miou, point_accuracy, voxel_accuracy, voxel_labels)

NAN = float('nan')


def close(a, b):
    """Scalars, sequences or tensors, ``nan`` equal to ``nan``."""
    def as64(v):
        if isinstance(v, torch.Tensor):
            return v.double()
        if isinstance(v, (list, tuple)):
            return torch.tensor([float(x) for x in v], dtype=torch.float64)
        return torch.tensor(float(v), dtype=torch.float64)
    return torch.allclose(as64(a), as64(b), atol=1e-6, rtol=0,
                          equal_nan=True)


# ---------------------------------------------------------------------------
# the hand-computed example
# ---------------------------------------------------------------------------
# voxel_size 1, ignore_index 0, num_classes 4; the cloud's minimum corner is
# (0, 0, 0) (point 1), so point p lies in cell floor(p).
#
#  i  pos                 target pred  cell       evaluated point?
#  0  (1.5 , 0.5 , 0.5 )  2      2     (1, 0, 0)  yes, correct
#  1  (0.0 , 0.0 , 0.0 )  0      1     (0, 0, 0)  no (unannotated)
#  2  (0.5 , 0.5 , 0.5 )  1      1     (0, 0, 0)  yes, correct
#  3  (1.25, 0.75, 0.25)  2      3     (1, 0, 0)  yes, wrong
#  4  (0.25, 2.5 , 0.5 )  1      2     (0, 2, 0)  yes, wrong
#  5  (0.75, 2.25, 0.75)  3      3     (0, 2, 0)  yes, correct
#  6  (1.5 , 0.5 , 0.9 )  1      1     (1, 0, 0)  yes, correct
#  7  (0.9 , 0.9 , 0.9 )  2      0     (0, 0, 0)  yes, wrong (predicting the
#                                                  ignore label is wrong)
#
# point accuracy: 7 evaluated, correct 0, 2, 5, 6       -> 4/7
# per class (recall):  1: points 2, 4, 6 -> 2/3;  2: points 0, 3, 7 -> 1/3;
#                      3: point 5 -> 1/1        -> mean (2/3 + 1/3 + 1)/3 = 2/3
# IoU: 1: tp 2 (2, 6), fn 1 (4), fp 0                   -> 2/3
#      2: tp 1 (0), fn 2 (3, 7), fp 1 (4)                -> 1/4
#      3: tp 1 (5), fn 0, fp 1 (3)                       -> 1/2
#      mIoU (2/3 + 1/4 + 1/2)/3                          -> 17/36
# voxels, sorted by cell:
#   (0, 0, 0): points 1, 2, 7, first 1: target 0 -> not evaluated
#   (0, 2, 0): points 4, 5,    first 4: target 1, pred 2 -> wrong
#   (1, 0, 0): points 0, 3, 6, first 0: target 2, pred 2 -> correct
# voxel accuracy 1/2; per class 1: 0/1, 2: 1/1, 3: absent (nan)
#   -> class-averaged voxel accuracy (0 + 1)/2 = 1/2 (PointNet++'s
#      seen + 1e-6 would give (0 + 1 + 0)/3 = 1/3).
# (PointNet++'s ceil() would give point 1, alone on the minimum plane, a cell
#  of its own; with floor() it shares the cube [0, 1)^3 with points 2 and 7.)
HAND_POS = torch.tensor([[1.5, 0.5, 0.5], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5],
                         [1.25, 0.75, 0.25], [0.25, 2.5, 0.5],
                         [0.75, 2.25, 0.75], [1.5, 0.5, 0.9],
                         [0.9, 0.9, 0.9]])
HAND_TARGET = torch.tensor([2, 0, 1, 2, 1, 3, 1, 2])
HAND_PRED = torch.tensor([2, 1, 1, 3, 2, 3, 1, 0])


def test_hand_example_functional():
    pos, pred, target = HAND_POS, HAND_PRED, HAND_TARGET
    both = torch.stack([target, pred], 1)
    assert voxel_labels(pos, both, 1.0).tolist() == [[0, 1], [1, 2], [2, 2]]
    assert voxel_labels(pos, torch.arange(8), 1.0).tolist() == [1, 4, 0]

    assert close(point_accuracy(pred, target), F(4, 7))
    mean, per_class = class_point_accuracy(pred, target, 4)
    assert close(mean, F(2, 3))
    assert close(per_class, [NAN, F(2, 3), F(1, 3), 1])
    mean, per_class = miou(pred, target, 4)
    assert close(mean, F(17, 36))
    assert close(per_class, [NAN, F(2, 3), F(1, 4), F(1, 2)])
    assert close(voxel_accuracy(pos, pred, target, 1.0), F(1, 2))
    mean, per_class = class_voxel_accuracy(pos, pred, target, 4, 1.0)
    assert close(mean, F(1, 2))
    assert close(per_class, [NAN, 0, 1, NAN])
    assert confusion_matrix(pred, target, 4).tolist() == [
        [0, 0, 0, 0], [0, 2, 1, 0], [1, 0, 1, 1], [0, 0, 0, 1]]


def test_hand_example_default_voxel_size_and_metric():
    # the same cloud in units of 2 cm: the same cells at the default size
    pos = HAND_POS * 0.02
    assert close(voxel_accuracy(pos, HAND_PRED, HAND_TARGET), F(1, 2))
    m = SegmentationMetrics(num_classes=4)
    m.update(pos, HAND_PRED, HAND_TARGET)
    out = m.compute()
    assert set(out) == {'point_acc', 'voxel_acc', 'class_point_acc',
                        'class_voxel_acc', 'miou', 'iou_per_class'}
    assert close(out['point_acc'], F(4, 7))
    assert close(out['voxel_acc'], F(1, 2))
    assert close(out['class_point_acc'], F(2, 3))
    assert close(out['class_voxel_acc'], F(1, 2))
    assert close(out['miou'], F(17, 36))
    assert close(out['iou_per_class'], [NAN, F(2, 3), F(1, 4), F(1, 2)])


def test_first_point_is_the_lowest_index_not_the_majority():
    # three points in one voxel; the majority says 2, the first says 1
    pos = torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [0.3, 0.3, 0.3]])
    target = torch.tensor([1, 2, 2])
    assert voxel_labels(pos, target, 1.0).tolist() == [1]
    # reversing the point order changes the representative
    assert voxel_labels(pos.flip(0), target.flip(0), 1.0).tolist() == [2]


def test_representatives_are_pointnet2_np_unique_return_index():
    # PointNet++ numbers the cells of one cloud and keeps
    # np.unique(vidx, return_index=True)[1], the first occurrence of each;
    # here with floor() and strides that cannot alias
    pos, _, _, batch, _ = random_clouds(7)
    pos = pos[batch == 0].numpy()
    cell = np.floor((pos - pos.min(0)) / 0.02).astype(np.int64)
    nvox = cell.max(0) + 1
    vidx = cell[:, 0] + cell[:, 1] * nvox[0] + cell[:, 2] * nvox[0] * nvox[1]
    _, vpidx = np.unique(vidx, return_index=True)
    ours = voxel_labels(torch.from_numpy(pos), torch.arange(len(pos)))
    assert sorted(ours.tolist()) == sorted(vpidx.tolist())


# ---------------------------------------------------------------------------
# a plain-Python reference on random clouds
# ---------------------------------------------------------------------------
def reference(pos, pred, target, batch, num_classes, ignore, voxel_size):
    """The definitions written out with loops, dicts and numpy."""
    pos, pred, target, batch = (t.numpy() for t in (pos, pred, target, batch))
    origin = {b: pos[batch == b].min(0) for b in np.unique(batch)}
    first = {}
    for i in range(len(pos)):
        cell = np.floor((pos[i] - origin[batch[i]]) / voxel_size)
        first.setdefault((int(batch[i]),) + tuple(int(c) for c in cell), i)
    vox = sorted(first.values())

    def stats(idx):
        seen, hit = defaultdict(int), defaultdict(int)
        predicted = defaultdict(int)
        for i in idx:
            t, p = int(target[i]), int(pred[i])
            if t == ignore:
                continue
            seen[t] += 1
            predicted[p] += 1
            hit[t] += int(t == p)
        acc = sum(hit.values()) / sum(seen.values())
        # per class, nan where undefined and at the ignore label
        cls = [hit[c] / seen[c] if seen[c] and c != ignore else NAN
               for c in range(num_classes)]
        union = [seen[c] + predicted[c] - hit[c] for c in range(num_classes)]
        iou = [hit[c] / u if u and c != ignore else NAN
               for c, u in enumerate(union)]
        return acc, cls, iou

    pacc, pcls, piou = stats(range(len(pos)))
    vacc, vcls, _ = stats(vox)
    return dict(point_acc=pacc, voxel_acc=vacc,
                class_point_acc=np.nanmean(pcls),
                class_voxel_acc=np.nanmean(vcls), miou=np.nanmean(piou),
                iou_per_class=piou, class_point=pcls, class_voxel=vcls)


def random_clouds(seed, sizes=(60, 45, 80), num_classes=8):
    """Clouds of a 10 cm cube (a few points per 2 cm voxel) at different
    offsets; target avoids classes 4 and 7, pred never says 7 (so 7 is
    absent everywhere, 4 only predicted); about a fifth unannotated."""
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    batch = torch.repeat_interleave(torch.arange(len(sizes)),
                                    torch.tensor(sizes))
    pos = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.1
    pos = pos + torch.randn(len(sizes), 3, generator=g,
                            dtype=torch.float64)[batch]
    present = torch.tensor([0, 1, 2, 3, 5, 6])
    target = present[torch.randint(0, 6, (n, ), generator=g)]
    target[torch.rand(n, generator=g) < 0.2] = 0
    # mostly right, sometimes any label but 7 (the ignore label included)
    pred = torch.where(torch.rand(n, generator=g) < 0.6, target,
                       torch.randint(0, 7, (n, ), generator=g))
    pred[(target != 0).nonzero()[:3, 0]] = 4
    return pos, pred, target, batch, num_classes


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_clouds_match_reference(seed):
    pos, pred, target, batch, c = random_clouds(seed)
    ref = reference(pos, pred, target, batch, c, 0, 0.02)
    assert close(point_accuracy(pred, target), ref['point_acc'])
    assert close(voxel_accuracy(pos, pred, target, batch=batch),
                 ref['voxel_acc'])
    mean, per_class = class_point_accuracy(pred, target, c)
    assert close(mean, ref['class_point_acc'])
    assert close(per_class, ref['class_point'])
    mean, per_class = class_voxel_accuracy(pos, pred, target, c, batch=batch)
    assert close(mean, ref['class_voxel_acc'])
    assert close(per_class, ref['class_voxel'])
    mean, per_class = miou(pred, target, c)
    assert close(mean, ref['miou'])
    assert close(per_class, ref['iou_per_class'])
    # absent classes: 7 nowhere (nan IoU), 4 only predicted (IoU 0)
    assert math.isnan(per_class[7]) and per_class[4] == 0

    m = SegmentationMetrics(c)
    m.update(pos, pred, target, batch)
    out = m.compute()
    for key in ('point_acc', 'voxel_acc', 'class_point_acc',
                'class_voxel_acc', 'miou', 'iou_per_class'):
        assert close(out[key], ref[key]), key


def test_torchmetrics_agreement_and_documented_differences():
    pos, pred, target, batch, c = random_clouds(3)
    micro = MulticlassAccuracy(c, average='micro', ignore_index=0)
    assert close(point_accuracy(pred, target), micro(pred, target))

    # per-class recall agrees where the class occurs in the ground truth
    ours_mean, ours = class_point_accuracy(pred, target, c)
    theirs = MulticlassAccuracy(c, average=None, ignore_index=0)(pred, target)
    occurs = torch.bincount(target[target != 0], minlength=c) > 0
    assert torch.allclose(ours[occurs], theirs[occurs])
    # torchmetrics' macro average runs over the classes with tp + fp + fn > 0:
    # here also class 4 (only predicted) and the ignore class 0 (predicted
    # on annotated points), each adding a zero
    cm = confusion_matrix(pred, target, c)
    active = (cm.sum(0) + cm.sum(1)) > 0
    assert active[0] and active[4] and not occurs[4]
    macro = MulticlassAccuracy(c, average='macro', ignore_index=0)
    assert close(macro(pred, target), theirs[active].mean())
    assert macro(pred, target) < ours_mean
    # without predictions outside the ground-truth classes the two agree
    clean = torch.where(occurs[pred], pred, target)
    assert close(class_point_accuracy(clean, target, c)[0],
                 macro(clean, target))

    # mIoU is MulticlassJaccardIndex's macro average
    jac = MulticlassJaccardIndex(c, average='macro', ignore_index=0)
    mean, per_class = miou(pred, target, c)
    assert close(mean, jac(pred, target))
    per_theirs = MulticlassJaccardIndex(c, average=None,
                                        ignore_index=0)(pred, target)
    defined = ~per_class.isnan()
    assert torch.allclose(per_class[defined], per_theirs[defined])


@pytest.mark.parametrize('ignore_index', [None, 255])
def test_other_ignore_conventions(ignore_index):
    pos, pred, target, batch, c = random_clouds(4)
    if ignore_index is not None:
        target = torch.where(target == 0, torch.tensor(ignore_index), target)
    ref = reference(pos, pred, target, batch, c, ignore_index, 0.02)
    mean, per_class = miou(pred, target, c, ignore_index=ignore_index)
    jac = MulticlassJaccardIndex(c, average='macro',
                                 ignore_index=ignore_index)
    assert close(mean, jac(pred, target))
    m = SegmentationMetrics(c, ignore_index=ignore_index)
    m.update(pos, pred, target, batch)
    out = m.compute()
    for key in ('point_acc', 'voxel_acc', 'class_point_acc',
                'class_voxel_acc', 'miou', 'iou_per_class'):
        assert close(out[key], ref[key]), key
    # no ignore class in range: every class is evaluated, 0 included
    assert not math.isnan(out['iou_per_class'][0])


# ---------------------------------------------------------------------------
# batches of clouds and accumulation
# ---------------------------------------------------------------------------
def test_clouds_of_a_batch_never_share_a_voxel():
    # two one-point clouds 1 cm apart: merged they fill one 2 cm voxel
    pos = torch.tensor([[0.101, 0.101, 0.101], [0.111, 0.111, 0.111]])
    target = torch.tensor([1, 2])
    pred = torch.tensor([1, 1])
    batch = torch.tensor([0, 1])
    assert voxel_labels(pos, target).tolist() == [1]
    assert voxel_labels(pos, target, batch=batch).tolist() == [1, 2]
    assert close(voxel_accuracy(pos, pred, target), 1)
    assert close(voxel_accuracy(pos, pred, target, batch=batch), F(1, 2))
    m = SegmentationMetrics(3)
    m.update(pos, pred, target, batch)
    assert close(m.compute()['voxel_acc'], F(1, 2))
    # cloud indices need not be sorted or consecutive
    assert voxel_labels(pos.flip(0), target.flip(0),
                        batch=torch.tensor([7, 3])).tolist() == [1, 2]


def test_a_batch_equals_its_clouds_one_by_one():
    pos, pred, target, batch, c = random_clouds(5)
    whole = SegmentationMetrics(c)
    whole.update(pos, pred, target, batch)
    single = SegmentationMetrics(c)
    for b in range(3):
        mask = batch == b
        # a cloud alone, shifted: its grid follows its own minimum corner
        single.update(pos[mask] + 3.0, pred[mask], target[mask])
    assert torch.equal(whole.point_confmat, single.point_confmat)
    assert torch.equal(whole.voxel_confmat, single.voxel_confmat)


def test_accumulation_over_updates_equals_one_update_and_reset():
    pos, pred, target, batch, c = random_clouds(6, sizes=(30, 50, 20, 40))
    once = SegmentationMetrics(c)
    once.update(pos, pred, target, batch)
    parts = SegmentationMetrics(c)
    # updates of [cloud 0], [clouds 1, 2], [cloud 3]
    for clouds in ([0], [1, 2], [3]):
        mask = torch.isin(batch, torch.tensor(clouds))
        batch_part = batch[mask] - clouds[0]
        step = parts(pos[mask], pred[mask], target[mask], batch_part)
        assert set(step) == set(once.compute())
    a, b = once.compute(), parts.compute()
    for key in a:
        assert close(a[key], b[key]), key
    parts.reset()
    assert parts.point_confmat.sum() == 0 and parts.voxel_confmat.sum() == 0


def test_grids_too_fine_for_one_int64_number():
    # one far point makes cloud 0 span 5e7 cells per axis (over 2**62
    # cells in all): the (cloud, x, y, z) rows are compared as rows
    pos, pred, target, batch, c = random_clouds(8)
    pos[0] += 1e6
    ref = reference(pos, pred, target, batch, c, 0, 0.02)
    assert close(voxel_accuracy(pos, pred, target, batch=batch),
                 ref['voxel_acc'])
    assert close(class_voxel_accuracy(pos, pred, target, c, batch=batch)[1],
                 ref['class_voxel'])
    with pytest.raises(ValueError, match="'voxel_size'.*overflow"):
        voxel_labels(pos * 1e10, target, 1e-6)


def test_labels_of_any_integer_dtype_and_empty_input():
    pred8, target8 = HAND_PRED.to(torch.uint8), HAND_TARGET.to(torch.int32)
    assert close(point_accuracy(pred8, target8), F(4, 7))
    assert close(miou(pred8, target8, 4)[0], F(17, 36))
    empty = torch.zeros(0, dtype=torch.long)
    assert math.isnan(point_accuracy(empty, empty))
    assert voxel_labels(torch.zeros(0, 3), empty).shape == (0, )
    m = SegmentationMetrics(4)
    m.update(torch.zeros(0, 3), empty, empty)
    assert math.isnan(m.compute()['miou'])
    # only unannotated points: nothing to evaluate
    zeros = torch.zeros(3, dtype=torch.long)
    assert math.isnan(voxel_accuracy(torch.rand(3, 3), zeros, zeros))


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------
P3 = torch.rand(4, 3)
L = torch.tensor([0, 1, 2, 1])


@pytest.mark.parametrize('call, error, match', [
    (lambda: point_accuracy(L.float(), L), TypeError, "'pred'.*argmax"),
    (lambda: point_accuracy(L, L.bool()), TypeError, "'target'"),
    (lambda: point_accuracy(L, L[:3]), ValueError, 'same length'),
    (lambda: point_accuracy(L.view(2, 2), L.view(2, 2)), ValueError,
     "'pred'.*one-dimensional"),
    (lambda: point_accuracy(L, L, ignore_index=0.5), TypeError,
     r"^'ignore_index' must be an int, got float 0\.5$"),
    (lambda: miou(L.clamp(max=1), L, 2), ValueError,
     r"'target'.*\[0, 2\).*ignore label 0, got values in \[1, 2\]"),
    (lambda: miou(L + 1, L, 3), ValueError, r"'pred'.*\[0, 3\)"),
    (lambda: miou(L - 1, L, 3), ValueError, r"'pred'.*\[-1, 1\]"),
    (lambda: miou(L, L, 0), ValueError,
     "^'num_classes' must be an int >= 1, got 0$"),
    (lambda: miou(L, L, 3.0), TypeError,
     r"^'num_classes' must be an int >= 1, got float 3\.0$"),
    (lambda: class_point_accuracy(L, L + 3, 4, ignore_index=0), ValueError,
     "'target'"),
    (lambda: voxel_accuracy(P3, L, L, voxel_size=0), ValueError,
     r"^'voxel_size' must be a finite number > 0, got 0\.0$"),
    (lambda: voxel_accuracy(P3, L, L, voxel_size=-0.02), ValueError,
     r"^'voxel_size' must be a finite number > 0, got -0\.02$"),
    (lambda: voxel_accuracy(P3, L, L, voxel_size=float('nan')), ValueError,
     "^'voxel_size' must be a finite number > 0, got nan$"),
    (lambda: voxel_accuracy(P3, L, L, voxel_size='2cm'), TypeError,
     "^'voxel_size' must be a finite number > 0, got str '2cm'$"),
    (lambda: voxel_accuracy(P3[:, :2], L, L), ValueError, r"'pos'.*\[N, 3\]"),
    (lambda: voxel_accuracy(P3.long(), L, L), TypeError, "'pos'"),
    (lambda: voxel_accuracy(P3[:3], L, L), ValueError, "'pos' has 3"),
    (lambda: voxel_accuracy(P3 / 0, L, L), ValueError, 'non-finite'),
    (lambda: voxel_accuracy(P3.to('meta'), L, L), ValueError,
     "'pos'.*device"),
    (lambda: voxel_accuracy(P3, L, L, batch=L.float()), TypeError,
     "'batch'"),
    (lambda: voxel_accuracy(P3, L, L, batch=L[:2]), ValueError, "'batch'"),
    (lambda: voxel_accuracy(P3, L, L, batch=L - 1), ValueError,
     "'batch'.*negative"),
    (lambda: class_voxel_accuracy(P3, L.clamp(max=1), L, 2), ValueError,
     "'target'"),
    (lambda: voxel_labels(P3, L.float()), TypeError, "'labels'"),
    (lambda: voxel_labels(P3, L.view(1, 2, 2)), ValueError, "'labels'"),
    (lambda: voxel_labels(P3, [0, 1, 2, 1]), TypeError, "'labels'"),
    (lambda: SegmentationMetrics(True), TypeError,
     "^'num_classes' must be an int >= 1, got bool True$"),
    (lambda: SegmentationMetrics(3, voxel_size=0), ValueError,
     r"^'voxel_size' must be a finite number > 0, got 0\.0$"),
    (lambda: SegmentationMetrics(3).update(P3, L, L + 1), ValueError,
     "'target'"),
    (lambda: SegmentationMetrics(3).update(P3, L, L, batch=L[:3]),
     ValueError, "'batch'"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_repr_names_the_settings():
    assert 'num_classes=21, ignore_index=0, voxel_size=0.02' in repr(
        SegmentationMetrics(21))

r"""Semantic-segmentation metrics for point clouds: point and voxel accuracy,
their class averages, and the intersection over union.

The definitions follow the ScanNet evaluation of PointNet++ (Qi et al.,
`"PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space" <https://arxiv.org/abs/1706.02413>`_, NeurIPS 2017; code
``scannet/train.py`` and ``scannet/pc_util.py`` of
`charlesq34/pointnet2 <https://github.com/charlesq34/pointnet2>`_):

* **ignore label.**  Points whose *ground truth* is ``ignore_index``
  (ScanNet: ``0``, unannotated) are never evaluated.  A *prediction* equal to
  ``ignore_index`` on an evaluated point is an ordinary wrong answer.
* **evaluated classes.**  ``0 .. num_classes - 1`` without ``ignore_index``
  (ScanNet: classes ``1 .. 20`` of 21).
* **voxels.**  Each cloud is cut into cubes of side ``voxel_size`` (2 cm)
  anchored at the cloud's minimum corner; a voxel takes the ground-truth and
  the predicted label of one representative point, its *first* point (the
  lowest index among its points), and counts when that ground truth is not
  ``ignore_index``.  Points of different clouds never share a voxel.
  :func:`voxel_labels` names the two places where the grid departs from the
  PointNet++ code (``floor`` for ``ceil``; cells that cannot alias).

Every number is a reduction of a confusion matrix :math:`M`, where
:math:`M_{tp}` counts the evaluated points (or voxels) of ground truth
:math:`t` predicted as :math:`p`; the matrices of several batches add up, so
accumulating them equals evaluating all points at once.  With :math:`K` the
evaluated classes:

.. math::
    \mathrm{acc} = \frac{\sum_t M_{tt}}{\sum_{t,p} M_{tp}}, \qquad
    \mathrm{acc}_c = \frac{M_{cc}}{\sum_p M_{cp}}, \qquad
    \mathrm{IoU}_c = \frac{M_{cc}}{\sum_p M_{cp} + \sum_t M_{tc} - M_{cc}}

and the class averages are the means of :math:`\mathrm{acc}_c` and
:math:`\mathrm{IoU}_c` over the classes of :math:`K` where they are
defined:

* **class-averaged accuracy**: over the classes that occur in the ground
  truth (:math:`\sum_p M_{cp} > 0`).  PointNet++ divides by
  ``seen + 1e-6`` instead, so there a class absent from the ground truth
  adds a zero and still counts in the mean over all 20 classes; when every
  evaluated class occurs (as over a whole ScanNet split) the two agree up to
  that ``1e-6``.  ``torchmetrics``' ``MulticlassAccuracy(average='macro')``
  averages over the classes with ``tp + fp + fn > 0`` instead: a class
  that is only predicted adds a zero, and with ``ignore_index`` in range the
  ignore class itself adds a zero when it is predicted.
* **mIoU**: over the classes that occur in the ground truth or the
  predictions (union :math:`> 0`); a class that is predicted but absent from
  the ground truth has IoU 0 and counts.  This is
  ``torchmetrics``' ``MulticlassJaccardIndex(average='macro')``.

A metric with nothing to evaluate (no evaluated point, or no class where it
is defined) is ``nan``.  The per-class results hold ``nan`` for undefined
classes and for ``ignore_index``, so that entry ``c`` belongs to label ``c``.

This module needs ``torchmetrics`` (an optional dependency of glore-pyg).
"""
import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from ...functional.checks import check_float, check_int

try:
    from torchmetrics import Metric
    from torchmetrics.functional.classification import \
        multiclass_confusion_matrix
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError("glore_pyg.apps.segmentation.metrics needs 'torchmetrics' "
                      "(pip install torchmetrics)") from e

__all__ = [
    'point_accuracy', 'class_point_accuracy', 'voxel_labels',
    'voxel_accuracy', 'class_voxel_accuracy', 'miou', 'confusion_matrix',
    'SegmentationMetrics'
]

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32,
               torch.int64)


# ---------------------------------------------------------------------------
# argument checks (all before any work)
# ---------------------------------------------------------------------------
def _check_ignore_index(ignore_index) -> Optional[int]:
    return None if ignore_index is None else check_int(ignore_index,
                                                       'ignore_index')


def _check_label_tensor(t, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"'{name}' must be a tensor of integer labels, got "
                        f"{type(t).__name__}")
    if t.dtype not in _INT_DTYPES:
        hint = (" (class scores? take 'argmax(dim=-1)' first)"
                if t.is_floating_point() else "")
        raise TypeError(f"'{name}' must hold integer labels, got dtype "
                        f"{t.dtype}{hint}")
    if t.dim() != 1:
        raise ValueError(f"'{name}' must be one-dimensional [N], got shape "
                         f"{list(t.shape)}")


def _check_labels(pred, target, num_classes: Optional[int],
                  ignore_index: Optional[int]) -> None:
    """``pred`` and ``target``: integer ``[N]`` of equal length; with
    ``num_classes``, ``pred`` in ``[0, num_classes)`` and ``target`` too or
    equal to ``ignore_index``."""
    _check_label_tensor(pred, 'pred')
    _check_label_tensor(target, 'target')
    if pred.numel() != target.numel():
        raise ValueError(f"'pred' and 'target' must have the same length, "
                         f"got {pred.numel()} and {target.numel()}")
    if pred.device != target.device:
        raise ValueError(f"'pred' and 'target' must be on the same device, "
                         f"got {pred.device} and {target.device}")
    if num_classes is None or pred.numel() == 0:
        return
    # one host read for the four bounds
    lo_p, hi_p = pred.aminmax()
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel():
        lo_t, hi_t = valid.aminmax()
    else:
        lo_t = hi_t = torch.zeros((), dtype=target.dtype, device=target.device)
    lo_p, hi_p, lo_t, hi_t = torch.stack(
        [lo_p.long(), hi_p.long(), lo_t.long(), hi_t.long()]).tolist()
    if lo_p < 0 or hi_p >= num_classes:
        raise ValueError(f"'pred' must hold labels in [0, {num_classes}) "
                         f"('num_classes'={num_classes}), got values in "
                         f"[{lo_p}, {hi_p}]")
    if lo_t < 0 or hi_t >= num_classes:
        raise ValueError(f"'target' must hold labels in [0, {num_classes}) "
                         f"('num_classes'={num_classes}) or the ignore label "
                         f"{ignore_index}, got values in [{lo_t}, {hi_t}]")


def _check_pos(pos, num_points: int, device) -> None:
    if not isinstance(pos, Tensor):
        raise TypeError(f"'pos' must be a tensor [N, 3], got "
                        f"{type(pos).__name__}")
    if not pos.is_floating_point():
        raise TypeError(f"'pos' must be a floating-point tensor [N, 3], got "
                        f"dtype {pos.dtype}")
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"'pos' must have shape [N, 3], got "
                         f"{list(pos.shape)}")
    if pos.size(0) != num_points:
        raise ValueError(f"'pos' has {pos.size(0)} points but the labels "
                         f"have {num_points}")
    if pos.device != device:
        raise ValueError(f"'pos' must be on the labels' device {device}, got "
                         f"{pos.device}")
    if not bool(torch.isfinite(pos).all()):
        raise ValueError("'pos' holds non-finite coordinates (nan or inf)")


def _check_batch(batch, num_points: int, device) -> None:
    if batch is None:
        return
    if not isinstance(batch, Tensor):
        raise TypeError(f"'batch' must be a tensor [N] of cloud indices, got "
                        f"{type(batch).__name__}")
    if batch.dtype not in _INT_DTYPES:
        raise TypeError(f"'batch' must hold integer cloud indices, got dtype "
                        f"{batch.dtype}")
    if batch.dim() != 1 or batch.numel() != num_points:
        raise ValueError(f"'batch' must have shape [{num_points}] (one cloud "
                         f"index per point), got {list(batch.shape)}")
    if batch.device != device:
        raise ValueError(f"'batch' must be on the labels' device {device}, "
                         f"got {batch.device}")
    if batch.numel() and int(batch.min()) < 0:
        raise ValueError("'batch' holds negative cloud indices")


# ---------------------------------------------------------------------------
# voxels
# ---------------------------------------------------------------------------
def _first_point_per_voxel(pos: Tensor, voxel_size: float,
                           batch: Optional[Tensor]) -> Tensor:
    """The lowest point index in each occupied voxel ``[V]``, voxels sorted
    by (cloud, x, y, z) cell."""
    n = pos.size(0)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=pos.device)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    batch = batch.long()
    # each cloud's grid starts at its own minimum corner, as in PointNet++
    origin = scatter(pos, batch, dim=0, reduce='min')  # [B, 3]
    # pos - origin >= 0 exactly (float subtraction is monotonic)
    scaled = (pos - origin[batch]) / voxel_size  # [N, 3]
    if float(scaled.max()) >= 2**62:
        raise ValueError(f"'voxel_size' {voxel_size} is too small for the "
                         f"extent of 'pos': the cell numbers overflow int64")
    cell = torch.floor(scaled).long()  # [N, 3]
    key = torch.cat([batch.unsqueeze(1), cell], dim=1)  # [N, 4]
    extent = [v + 1 for v in key.amax(0).tolist()]
    if math.prod(extent) < 2**62:
        # (cloud, x, y, z) as one mixed-radix number, in the same order:
        # a 1-D unique is ~100x faster than unique(dim=0) on rows
        flat = key[:, 0]
        for d in range(1, 4):
            flat = flat * extent[d] + key[:, d]
        _, voxel = torch.unique(flat, return_inverse=True)  # [N]
    else:  # grids too fine to number in int64
        _, voxel = torch.unique(key, dim=0, return_inverse=True)  # [N]
    num_voxels = int(voxel.max()) + 1
    first = torch.full((num_voxels, ), n, dtype=torch.long, device=pos.device)
    return first.scatter_reduce_(0, voxel,
                                 torch.arange(n, device=pos.device),
                                 reduce='amin')


def voxel_labels(pos: Tensor, labels: Tensor, voxel_size: float = 0.02,
                 batch: Optional[Tensor] = None) -> Tensor:
    r"""The label of each occupied voxel: the label of its first point.

    This is ``point_cloud_label_to_surface_voxel_label_fast`` of PointNet++
    (``scannet/pc_util.py``): every cloud is cut into cubes of side
    ``voxel_size`` anchored at its minimum corner, point :math:`i` of cloud
    :math:`b` falls into cell
    :math:`(b, \lfloor (\mathbf{p}_i - \min_{j \in b} \mathbf{p}_j) /
    s \rfloor)`, and each occupied cell takes the label of its point with the
    lowest index (``np.unique(..., return_index=True)`` there).  Two
    deliberate differences: PointNet++ uses :math:`\lceil\cdot\rceil`, which
    puts the points lying exactly on a cloud's minimum plane into a layer of
    cells of their own (:math:`\lfloor\cdot\rfloor` makes every cell the
    same half-open cube), and it flattens the cell to one number with strides
    that can alias two cells at the far faces; cells here are exact integer
    triples.

    Args:
        pos (Tensor): point coordinates :math:`[N, 3]`, floating point, in
            the units of ``voxel_size``.
        labels (Tensor): integer labels :math:`[N]` or :math:`[N, K]` (for
            example ``torch.stack([target, pred], 1)``: all columns of a
            voxel come from the same point).
        voxel_size (float, optional): the side :math:`s` of a voxel.
            (default: :obj:`0.02`, 2 cm for coordinates in metres)
        batch (Tensor, optional): the cloud index of each point :math:`[N]`
            (a PyG batch vector, sorted or not); each cloud is voxelised on
            its own grid and voxels never merge across clouds.
            (default: :obj:`None`, one cloud)

    Returns:
        Tensor: :math:`[V]` or :math:`[V, K]`, one row per occupied voxel,
        voxels sorted by cloud, then by cell :math:`(x, y, z)`.

    Raises:
        TypeError: ``pos`` not floating point, ``labels`` or ``batch`` not
            integer, ``voxel_size`` not a number.
        ValueError: mismatched shapes, non-finite ``pos``,
            ``voxel_size <= 0``, negative ``batch``, or cells too many to
            number in int64 (``voxel_size`` tiny for the extent of ``pos``).
    """
    voxel_size = check_float(voxel_size, 'voxel_size', low=0,
                             low_open=True)
    if not isinstance(labels, Tensor):
        raise TypeError(f"'labels' must be a tensor of integer labels, got "
                        f"{type(labels).__name__}")
    if labels.dtype not in _INT_DTYPES:
        raise TypeError(f"'labels' must hold integer labels, got dtype "
                        f"{labels.dtype}")
    if labels.dim() not in (1, 2):
        raise ValueError(f"'labels' must have shape [N] or [N, K], got "
                         f"{list(labels.shape)}")
    _check_pos(pos, labels.size(0), labels.device)
    _check_batch(batch, labels.size(0), labels.device)
    return labels[_first_point_per_voxel(pos, voxel_size, batch)]


# ---------------------------------------------------------------------------
# confusion matrices and their reductions (each formula once)
# ---------------------------------------------------------------------------
def _confmat(pred: Tensor, target: Tensor, num_classes: int,
             ignore_index: Optional[int]) -> Tensor:
    return multiclass_confusion_matrix(pred.long(), target.long(),
                                       num_classes, ignore_index=ignore_index,
                                       validate_args=False)


def _voxel_confmat(pos: Tensor, pred: Tensor, target: Tensor,
                   num_classes: int, ignore_index: Optional[int],
                   voxel_size: float, batch: Optional[Tensor]) -> Tensor:
    first = _first_point_per_voxel(pos, voxel_size, batch)
    return _confmat(pred[first], target[first], num_classes, ignore_index)


def _evaluated(num_classes: int, ignore_index: Optional[int],
               device) -> Tensor:
    keep = torch.ones(num_classes, dtype=torch.bool, device=device)
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        keep[ignore_index] = False
    return keep


def _nan_divide(num: Tensor, den: Tensor) -> Tensor:
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp(min=1),
                       torch.full_like(num, math.nan))


def _accuracy_from(cm: Tensor) -> Tensor:
    return _nan_divide(cm.diagonal().sum(), cm.sum()).float()


def _class_accuracy_from(cm: Tensor,
                         ignore_index: Optional[int]) -> Tuple[Tensor, Tensor]:
    per_class = _nan_divide(cm.diagonal(), cm.sum(1))
    per_class[~_evaluated(cm.size(0), ignore_index, cm.device)] = math.nan
    return per_class.nanmean().float(), per_class.float()


def _iou_from(cm: Tensor,
              ignore_index: Optional[int]) -> Tuple[Tensor, Tensor]:
    tp = cm.diagonal()
    per_class = _nan_divide(tp, cm.sum(0) + cm.sum(1) - tp)
    per_class[~_evaluated(cm.size(0), ignore_index, cm.device)] = math.nan
    return per_class.nanmean().float(), per_class.float()


# ---------------------------------------------------------------------------
# functional API
# ---------------------------------------------------------------------------
def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int,
                     ignore_index: Optional[int] = 0) -> Tensor:
    r"""The confusion matrix of the evaluated points,
    ``torchmetrics``' ``multiclass_confusion_matrix``.

    Args:
        pred (Tensor): predicted labels :math:`[N]`, integer in
            ``[0, num_classes)``.
        target (Tensor): ground-truth labels :math:`[N]`, integer in
            ``[0, num_classes)`` or ``ignore_index``.
        num_classes (int): number of labels, the ignore label included if it
            is one of them (ScanNet: 21).
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None`. (default: :obj:`0`)

    Returns:
        LongTensor: :math:`M` ``[num_classes, num_classes]``,
        :math:`M_{tp}` = number of evaluated points of ground truth
        :math:`t` predicted as :math:`p`.

    Raises:
        TypeError: labels not integer tensors, ``num_classes`` or
            ``ignore_index`` not an int.
        ValueError: lengths differ, labels out of range,
            ``num_classes < 1``.
    """
    num_classes = check_int(num_classes, 'num_classes', minimum=1)
    ignore_index = _check_ignore_index(ignore_index)
    _check_labels(pred, target, num_classes, ignore_index)
    return _confmat(pred, target, num_classes, ignore_index)


def point_accuracy(pred: Tensor, target: Tensor,
                   ignore_index: Optional[int] = 0) -> Tensor:
    r"""Overall point accuracy: the fraction of evaluated points (ground truth
    not ``ignore_index``) whose prediction equals the ground truth
    (PointNet++ ``scannet/train.py``: ``(pred == label) & (label > 0)`` over
    ``label > 0``; ``MulticlassAccuracy(average='micro')``).

    Args:
        pred (Tensor): predicted labels :math:`[N]`, integer.
        target (Tensor): ground-truth labels :math:`[N]`, integer.
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None` to evaluate every point.
            (default: :obj:`0`, ScanNet's unannotated)

    Returns:
        Tensor: a float scalar in :math:`[0, 1]`, ``nan`` when no point is
        evaluated.

    Raises:
        TypeError: labels not integer tensors, ``ignore_index`` not an int.
        ValueError: lengths differ.
    """
    ignore_index = _check_ignore_index(ignore_index)
    _check_labels(pred, target, None, ignore_index)
    keep = (torch.ones_like(target, dtype=torch.bool) if ignore_index is None
            else target != ignore_index)
    correct = (pred.long() == target.long()) & keep
    return _nan_divide(correct.sum(), keep.sum()).float()


def class_point_accuracy(
        pred: Tensor, target: Tensor, num_classes: int,
        ignore_index: Optional[int] = 0) -> Tuple[Tensor, Tensor]:
    r"""Class-averaged point accuracy: the mean over evaluated classes of the
    per-class accuracy (recall) :math:`M_{cc} / \sum_p M_{cp}`, over the
    classes that occur in the ground truth (PointNet++ ``scannet/train.py``,
    "avg class acc"; see the module notes for absent classes).

    Args:
        pred (Tensor): predicted labels :math:`[N]`, integer in
            ``[0, num_classes)``.
        target (Tensor): ground-truth labels :math:`[N]`, integer in
            ``[0, num_classes)`` or ``ignore_index``.
        num_classes (int): number of labels (ScanNet: 21).
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None`. (default: :obj:`0`)

    Returns:
        (Tensor, Tensor): the mean (float scalar, ``nan`` if no class occurs)
        and the per-class accuracies ``[num_classes]`` (``nan`` for absent
        classes and ``ignore_index``).

    Raises:
        TypeError: labels not integer tensors, ``num_classes`` or
            ``ignore_index`` not an int.
        ValueError: lengths differ, labels out of range.
    """
    cm = confusion_matrix(pred, target, num_classes, ignore_index)
    return _class_accuracy_from(cm, ignore_index)


def miou(pred: Tensor, target: Tensor, num_classes: int,
         ignore_index: Optional[int] = 0) -> Tuple[Tensor, Tensor]:
    r"""Mean intersection over union of the evaluated points:
    :math:`\mathrm{IoU}_c = M_{cc} / (\sum_p M_{cp} + \sum_t M_{tc} -
    M_{cc})`, averaged over the evaluated classes that occur in the ground
    truth or the predictions (``MulticlassJaccardIndex(average='macro')``).

    Args:
        pred (Tensor): predicted labels :math:`[N]`, integer in
            ``[0, num_classes)``.
        target (Tensor): ground-truth labels :math:`[N]`, integer in
            ``[0, num_classes)`` or ``ignore_index``.
        num_classes (int): number of labels (ScanNet: 21).
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None`. (default: :obj:`0`)

    Returns:
        (Tensor, Tensor): the mIoU (float scalar, ``nan`` if no class is
        defined) and the per-class IoU ``[num_classes]`` (``nan`` where the
        union is empty and for ``ignore_index``).

    Raises:
        TypeError: labels not integer tensors, ``num_classes`` or
            ``ignore_index`` not an int.
        ValueError: lengths differ, labels out of range.
    """
    cm = confusion_matrix(pred, target, num_classes, ignore_index)
    return _iou_from(cm, ignore_index)


def voxel_accuracy(pos: Tensor, pred: Tensor, target: Tensor,
                   voxel_size: float = 0.02, ignore_index: Optional[int] = 0,
                   batch: Optional[Tensor] = None) -> Tensor:
    r"""Voxel accuracy of the PointNet++ ScanNet protocol: the points are
    voxelised (:func:`voxel_labels`), each voxel takes the ground truth and
    the prediction of its first point, and the accuracy is the fraction of
    voxels with ground truth not ``ignore_index`` whose two labels agree
    (``scannet/train.py``: ``(uvlabel[:,0] == uvlabel[:,1]) &
    (uvlabel[:,0] > 0)`` over ``uvlabel[:,0] > 0``).  Points with the
    ignore label take part in the voxelisation: a voxel whose first point is
    unannotated is not evaluated.

    Args:
        pos (Tensor): point coordinates :math:`[N, 3]`, floating point.
        pred (Tensor): predicted labels :math:`[N]`, integer.
        target (Tensor): ground-truth labels :math:`[N]`, integer.
        voxel_size (float, optional): voxel side, in the units of ``pos``.
            (default: :obj:`0.02`)
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None`. (default: :obj:`0`)
        batch (Tensor, optional): cloud index of each point :math:`[N]`;
            each cloud gets its own voxels. (default: :obj:`None`)

    Returns:
        Tensor: a float scalar in :math:`[0, 1]`, ``nan`` when no voxel is
        evaluated.

    Raises:
        TypeError: labels or ``batch`` not integer, ``pos`` not floating
            point, ``voxel_size`` or ``ignore_index`` of the wrong type.
        ValueError: mismatched lengths or shapes, non-finite ``pos``,
            ``voxel_size <= 0``.
    """
    voxel_size = check_float(voxel_size, 'voxel_size', low=0,
                             low_open=True)
    ignore_index = _check_ignore_index(ignore_index)
    _check_labels(pred, target, None, ignore_index)
    _check_pos(pos, pred.numel(), pred.device)
    _check_batch(batch, pred.numel(), pred.device)
    first = _first_point_per_voxel(pos, voxel_size, batch)
    return point_accuracy(pred[first], target[first], ignore_index)


def class_voxel_accuracy(
        pos: Tensor, pred: Tensor, target: Tensor, num_classes: int,
        voxel_size: float = 0.02, ignore_index: Optional[int] = 0,
        batch: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    r"""Class-averaged voxel accuracy: :func:`class_point_accuracy` of the
    voxel labels of :func:`voxel_accuracy` (PointNet++ ``scannet/train.py``,
    "avg class acc vox"), over the classes that occur among the evaluated
    voxels' ground truth.

    Args:
        pos (Tensor): point coordinates :math:`[N, 3]`, floating point.
        pred (Tensor): predicted labels :math:`[N]`, integer in
            ``[0, num_classes)``.
        target (Tensor): ground-truth labels :math:`[N]`, integer in
            ``[0, num_classes)`` or ``ignore_index``.
        num_classes (int): number of labels (ScanNet: 21).
        voxel_size (float, optional): voxel side. (default: :obj:`0.02`)
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None`. (default: :obj:`0`)
        batch (Tensor, optional): cloud index of each point :math:`[N]`.
            (default: :obj:`None`)

    Returns:
        (Tensor, Tensor): the mean and the per-class voxel accuracies
        ``[num_classes]`` (``nan`` for absent classes and ``ignore_index``).

    Raises:
        TypeError: as :func:`voxel_accuracy`, ``num_classes`` not an int.
        ValueError: as :func:`voxel_accuracy`, labels out of range.
    """
    voxel_size = check_float(voxel_size, 'voxel_size', low=0,
                             low_open=True)
    num_classes = check_int(num_classes, 'num_classes', minimum=1)
    ignore_index = _check_ignore_index(ignore_index)
    _check_labels(pred, target, num_classes, ignore_index)
    _check_pos(pos, pred.numel(), pred.device)
    _check_batch(batch, pred.numel(), pred.device)
    cm = _voxel_confmat(pos, pred, target, num_classes, ignore_index,
                        voxel_size, batch)
    return _class_accuracy_from(cm, ignore_index)


# ---------------------------------------------------------------------------
# accumulating metric
# ---------------------------------------------------------------------------
class SegmentationMetrics(Metric):
    r"""Point and voxel accuracy, their class averages and the IoU of a
    semantic segmentation, accumulated over batches of point clouds (the
    PointNet++ ScanNet evaluation, see :mod:`glore_pyg.apps.segmentation.metrics`).

    The state is two confusion matrices, one over points and one over voxels;
    :meth:`update` adds a batch to both, so the result after several updates
    equals one evaluation of all their points, with each cloud voxelised on
    its own.  A ``torchmetrics.Metric``: ``reset()``, ``forward()`` (the
    metrics of one batch while accumulating), device moves and the sum across
    processes under ``torch.distributed`` come from torchmetrics.

    Args:
        num_classes (int): number of labels, the ignore label included if it
            is one of them (ScanNet: 21).
        ignore_index (int, optional): ground-truth label that is not
            evaluated, or :obj:`None`. (default: :obj:`0`)
        voxel_size (float, optional): voxel side, in the units of ``pos``.
            (default: :obj:`0.02`)
        **kwargs: passed to ``torchmetrics.Metric``.

    Shapes:
        - **update input:** ``pos`` :math:`[N, 3]`, ``pred`` :math:`[N]`,
          ``target`` :math:`[N]`, ``batch`` :math:`[N]` or :obj:`None`.
        - **compute output:** a dict of float scalars ``'point_acc'``,
          ``'voxel_acc'``, ``'class_point_acc'``, ``'class_voxel_acc'``,
          ``'miou'`` and ``'iou_per_class'`` :math:`[C]`.

    Raises:
        TypeError: ``num_classes`` or ``ignore_index`` not an int,
            ``voxel_size`` not a number.
        ValueError: ``num_classes < 1``, ``voxel_size <= 0``.
    """
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    point_confmat: Tensor
    voxel_confmat: Tensor

    def __init__(self, num_classes: int, ignore_index: Optional[int] = 0,
                 voxel_size: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = check_int(num_classes, 'num_classes', minimum=1)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.voxel_size = check_float(voxel_size, 'voxel_size', low=0,
                                      low_open=True)
        zeros = torch.zeros(self.num_classes, self.num_classes,
                            dtype=torch.long)
        self.add_state('point_confmat', zeros.clone(), dist_reduce_fx='sum')
        self.add_state('voxel_confmat', zeros.clone(), dist_reduce_fx='sum')

    def update(self, pos: Tensor, pred: Tensor, target: Tensor,
               batch: Optional[Tensor] = None) -> None:
        r"""Adds one batch of clouds.

        Args:
            pos (Tensor): point coordinates :math:`[N, 3]`, floating point.
            pred (Tensor): predicted labels :math:`[N]`, integer in
                ``[0, num_classes)``.
            target (Tensor): ground-truth labels :math:`[N]`, integer in
                ``[0, num_classes)`` or ``ignore_index``.
            batch (Tensor, optional): cloud index of each point :math:`[N]`
                (a PyG ``Batch.batch``). (default: :obj:`None`, one cloud)

        Raises:
            TypeError: labels or ``batch`` not integer, ``pos`` not floating
                point.
            ValueError: mismatched lengths or shapes, labels out of range,
                non-finite ``pos``, negative ``batch``.
        """
        _check_labels(pred, target, self.num_classes, self.ignore_index)
        _check_pos(pos, pred.numel(), pred.device)
        _check_batch(batch, pred.numel(), pred.device)
        self.point_confmat += _confmat(pred, target, self.num_classes,
                                       self.ignore_index)
        self.voxel_confmat += _voxel_confmat(pos, pred, target,
                                             self.num_classes,
                                             self.ignore_index,
                                             self.voxel_size, batch)

    def compute(self) -> Dict[str, Tensor]:
        r"""The metrics of everything added since the last :meth:`reset`.

        Returns:
            dict: ``'point_acc'``, ``'voxel_acc'``, ``'class_point_acc'``,
            ``'class_voxel_acc'``, ``'miou'`` (float scalars, ``nan`` when
            undefined) and ``'iou_per_class'`` (``[num_classes]``, ``nan``
            for classes with an empty union and for ``ignore_index``).
        """
        miou_, iou = _iou_from(self.point_confmat, self.ignore_index)
        return {
            'point_acc': _accuracy_from(self.point_confmat),
            'voxel_acc': _accuracy_from(self.voxel_confmat),
            'class_point_acc': _class_accuracy_from(self.point_confmat,
                                                    self.ignore_index)[0],
            'class_voxel_acc': _class_accuracy_from(self.voxel_confmat,
                                                    self.ignore_index)[0],
            'miou': miou_,
            'iou_per_class': iou,
        }

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index}, '
                f'voxel_size={self.voxel_size}')

r"""Point-cloud segmentation data sets (PyG ``Dataset`` / ``Data``
conventions).

Every item is a :class:`torch_geometric.data.Data` with ``pos`` [n, 3]
float32, ``x`` [n, F] float32 or :obj:`None` and ``y`` [n] long, and every
data set exposes ``num_classes``, ``class_names``, ``ignore_index`` (the
label left out of losses and metrics, or :obj:`None`) and ``class_weights``
(a [num_classes] tensor where the protocol defines one, else :obj:`None`).

* :class:`SyntheticIndoorScenes` (:mod:`.synthetic`): the project's default,
  generated on the fly; cabinets and wall panels whose label depends on the
  room type only, which only global context reveals.
* :class:`ScanNetPickle` (:mod:`.scannet`): ScanNet as preprocessed by
  PointNet++, with its column sampling, class weights and a whole-scene
  tiling for evaluation.
* :class:`FrogTissues` (:mod:`.frog`): the frog tissue scan shipped in
  pyvista's wheel (``pip install "glore-pyg[data]"``), 15 tissues, left half
  for training, right half for testing.

**S3DIS and ShapeNet** need no class here: PyG's own
:class:`torch_geometric.datasets.S3DIS` and
:class:`torch_geometric.datasets.ShapeNet` read a local ``root`` once its raw
files are there (``root/raw``: the unzipped
``indoor3d_sem_seg_hdf5_data`` for S3DIS, which also needs ``h5py``;
``shapenetcore_partanno_segmentation_benchmark_v0_normal`` for ShapeNet) and
already return ``pos``, ``x`` and ``y``::

    from torch_geometric.datasets import S3DIS, ShapeNet

    # 4,096-point blocks of 1 m x 1 m; x = [r, g, b, x/X, y/Y, z/Z]
    train = S3DIS(root, test_area=5, train=True)
    test = S3DIS(root, test_area=5, train=False)
    # S3DIS: 13 classes, every point labelled, so ignore_index = None
    # ('ceiling', 'floor', 'wall', 'beam', 'column', 'window', 'door',
    #  'table', 'chair', 'sofa', 'bookcase', 'board', 'clutter')

    # part segmentation: x = normals (3 features), y in 0..49,
    # data.category the shape class; ShapeNet.seg_classes maps each
    # category to its part labels (mask the logits of other categories)
    parts = ShapeNet(root, categories=['Airplane'], split='trainval')

Both are ordinary PyG data sets: batch them with
:class:`torch_geometric.loader.DataLoader` exactly like the ones here.
"""
from .frog import FROG_CLASS_NAMES, FrogTissues, load_frog_point_cloud
from .scannet import (
    SCANNET_CLASS_NAMES,
    ScanNetPickle,
    sample_scannet_column,
    scannet_class_weights,
    tile_columns,
)
from .synthetic import (
    AMBIGUOUS_PAIRS,
    CLASS_NAMES,
    ROOM_TYPES,
    SyntheticIndoorScenes,
    generate_room,
)

__all__ = [
    'SyntheticIndoorScenes',
    'generate_room',
    'CLASS_NAMES',
    'ROOM_TYPES',
    'AMBIGUOUS_PAIRS',
    'ScanNetPickle',
    'SCANNET_CLASS_NAMES',
    'scannet_class_weights',
    'sample_scannet_column',
    'tile_columns',
    'FrogTissues',
    'FROG_CLASS_NAMES',
    'load_frog_point_cloud',
]

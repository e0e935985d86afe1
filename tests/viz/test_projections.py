"""glore_pyg.viz.image_projection_maps / point_projection_maps: projection
maps of latent nodes over an image or a point cloud."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('matplotlib')

from matplotlib.figure import Figure  # noqa: E402

from glore_pyg.nn import (GloRe2d, LatentGNN2d, LatentGNNConv,  # noqa: E402
                          NonLocal2d, NonLocalConv)
from glore_pyg.viz import (image_projection_maps,  # noqa: E402
                           point_projection_maps)
from tests.viz import check_png  # noqa: E402

C, H, W = 16, 6, 6


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def assert_close(shown, expected, atol=1e-8):
    """The data of a panel (a masked array) equals ``expected``."""
    assert not np.ma.is_masked(shown)
    np.testing.assert_allclose(np.ma.getdata(shown), np.asarray(expected),
                               rtol=1e-6, atol=atol)


@pytest.fixture(scope='module')
def fmap():
    return randn(2, C, H, W, seed=1)


def run(unit, x, **kwargs):
    unit = unit.eval()
    with torch.no_grad():
        _, projections = unit(x, return_projection=True, **kwargs)
    return unit, projections


def upsample(column, size):
    """A projection column of one sample ``[h*w]`` as the map shown."""
    maps = column.detach().double().reshape(1, 1, H, W)
    return F.interpolate(maps, size=size, mode='bilinear',
                         align_corners=False)[0, 0].numpy()


def scaled(image):
    image = image.double()
    return ((image - image.min()) / (image.max() - image.min())).numpy()


# ---------------------------------------------------------------------------
# image_projection_maps
# ---------------------------------------------------------------------------
def test_glore_image_maps(fmap, tmp_path):
    torch.manual_seed(0)
    unit, projections = run(GloRe2d(C, 8), fmap)
    image = randn(3, 30, 42, seed=2)  # not the feature map's size
    path = tmp_path / 'nested' / 'dir' / 'glore.png'
    fig = image_projection_maps(image, projections, (H, W), sample=1,
                                num_nodes=3, path=path, title='GloRe')
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    check_png(path, fig)

    # B read from the unit, rows of image 1 in (i, j) order
    with torch.no_grad():
        b = unit.unit.proj(fmap[1].movedim(0, -1).reshape(-1, C))  # [36, 8]
    expected = b.abs().sum(0).topk(3).indices.tolist()
    titles = [ax.get_title() for ax in fig.axes[1:]]
    assert titles == [f"latent node {k}" for k in expected]

    base = fig.axes[0].images[0].get_array()
    assert base.shape == (30, 42, 3)
    assert_close(base, scaled(image.movedim(0, -1)))
    for ax, k in zip(fig.axes[1:], expected):
        assert len(ax.images) == 2  # the image, the heat map on top
        heat = ax.images[-1].get_array()
        assert heat.shape == (30, 42)
        assert_close(heat, upsample(b[:, k], (30, 42)), atol=1e-5)
        assert ax.images[-1].get_alpha() < 1


def test_latentgnn_image_maps_nodes_and_kernel(fmap, tmp_path):
    torch.manual_seed(0)
    _, projections = run(LatentGNN2d(C, [4, 6]), fmap)
    image = randn(24, 24, seed=3)  # gray [H, W]
    path = tmp_path / 'latentgnn.png'
    fig = image_projection_maps(image, projections, (H, W), sample=0,
                                kernel=1, nodes=[5, 0], path=path)
    assert len(fig.axes) == 3
    check_png(path, fig)
    assert [ax.get_title() for ax in fig.axes[1:]] == [
        'latent node 5', 'latent node 0']
    v2l = projections[1].visible_to_latent[:H * W]  # sample 0, kernel 1
    for ax, k in zip(fig.axes[1:], [5, 0]):
        assert_close(ax.images[-1].get_array(),
                     upsample(v2l[:, k], (24, 24)), atol=1e-5)
    # gray: the base image is 2-D, shown with a gray colormap
    assert fig.axes[0].images[0].get_array().ndim == 2
    assert fig.axes[0].images[0].get_cmap().name == 'gray'
    # a single Projection works as well (kernel ignored); [1, H, W] image
    fig = image_projection_maps(image[None], projections[0], (H, W),
                                num_nodes=10)
    assert len(fig.axes) == 1 + 4  # at most d = 4 latent nodes


def test_non_local_image_maps(fmap, tmp_path):
    torch.manual_seed(0)
    _, projections = run(NonLocal2d(C), fmap)
    attention = projections[0].latent_graph[1]  # [36, 36]
    image = randn(3, 36, 36, seed=4)
    path = tmp_path / 'non_local.png'
    fig = image_projection_maps(image, projections, (H, W), sample=1,
                                path=path)
    assert len(fig.axes) == 1 + 4
    check_png(path, fig)
    titles = [ax.get_title() for ax in fig.axes[1:]]
    assert all(t.startswith('query (') for t in titles)
    queries = [tuple(int(v) for v in t[7:-1].split(', ')) for t in titles]
    assert len(set(queries)) == 4
    # spread over the map: several rows and columns
    assert len({i for i, _ in queries}) > 1
    assert len({j for _, j in queries}) > 1
    for ax, (i, j) in zip(fig.axes[1:], queries):
        assert_close(ax.images[-1].get_array(),
                     upsample(attention[i * W + j], (36, 36)), atol=1e-5)
        # the query is marked at its cell's centre (6 pixels per cell)
        (line,) = ax.lines
        assert line.get_xdata()[0] == pytest.approx(j * 6 + 2.5)
        assert line.get_ydata()[0] == pytest.approx(i * 6 + 2.5)
    fig = image_projection_maps(image, projections, (H, W), nodes=[7])
    assert fig.axes[1].get_title() == 'query (1, 1)'


def test_image_maps_errors(fmap, tmp_path):
    torch.manual_seed(0)
    _, projections = run(GloRe2d(C, 8), fmap)
    image = randn(3, 12, 12)
    path = tmp_path / 'never.png'

    def call(**kwargs):
        args = dict(image=image, projection=projections,
                    feature_shape=(H, W), path=path)
        args.update(kwargs)
        return image_projection_maps(**args)

    for bad in (randn(2, 12, 12), randn(12), randn(1, 3, 12, 12),
                randn(3, 0, 12)):
        with pytest.raises(ValueError, match="'image'"):
            call(image=bad)
    with pytest.raises(TypeError, match="'image'"):
        call(image=[[0.0, 1.0]])
    for bad, error, match in [
            ((5, 6), ValueError, "^'feature_shape' "),  # not the rows
            ((6, ), ValueError,
             r"^'feature_shape' must be a pair \(h, w\) of ints, got 1 "),
            ((6, 6, 1), ValueError, "^'feature_shape' must be a pair"),
            ('6x6', TypeError, "^'feature_shape' must be a pair"),
            ((0, 36), ValueError,
             r"^'feature_shape\[0\]' must be an int >= 1, got 0$"),
            ((36, 1.0), TypeError,
             r"^'feature_shape\[1\]' must be an int >= 1, got float 1\.0$")]:
        with pytest.raises(error, match=match):
            call(feature_shape=bad)
    for bad in (2, -1):
        with pytest.raises(ValueError,
                           match=rf"^'sample' must be an int in \[0, 1\], "
                           rf"got {bad}$"):
            call(sample=bad)
    with pytest.raises(TypeError, match="^'sample' must be an int in"):
        call(sample=0.0)
    with pytest.raises(ValueError,
                       match=r"^'kernel' must be an int in \[0, 0\], got 1$"):
        call(kernel=1)
    for bad, error, match in [
            ([8], ValueError, r"^'nodes\[0\]' must be an int in \[0, 7\], "
             r"got 8$"),
            ([0, -1], ValueError, r"^'nodes\[1\]' must be an int in "
             r"\[0, 7\], got -1$"),
            ([0, 0], ValueError, "^'nodes' must not repeat a node"),
            ([], ValueError, "^'nodes' must not be empty"),
            ([1.0], TypeError, r"^'nodes\[0\]' must be an int in \[0, 7\], "
             r"got float 1\.0$"),
            (3, TypeError, "^'nodes' must be a sequence of ints, got int 3"),
            (torch.tensor([0.0]), TypeError, "^'nodes' must be an integer "
             "tensor"),
            (torch.zeros(1, 1, dtype=torch.long), ValueError,
             "^'nodes' must be 1-D")]:
        with pytest.raises(error, match=match):
            call(nodes=bad)
    with pytest.raises(ValueError,
                       match="^'num_nodes' must be an int >= 1, got 0$"):
        call(num_nodes=0)
    with pytest.raises(TypeError, match="^'num_nodes' must be an int >= 1, "
                       "got str '2'$"):
        call(num_nodes='2')
    with pytest.raises(TypeError, match="'projection'"):
        call(projection='B')
    with pytest.raises(TypeError, match="'projection'"):
        call(projection=[])
    # non-local: queries out of the map
    _, non_local = run(NonLocal2d(C), fmap)
    with pytest.raises(ValueError, match=r"^'nodes\[0\]' must be an int in "
                       r"\[0, 35\], got 36$"):
        call(projection=non_local, nodes=[H * W])
    assert not path.exists()


# ---------------------------------------------------------------------------
# point_projection_maps
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def cloud():
    x = randn(300, C, seed=5)
    pos = randn(300, 3, seed=6)
    batch = torch.cat([torch.zeros(120), torch.ones(180)]).long()
    return x, pos, batch


def test_point_maps(cloud, tmp_path):
    x, pos, batch = cloud
    torch.manual_seed(0)
    _, projections = run(LatentGNNConv(C, [8]), x, batch=batch)
    path = tmp_path / 'points' / 'cloud.png'
    fig = point_projection_maps(pos, projections, sample=1, path=path,
                                title='cloud')
    check_png(path, fig)
    panels = [ax for ax in fig.axes if ax.name == '3d']
    assert len(panels) == 1 + 3
    assert len(fig.axes) == 1 + 3 + 3  # a colorbar per weight panel

    v2l = projections[0].visible_to_latent[batch == 1]  # [180, 8]
    assignment = panels[0].collections[0].get_array()
    assert np.ma.getdata(assignment).tolist() == v2l.argmax(1).tolist()
    expected = v2l.abs().sum(0).topk(3).indices.tolist()
    assert [ax.get_title() for ax in panels[1:]] == [
        f"latent node {k}" for k in expected]
    for ax, k in zip(panels[1:], expected):
        assert_close(ax.collections[0].get_array(), v2l[:, k].double())


def test_point_maps_nodes(cloud):
    x, pos, batch = cloud
    torch.manual_seed(0)
    _, projections = run(LatentGNNConv(C, [4, 6]), x, batch=batch)
    fig = point_projection_maps(pos, projections, kernel=1, nodes=[5])
    panels = [ax for ax in fig.axes if ax.name == '3d']
    assert len(panels) == 2 and len(fig.axes) == 3
    v2l = projections[1].visible_to_latent[batch == 0]
    assert_close(panels[1].collections[0].get_array(), v2l[:, 5].double())
    with pytest.raises(ValueError, match=r"^'nodes\[0\]' must be an int in "
                       r"\[0, 3\], got 5$"):
        point_projection_maps(pos, projections, kernel=0, nodes=[5])


def test_point_maps_errors(cloud, tmp_path):
    x, pos, batch = cloud
    torch.manual_seed(0)
    _, projections = run(LatentGNNConv(C, [8]), x, batch=batch)
    path = tmp_path / 'never.png'
    for bad in (pos[:, :2], pos[:-1], pos[None]):
        with pytest.raises(ValueError, match="'pos'"):
            point_projection_maps(bad, projections, path=path)
    with pytest.raises(TypeError, match="'pos'"):
        point_projection_maps(pos.long(), projections, path=path)
    with pytest.raises(ValueError, match="'sample'"):
        point_projection_maps(pos, projections, sample=2, path=path)
    with pytest.raises(ValueError, match=r"^'nodes\[0\]' must be an int in "):
        point_projection_maps(pos, projections, nodes=[8], path=path)
    with pytest.raises(ValueError, match=r"^'kernel' must be an int in "):
        point_projection_maps(pos, projections, kernel=1, path=path)
    _, non_local = run(NonLocalConv(C), x, batch=batch)
    with pytest.raises(ValueError, match="'projection'.*visible_to_latent"):
        point_projection_maps(pos, non_local, path=path)
    assert not path.exists()

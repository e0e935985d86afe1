"""glore_pyg.viz.latent_graph_heatmap / latent_graph_drawing and
save_figure: the latent graph of a unit as a heat map and a drawing."""
import numpy as np
import pytest
import torch

pytest.importorskip('matplotlib')

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from glore_pyg.nn import (GloRe2d, GloReConv, LatentGNNConv,  # noqa: E402
                          NonLocal2d)
from glore_pyg.viz import (latent_graph_drawing,  # noqa: E402
                           latent_graph_heatmap, save_figure)
from glore_pyg.nn import node_unit  # noqa: E402
from tests.viz import check_png  # noqa: E402

C = 16


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def shown(ax):
    """The matrix of the heat map."""
    (image,) = ax.images
    data = image.get_array()
    assert not np.ma.is_masked(data)
    return np.ma.getdata(data)


def arrows(ax):
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def drawn_nodes(ax):
    """Number of node markers of a networkx drawing."""
    (markers,) = ax.collections
    return len(markers.get_offsets())


@pytest.fixture(scope='module')
def cloud():
    x = randn(300, C, seed=5)
    batch = torch.cat([torch.zeros(120), torch.ones(180)]).long()
    return x, batch


def affinities(unit, x, batch):
    """LatentGNN's F_X of each kernel, read with a hook on the module that
    computes it (not through the Projection)."""
    out = []
    handle = unit.latent_graph.register_forward_hook(
        lambda m, args, output: out.append(output[1].detach()))
    try:
        with torch.no_grad():
            unit.eval()(x, batch=batch)
    finally:
        handle.remove()
    return out


# ---------------------------------------------------------------------------
# latent_graph_heatmap
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('cls', [GloReConv, GloRe2d])
def test_glore_heatmap(cls, tmp_path):
    torch.manual_seed(0)
    unit = cls(C, 5)
    path = tmp_path / 'a' / 'glore.png'
    fig = latent_graph_heatmap(unit, path=path, title='I - A_g')
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # heat map and colorbar
    check_png(path, fig)
    ax = fig.axes[0]
    # GloRe2d: the graph of the GloReConv it wraps
    adjacency = node_unit(unit).latent_graph.adjacency.detach()
    expected = torch.eye(5) - adjacency
    np.testing.assert_allclose(shown(ax), expected.double().numpy(),
                               rtol=1e-6, atol=1e-7)
    assert ax.get_xlabel() == 'from latent node j'
    assert ax.get_ylabel() == 'to latent node k'
    assert ax.get_title() == 'I - A_g'
    # both signs: a diverging colormap centred on 0
    image = ax.images[0]
    low, high = image.get_clim()
    assert image.get_cmap().name == 'RdBu_r'
    assert low == pytest.approx(-high) and high > 0


def test_latentgnn_heatmap(cloud, tmp_path):
    x, batch = cloud
    torch.manual_seed(0)
    unit = LatentGNNConv(C, [4, 6])
    f_x = affinities(unit, x, batch)[1][1]  # kernel 1, sample 1: [6, 6]
    path = tmp_path / 'latentgnn.png'
    fig = latent_graph_heatmap(unit, x=x, batch=batch, sample=1, kernel=1,
                               path=path)
    check_png(path, fig)
    assert len(fig.axes) == 2
    np.testing.assert_allclose(shown(fig.axes[0]), f_x.double().numpy(),
                               rtol=1e-5, atol=1e-7)
    # F_X >= 0: a sequential colormap
    assert (f_x >= 0).all()
    assert fig.axes[0].images[0].get_cmap().name == 'viridis'
    # the same from the projections (list and single) the unit returns
    with torch.no_grad():
        _, projections = unit(x, batch=batch, return_projection=True)
    for source, kernel in ((projections, 1), (projections[1], 0)):
        fig = latent_graph_heatmap(source, sample=1, kernel=kernel)
        np.testing.assert_allclose(shown(fig.axes[0]), f_x.double().numpy(),
                                   rtol=1e-5, atol=1e-7)


def test_matrix_heatmap():
    matrix = torch.tensor([[0.0, 2.0, 0.5], [1.0, 0.0, 3.0], [0.0, 0.25, 1]])
    fig = latent_graph_heatmap(matrix)
    np.testing.assert_array_equal(shown(fig.axes[0]), matrix.double())


def test_heatmap_errors(cloud, tmp_path):
    x, batch = cloud
    path = tmp_path / 'never.png'
    unit = LatentGNNConv(C, [4])
    with pytest.raises(ValueError, match="'x'"):
        latent_graph_heatmap(unit, path=path)
    with pytest.raises(ValueError, match="'sample'"):
        latent_graph_heatmap(unit, x=x, batch=batch, sample=2, path=path)
    with pytest.raises(ValueError, match="'kernel'"):
        latent_graph_heatmap(unit, x=x, batch=batch, kernel=1, path=path)
    with torch.no_grad():
        _, projections = unit.eval()(x, batch=batch, return_projection=True)
    with pytest.raises(ValueError,
                       match="^'sample' must be an int >= 0, got -1$"):
        latent_graph_heatmap(projections, sample=-1, path=path)
    with pytest.raises(ValueError,
                       match=r"^'sample' must be an int in \[0, 1\], got 2$"):
        latent_graph_heatmap(projections, sample=2, path=path)
    with pytest.raises(TypeError,
                       match="^'sample' must be an int >= 0, got str '0'$"):
        latent_graph_heatmap(projections, sample='0', path=path)
    with pytest.raises(ValueError,
                       match=r"^'kernel' must be an int in \[0, 0\], got 1$"):
        latent_graph_heatmap(projections, kernel=1, path=path)
    with pytest.raises(TypeError, match="^'kernel' must be an int >= 0, got "
                       "bool False$"):
        latent_graph_heatmap(projections, kernel=False, path=path)
    with pytest.raises(ValueError, match="'source'"):
        latent_graph_heatmap(torch.ones(3, 4), path=path)
    with pytest.raises(TypeError, match="'source'"):
        latent_graph_heatmap('graph', path=path)
    with pytest.raises(TypeError, match="'path'"):
        latent_graph_heatmap(torch.eye(3), path=3)
    assert not path.exists()


# ---------------------------------------------------------------------------
# latent_graph_drawing
# ---------------------------------------------------------------------------
def test_glore_drawing(tmp_path):
    torch.manual_seed(0)
    d = 6
    unit = GloReConv(C, d)
    path = tmp_path / 'drawing.png'
    fig = latent_graph_drawing(unit, path=path)
    check_png(path, fig)
    assert len(fig.axes) == 2  # drawing and colorbar of |weight|
    ax = fig.axes[0]
    assert drawn_nodes(ax) == d
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        str(k) for k in range(d))
    # default: the 3 d strongest edges, no self-loops, widest the strongest
    drawn = arrows(ax)
    assert len(drawn) == 3 * d
    widths = sorted(p.get_linewidth() for p in drawn)
    assert widths[-1] == pytest.approx(4.0)
    assert widths[0] < widths[-1]
    # I - A_g has both signs: a signed colorbar, symmetric around 0, up to
    # the largest off-diagonal |weight|
    mixing = torch.eye(d) - unit.latent_graph.adjacency.detach()
    off = mixing[~torch.eye(d, dtype=torch.bool)]
    kept = off.abs().sort(descending=True).values[:3 * d]
    assert fig.axes[1].get_ylim() == pytest.approx(
        (-float(kept.max()), float(kept.max())))
    assert fig.axes[1].get_ylabel() == 'weight'
    assert [t.get_text() for t in fig.texts] == [
        f'strongest {3 * d} of {d * (d - 1)} edges, self-loops omitted; '
        f'width grows with |w|']
    # one sign only: magnitudes over the range shown
    fig = latent_graph_drawing(torch.rand(d, d) + 0.5)
    assert fig.axes[1].get_ylabel() == '|weight|'
    assert fig.axes[1].get_ylim()[0] > 0.5


def test_drawing_threshold():
    torch.manual_seed(0)
    d = 6
    matrix = torch.randn(d, d)
    off = matrix.abs()[~torch.eye(d, dtype=torch.bool)]
    threshold = float(off.median())
    fig = latent_graph_drawing(matrix, threshold=threshold)
    assert len(arrows(fig.axes[0])) == int((off > threshold).sum())
    # nothing above the threshold: the nodes alone
    fig = latent_graph_drawing(matrix, threshold=1e9)
    assert drawn_nodes(fig.axes[0]) == d
    assert arrows(fig.axes[0]) == []
    # self-loops only: no edge drawn
    fig = latent_graph_drawing(torch.eye(4), threshold=0.0)
    assert drawn_nodes(fig.axes[0]) == 4 and arrows(fig.axes[0]) == []


def test_latentgnn_and_non_local_drawing(cloud, tmp_path):
    x, batch = cloud
    torch.manual_seed(0)
    unit = LatentGNNConv(C, [5, 3])
    path = tmp_path / 'latentgnn.png'
    fig = latent_graph_drawing(unit, x=x, batch=batch, sample=1, kernel=1,
                               path=path)
    check_png(path, fig)
    assert drawn_nodes(fig.axes[0]) == 3
    assert len(arrows(fig.axes[0])) == 6  # all 3 * 2 off-diagonal edges
    # non-local attention over the 36 positions of a 6 x 6 map
    with torch.no_grad():
        _, projections = NonLocal2d(C).eval()(randn(2, C, 6, 6),
                                              return_projection=True)
    fig = latent_graph_drawing(projections, sample=1)
    assert drawn_nodes(fig.axes[0]) == 36
    assert len(arrows(fig.axes[0])) == 3 * 36


def test_drawing_errors(tmp_path):
    path = tmp_path / 'never.png'
    for bad in (-1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match=f"^'threshold' must be a finite "
                           f"number >= 0, got {bad}$"):
            latent_graph_drawing(torch.eye(3), threshold=bad, path=path)
    with pytest.raises(TypeError, match="^'threshold' must be a finite "
                       "number >= 0, got str 'strong'$"):
        latent_graph_drawing(torch.eye(3), threshold='strong', path=path)
    with pytest.raises(ValueError, match="'source'"):
        latent_graph_drawing(torch.ones(2, 3), path=path)
    with pytest.raises(TypeError, match="'title'"):
        latent_graph_drawing(torch.eye(3), title=1, path=path)
    assert not path.exists()


# ---------------------------------------------------------------------------
# save_figure, no pyplot state
# ---------------------------------------------------------------------------
def test_save_figure(tmp_path):
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / 'x' / 'y' / 'plot.png', dpi=50)
    check_png(path, fig, dpi=50)
    from matplotlib.image import imread
    assert imread(path).shape[:2] == (100, 150)
    with pytest.raises(TypeError, match="'fig'"):
        save_figure(None, tmp_path / 'z.png')
    with pytest.raises(ValueError, match="^'dpi' must be an int >= 1, got 0$"):
        save_figure(fig, tmp_path / 'z.png', dpi=0)
    with pytest.raises(TypeError, match=r"^'dpi' must be an int >= 1, got "
                       r"float 72\.0$"):
        save_figure(fig, tmp_path / 'z.png', dpi=72.0)


def test_no_pyplot_figures():
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    latent_graph_drawing(torch.randn(4, 4))
    latent_graph_heatmap(torch.randn(4, 4))
    assert plt.get_fignums() == before

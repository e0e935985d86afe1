"""GloRe: the published ``GloRe_Unit_{1,2,3}D`` <-> :class:`GloRe1d` /
:class:`GloRe2d` / :class:`GloRe3d` (any :class:`GloReConv`).  The keys
map to the :class:`GloReConv`'s own; a grid adapter holds it as ``unit``."""
from typing import Dict, List, Optional, Union

from torch import Tensor

from ..nn import GloRe1d, GloRe2d, GloRe3d, GloReConv, GridUnit, node_unit
from .checkpoint import (Entry, Source, bn_entries, check, conv_entry,
                         export, load_into, read_state_dict, require, same)

GRID = {1: GloRe1d, 2: GloRe2d, 3: GloRe3d}
BN_EPS = 1e-4  # the published blocker's eps


def glore_entries(in_channels: int, num_mid: int, dims: int) -> List[Entry]:
    """Published key <-> our key for ``GloRe_Unit_{dims}D(in_channels,
    num_mid)``.  The published ``gcn.conv1`` (a ``Conv1d`` over the node
    axis, added to its input) holds :math:`-A_g`; ``gcn.conv2`` is
    :math:`W_g`."""
    C, m, s = in_channels, num_mid, 2 * num_mid
    return [
        conv_entry('conv_state.weight', 'state.weight', s, C, dims),
        Entry('conv_state.bias', 'state.bias', (s, ), same, same),
        conv_entry('conv_proj.weight', 'proj.weight', m, C, dims),
        Entry('conv_proj.bias', 'proj.bias', (m, ), same, same),
        Entry('gcn.conv1.weight', 'latent_graph.adjacency', (m, m, 1),
              lambda t: -t[..., 0], lambda t: -t.unsqueeze(-1)),
        Entry('gcn.conv1.bias', 'latent_graph.node_bias', (m, ), same, same),
        conv_entry('gcn.conv2.weight', 'latent_graph.lin.weight', s, s, 1),
        conv_entry('conv_extend.weight', 'extend.weight', C, s, dims),
        *bn_entries('blocker', 'norm', C),
    ]


def load_official_glore(state_dict: Source, dims: int = 2,
                        normalize: bool = False,
                        prefix: str = '') -> GridUnit:
    r"""A :class:`~glore_pyg.nn.GloRe1d` / ``2d`` / ``3d`` computing what the
    published ``GloRe_Unit_{dims}D(num_in, num_mid, normalize)`` (the code of
    `"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_, facebookresearch/GloRe) computes
    with the weights of ``state_dict``.

    ``num_in`` and ``num_mid`` are read from the shapes; ``dims`` and
    ``normalize`` are not stored in a checkpoint and must be given (a
    kernel of the wrong rank is refused).

    Args:
        state_dict (dict or path): the unit's state dict, or a file saved
            with :func:`torch.save` (read with ``weights_only=True``).
        dims (int): spatial dimensions, 1, 2 or 3. (default: :obj:`2`)
        normalize (bool): the published ``normalize`` flag.
            (default: :obj:`False`)
        prefix (str): take the entries under this prefix of a larger
            checkpoint, e.g. ``'layer3.1.glore.'``. (default: :obj:`''`)

    Returns:
        the grid adapter (its :class:`~glore_pyg.nn.GloReConv` under
        ``.unit``), in training mode like any new module, with the
        checkpoint's dtype and device.

    Raises:
        ValueError: naming every missing or unexpected key and every shape
            that does not fit; ``dims`` not 1, 2 or 3 or not the rank of the
            checkpoint's kernels; no entry under ``prefix``; a file that
            holds no state dict, or an entry that is not a tensor.
        TypeError: ``state_dict`` neither a mapping nor a path.
    """
    if dims not in GRID:
        raise ValueError(f"'dims' must be 1, 2 or 3, got {dims!r}")
    state = read_state_dict(state_dict, prefix)
    proj = require(state, 'conv_proj.weight', 'the projection, '
                   '[num_mid, num_in, 1...]', prefix)
    if proj.dim() != 2 + dims:
        raise ValueError(
            f"{prefix + 'conv_proj.weight'!r} has shape {tuple(proj.shape)}:"
            f" a GloRe_Unit_{proj.dim() - 2}D checkpoint, but dims={dims}")
    num_mid, in_channels = proj.shape[:2]
    entries = glore_entries(in_channels, num_mid, dims)
    check(state, entries, f'GloRe_Unit_{dims}D(num_in={in_channels}, '
          f'num_mid={num_mid})', prefix)
    grid = GRID[dims](in_channels, num_mid, normalize=normalize)
    load_into(grid.unit, state, entries)
    return grid


def export_official_glore(module: Union[GloReConv, GridUnit],
                          dims: Optional[int] = None) -> Dict[str, Tensor]:
    """The state dict of the published ``GloRe_Unit_{dims}D`` (the code of
    `"Graph-Based Global Reasoning Networks"
    <https://arxiv.org/abs/1811.12814>`_, facebookresearch/GloRe) with the
    weights of ``module``; it loads with ``strict=True``.

    Args:
        module (GloReConv or GridUnit): a :class:`~glore_pyg.nn.GloReConv`
            or a grid adapter around one (:class:`~glore_pyg.nn.GloRe1d` /
            ``2d`` / ``3d``, a :class:`~glore_pyg.nn.GridUnit`), built with
            the published BatchNorm eps (``bn_eps=1e-4``, the default) and
            the node bias.
        dims (int, optional): 1, 2 or 3: the rank of the published unit's
            convolutions. (default: :obj:`None`: the grid adapter's own
            ``dims``; required for a node-level
            :class:`~glore_pyg.nn.GloReConv`)

    Returns:
        dict: the published keys (``conv_state``, ``conv_proj``,
        ``gcn.conv1``, ``gcn.conv2``, ``conv_extend``, ``blocker``) in the
        published order, tensors detached copies in the module's dtype and
        device (1x1 kernels ``[O, I, 1, ...]``, ``gcn.conv1`` holding
        :math:`-A_g`).

    Raises:
        TypeError: ``module`` neither a :class:`~glore_pyg.nn.GloReConv`
            nor a grid adapter around one.
        ValueError: ``dims`` not 1, 2 or 3 (or missing for a node-level
            unit); a BatchNorm eps other than ``1e-4``; a latent graph
            without node bias.
    """
    unit = node_unit(module)
    if not isinstance(unit, GloReConv):
        raise TypeError(f"'module' must be a GloReConv or GloRe1d/2d/3d, got "
                        f"{type(module).__name__}")
    if dims is None and isinstance(module, GridUnit):
        dims = module.dims
    if dims not in GRID:
        raise ValueError(f"'dims' must be 1, 2 or 3 (the published unit's "
                         f"convolutions); got {dims!r}")
    if unit.norm.eps != BN_EPS:
        raise ValueError(f"The published unit's BatchNorm has eps={BN_EPS}; "
                         f"this module was built with bn_eps="
                         f"{unit.norm.eps}")
    if unit.latent_graph.node_bias is None:
        raise ValueError("The published unit's gcn.conv1 has a bias; this "
                         "module's latent graph has none")
    return export(unit, glore_entries(unit.in_channels, unit.num_mid, dims))

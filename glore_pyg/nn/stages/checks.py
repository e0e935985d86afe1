"""Input checks shared by the explicit-edge paths of the stages."""
from typing import Optional

from torch import Tensor

HINT = ("VisibleToLatent infers 'num_latent' from the largest latent index "
        "that has an edge, so latent nodes without edges at the end are "
        "missing from its output: pass 'num_latent' (and LatentToVisible "
        "'num_visible') when some nodes may have no edges")


def check_edge_index(edge_index: Tensor, num_sources: int,
                     num_targets: Optional[int], sources: str,
                     targets: str) -> None:
    """Raises a ``ValueError`` naming the problem when ``edge_index [2, E]``
    refers to a source row ``>= num_sources`` or a target row
    ``>= num_targets`` (one host read of the two largest indices)."""
    if edge_index.numel() == 0:
        return
    if bool((edge_index < 0).any()):
        raise ValueError("'edge_index' holds negative node indices")
    top_src, top_dst = edge_index.amax(1).tolist()
    if top_src >= num_sources:
        raise ValueError(f"'edge_index' refers to {sources} node {top_src}, "
                         f"but only {num_sources} {sources} rows were given. "
                         + HINT)
    if num_targets is not None and top_dst >= num_targets:
        raise ValueError(f"'edge_index' refers to {targets} node {top_dst}, "
                         f"but there are only {num_targets} {targets} nodes. "
                         + HINT)

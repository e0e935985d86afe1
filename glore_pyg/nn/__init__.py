from .stages import (AttentionConv, GloReGraphConv, LatentAffinityConv,
                     LatentToVisible, VisibleToLatent)
from .units import (GlobalReasoningUnit, GloReConv, LatentGNNConv,
                    NonLocalConv, Projection)
from .grid import (GloRe1d, GloRe2d, GloRe3d, GridUnit, LatentGNN1d,
                   LatentGNN2d, LatentGNN3d, NonLocal1d, NonLocal2d,
                   NonLocal3d, node_unit)
from .factory import create_unit, parse_unit_spec
from .modes import eval_mode
from .norm import DistributedBatchNorm, convert_distributed_batchnorm
from .fx import UnitTracer
from .shard import shard_units

__all__ = [
    'DistributedBatchNorm',
    'convert_distributed_batchnorm',
    'GloReConv', 'LatentGNNConv', 'NonLocalConv', 'GridUnit',
    'GloRe1d', 'GloRe2d', 'GloRe3d',
    'LatentGNN1d', 'LatentGNN2d', 'LatentGNN3d',
    'NonLocal1d', 'NonLocal2d', 'NonLocal3d',
    'VisibleToLatent', 'GloReGraphConv', 'LatentAffinityConv',
    'AttentionConv', 'LatentToVisible', 'Projection', 'GlobalReasoningUnit',
    'create_unit', 'parse_unit_spec', 'eval_mode', 'UnitTracer',
    'node_unit', 'shard_units',
]

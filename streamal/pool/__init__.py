"""Pool selectors: which items of a fixed pool to send for labeling, as indices.

Top-k by a utility from `streamal.strategies` (random selection is top-k of random scores),
greedy k-center on embeddings, BADGE on gradient embeddings, and SEALS's restriction of the
candidates to the neighbours of labeled items; random subsampling of the pool before scoring.
"""

from streamal.pool.badge import badge
from streamal.pool.distances import min_squared_distances, squared_distances
from streamal.pool.kcenter import k_center
from streamal.pool.ranking import top_k
from streamal.pool.seals import seals_candidates
from streamal.pool.subsample import subsample

__all__ = [
    "badge",
    "k_center",
    "min_squared_distances",
    "seals_candidates",
    "squared_distances",
    "subsample",
    "top_k",
]

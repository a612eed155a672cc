"""The stream's diverse cold start: before the first trained model, the samples farthest from
those asked so far are the ones worth asking, so that the first labels span the space (a
streaming form of greedy k-center) instead of following the stream's proportions.

`Coverage` scores a batch (`Coverage.utilities`, pure) and learns what was asked
(`Coverage.update`, after the batch is committed). It keeps a reservoir of recent samples
(Vitter's algorithm R): their robust center and scale standardize the features, and the
distances of the reservoir's samples to what was asked are the scale a sample's distance is
ranked on. A utility is that rank, in ``(0, 1]``, like the random scores a budget gate meets
before a model exists: the farthest sample of the reservoir and the batch scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from streamal.messages import Sample
from streamal.model.scaling import robust_scaling
from streamal.pool.distances import min_squared_distances

__all__ = ["Coverage", "feature_matrix"]


def feature_matrix(samples: Sequence[Sample]) -> np.ndarray | None:
    """The samples' features as a matrix, when they all have as many; else None.

    >>> feature_matrix([Sample(id="a", features=[1, 2]), Sample(id="b", features=[3, 4])])
    array([[1., 2.],
           [3., 4.]])
    >>> feature_matrix([Sample(id="a", payload="text")]) is None
    True
    """
    rows = [sample.features for sample in samples if sample.features is not None]
    if not rows or len(rows) < len(samples) or len({len(row) for row in rows}) != 1:
        return None
    return np.asarray(rows, dtype=np.float64)


class Coverage:
    """Utilities of the stream's cold start: how far each sample lies from the samples asked
    so far, ranked among a reservoir of recent samples (see the module).

    Parameters
    ----------
    reservoir
        Recent samples kept at most: the reference for scale and ranks.
    memory
        Asked samples remembered at most (the newest).
    seed
        Seeds the reservoir's draws.

    Examples
    --------
    One sample asked at the origin: a new sample near it ranks low, one far away at the top.

    >>> cover = Coverage(seed=0)
    >>> rng = np.random.default_rng(0)
    >>> seen = rng.normal(size=(200, 2))
    >>> cover.update(seen, np.arange(200) == int(np.abs(seen).sum(1).argmin()))
    >>> cover.utilities(np.array([[0.1, 0.0], [6.0, 6.0]])).round(2).tolist()
    [0.02, 1.0]
    >>> cover.utilities(np.array([[0.1, 0.0], [6.0, 6.0]])).round(2).tolist()  # pure
    [0.02, 1.0]
    """

    def __init__(self, *, reservoir: int = 1000, memory: int = 1000, seed: int = 0) -> None:
        if reservoir < 1 or memory < 1:
            raise ValueError(f"reservoir and memory must be >= 1, got {reservoir}, {memory}")
        self.capacity, self.memory = reservoir, memory
        self._reservoir: np.ndarray | None = None
        self._asked: np.ndarray | None = None
        self._seen = 0
        self._rng = np.random.default_rng(seed)

    @property
    def asked(self) -> int:
        """How many asked samples it remembers."""
        return 0 if self._asked is None else len(self._asked)

    def utilities(self, features: ArrayLike) -> np.ndarray:
        """The cold-start utility of each row of ``features`` ``[B, D]``, in ``(0, 1]``: the
        share of the reservoir and the batch that lies at most as far from what was asked
        (from the middle of the reservoir, before anything was asked). No side effects."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must have 2 dimensions, got shape {x.shape}")
        if not len(x):
            return np.empty(0)
        reference, asked = x, None
        if self._reservoir is not None and self._reservoir.shape[1] == x.shape[1]:
            reference, asked = np.vstack([self._reservoir, x]), self._asked
        center, scale = robust_scaling(reference)
        if asked is None:
            asked = center[None, :]
        anchors = (asked - center) / scale
        distances = _nearest((reference - center) / scale, anchors)
        ranked = np.sort(distances)
        return np.searchsorted(ranked, distances[-len(x) :], side="right") / len(ranked)

    def update(self, features: ArrayLike, asked: ArrayLike) -> None:
        """Learn a committed batch: every row may enter the reservoir, the ``asked`` ones
        (a boolean mask) are remembered as covered. Rows of another width start afresh."""
        x = np.asarray(features, dtype=np.float64)
        mask = np.asarray(asked, dtype=bool)
        if self._reservoir is not None and self._reservoir.shape[1] != x.shape[1]:
            self._reservoir, self._asked, self._seen = None, None, 0  # other features now
        picked = x[mask]
        if len(picked):
            kept = picked if self._asked is None else np.vstack([self._asked, picked])
            self._asked = kept[-self.memory :]
        for row in x:
            self._keep(row)

    def _keep(self, row: np.ndarray) -> None:
        """Algorithm R: the reservoir stays a uniform sample of everything seen."""
        self._seen += 1
        if self._reservoir is None:
            self._reservoir = row[None, :].copy()
        elif len(self._reservoir) < self.capacity:
            self._reservoir = np.vstack([self._reservoir, row])
        else:
            slot = int(self._rng.integers(self._seen))
            if slot < self.capacity:
                self._reservoir[slot] = row


def _nearest(points: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The distance from each point to its nearest anchor.

    >>> _nearest(np.array([[0.0], [3.0]]), np.array([[1.0], [5.0]])).tolist()
    [1.0, 2.0]
    """
    as_tensor = torch.as_tensor
    squared = min_squared_distances(
        as_tensor(points, dtype=torch.float64), as_tensor(anchors, dtype=torch.float64)
    )
    return np.sqrt(squared.numpy())

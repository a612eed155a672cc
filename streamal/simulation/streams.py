"""Generated labeled streams (no downloads): Gaussian classes, optionally with a concept change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabeledStream:
    """``features[i]`` has label ``classes[labels[i]]``; ids are ``s<i>``."""

    features: np.ndarray
    labels: np.ndarray
    classes: list[str]

    @property
    def ids(self) -> list[str]:
        """The sample ids, in stream order."""
        return [f"s{i}" for i in range(len(self.labels))]

    def truth(self) -> dict[str, str]:
        """Sample id -> true label."""
        return {i: self.classes[c] for i, c in zip(self.ids, self.labels, strict=True)}


def gaussian_classes(
    n: int,
    *,
    n_features: int = 10,
    n_classes: int = 3,
    spread: float = 1.0,
    drift_at: int | None = None,
    seed: int = 0,
) -> LabeledStream:
    """Classes around random centers; at ``drift_at`` the classes swap centers (abrupt drift).

    >>> stream = gaussian_classes(100, drift_at=50, seed=1)
    >>> stream.features.shape, sorted(set(stream.labels.tolist()))
    ((100, 10), [0, 1, 2])
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(n_classes, n_features))
    labels = rng.integers(0, n_classes, n)
    concept = np.arange(n_classes)
    where = np.tile(concept, (n, 1))[np.arange(n), labels]
    if drift_at is not None:
        shifted = np.roll(concept, 1)  # class c now lives at the center of class c - 1
        where[drift_at:] = shifted[labels[drift_at:]]
    features = centers[where] + rng.normal(scale=spread, size=(n, n_features))
    return LabeledStream(features.astype(np.float32), labels, [f"c{i}" for i in range(n_classes)])

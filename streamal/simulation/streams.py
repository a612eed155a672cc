"""Labeled streams for simulations: generated ones (no downloads) and a user's JSONL file."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamal.errors import ConfigError

BUILTIN = ("stationary", "abrupt", "gradual")
PEERS = ("sea_abrupt", "hyperplane", "rbf5", "phishing", "image_segments")
"""The streams of the peer anchors, from river's generators and bundled datasets."""


@dataclass(frozen=True)
class LabeledStream:
    """``features[i]`` has label ``classes[labels[i]]``; ``drifts`` are the change positions."""

    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    ids: list[str]
    drifts: tuple[int, ...] = ()

    def head(self, n: int) -> LabeledStream:
        """The first ``n`` samples (with the drifts among them)."""
        if n >= len(self.ids):
            return self
        return LabeledStream(
            self.features[:n], self.labels[:n], self.classes, self.ids[:n],
            tuple(d for d in self.drifts if d < n),
        )  # fmt: skip

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
    drift_width: int = 1,
    centroids: int = 1,
    seed: int = 0,
) -> LabeledStream:
    """Each class a mixture of ``centroids`` Gaussians around random centers. From
    ``drift_at`` on, over ``drift_width`` samples, the classes move to each other's centers
    (abrupt with width 1, gradual otherwise).

    >>> stream = gaussian_classes(100, drift_at=50, seed=1)
    >>> stream.features.shape, sorted(set(stream.labels.tolist())), stream.drifts
    ((100, 10), [0, 1, 2], (50,))
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(n_classes, centroids, n_features))
    labels = rng.integers(0, n_classes, n)
    blob = rng.integers(0, centroids, n)
    where = labels.copy()
    if drift_at is not None:
        positions = np.arange(n)
        share_new = np.clip((positions - drift_at + 1) / drift_width, 0, 1)
        moved = rng.random(n) < share_new  # the new concept's share rises over the width
        where[moved] = (labels[moved] + 1) % n_classes
    features = centers[where, blob] + rng.normal(scale=spread, size=(n, n_features))
    return LabeledStream(
        features.astype(np.float32), labels, [f"c{i}" for i in range(n_classes)],
        [f"s{i}" for i in range(n)], () if drift_at is None else (drift_at,),
    )  # fmt: skip


def builtin(name: str, n: int, seed: int = 0) -> LabeledStream:
    """``stationary`` (5 classes), ``abrupt`` or ``gradual`` drift at half the stream."""
    if name == "stationary":
        return gaussian_classes(n, n_classes=5, spread=1.5, seed=seed)
    if name == "abrupt":
        return gaussian_classes(n, spread=1.5, drift_at=n // 2, seed=seed)
    if name == "gradual":
        return gaussian_classes(
            n, spread=1.5, drift_at=n // 2 - n // 10, drift_width=n // 5, seed=seed
        )
    raise ConfigError(f"unknown stream {name!r}; use {', '.join(BUILTIN)} or a .jsonl file")


def peer(name: str, n: int = 20_000, seed: int = 0) -> LabeledStream:
    """A peer-anchor stream (`PEERS`): ``n`` samples of a river generator, or a bundled
    dataset in file order (its own length).

    >>> stream = peer("sea_abrupt", 200)
    >>> stream.features.shape, stream.classes, stream.drifts
    ((200, 3), ['False', 'True'], (100,))
    """
    from river import datasets
    from river.datasets import synth

    drifts: tuple[int, ...] = ()
    source: Iterable[tuple[dict[str, Any], Any]]
    if name == "sea_abrupt":
        drifts = (n // 2,)
        source = synth.ConceptDriftStream(
            synth.SEA(variant=0, noise=0.1, seed=seed), synth.SEA(variant=3, noise=0.1, seed=seed),
            position=n // 2, width=100, seed=seed,
        )  # fmt: skip
    elif name == "hyperplane":
        source = synth.Hyperplane(
            seed=seed, n_features=10, n_drift_features=5, mag_change=0.001,
            noise_percentage=0.05, sigma=0.1,
        )  # fmt: skip
    elif name == "rbf5":
        source = synth.RandomRBF(seed_model=seed, seed_sample=seed, n_classes=5, n_centroids=50)
    elif name == "phishing":
        source = datasets.Phishing()
    elif name == "image_segments":
        source = datasets.ImageSegments()
    else:
        raise ConfigError(f"unknown peer stream {name!r}; use {', '.join(PEERS)}")
    rows, names = [], []
    for x, y in itertools.islice(source, n):
        rows.append([float(v) for v in x.values()])
        names.append(str(y))
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return LabeledStream(
        np.array(rows, dtype=np.float32), np.array([index[c] for c in names]), classes,
        [f"s{i}" for i in range(len(rows))], drifts,
    )  # fmt: skip


def from_jsonl(path: Path) -> LabeledStream:
    """A user's stream: one JSON object per line with ``id``, ``features`` and ``label``."""
    ids, rows, names = [], [], []
    number = 0
    try:
        with path.open() as lines:
            for line in lines:
                number += 1
                if not line.strip():
                    continue
                item = json.loads(line)
                ids.append(str(item["id"]))
                rows.append([float(v) for v in item["features"]])
                names.append(str(item["label"]))
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{path}: line {number}: needs id, features and label ({error})"
        ) from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise ConfigError(f"{path}: needs samples whose features all have the same length")
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return LabeledStream(
        np.array(rows, dtype=np.float32), np.array([index[c] for c in names]), classes, ids
    )

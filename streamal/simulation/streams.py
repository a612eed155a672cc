"""Labeled streams for simulations: generated ones (no downloads) and a user's JSONL file."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamal.errors import ConfigError
from streamal.messages import Sample

if TYPE_CHECKING:
    from river.datasets.base import SyntheticDataset

BUILTIN = (
    "stationary", "abrupt", "gradual", "sea", "sparse", "pixels", "many_classes", "rare",
    "relocated", "relocated_gradual", "rotating", "short",
)  # fmt: skip
SHORT = 1200
"""The length of the ``short`` stream, whatever the length asked."""
PEERS = ("sea_abrupt", "hyperplane", "rbf5", "phishing", "image_segments")
"""The streams of the peer anchors, from river's generators and bundled datasets."""
HELD_OUT = (
    "bananas", "agrawal", "led", "waveform", "random_tree", "sine", "stagger", "mixed",
    "rbf_moving",
)  # fmt: skip
"""Streams to check a change on and never to tune to: river's generators and a bundled dataset
that no default was chosen on (`held_out`)."""


@dataclass(frozen=True)
class LabeledStream:
    """Sample ``i`` has label ``classes[labels[i]]``; ``drifts`` are the change positions.

    A sample is ``features[i]``, or ``payloads[i]`` for a stream of payloads (text, images),
    whose ``features`` are then ``[N, 0]``.

    >>> stream = LabeledStream.of_samples([Sample(id="a", payload="hi")], ["x"], ["x", "y"])
    >>> stream.samples([0])[0].payload, stream.features.shape, stream.truth()
    ('hi', (1, 0), {'a': 'x'})
    """

    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    ids: list[str]
    drifts: tuple[int, ...] = ()
    payloads: list[Any] | None = None

    @classmethod
    def of_samples(
        cls, samples: list[Sample], labels: list[str], classes: list[str]
    ) -> LabeledStream:
        """A stream of ``samples`` (features or payloads) with their ``labels``."""
        index = {name: i for i, name in enumerate(classes)}
        if all(sample.features is not None for sample in samples):
            features = np.array([sample.features for sample in samples], dtype=np.float32)
            payloads = None
        else:
            features = np.zeros((len(samples), 0), dtype=np.float32)
            payloads = [sample.payload for sample in samples]
        targets = np.array([index[label] for label in labels], dtype=np.int64)
        return cls(features, targets, list(classes), [s.id for s in samples], (), payloads)

    def head(self, n: int) -> LabeledStream:
        """The first ``n`` samples (with the drifts among them)."""
        if n >= len(self.ids):
            return self
        return LabeledStream(
            self.features[:n], self.labels[:n], self.classes, self.ids[:n],
            tuple(d for d in self.drifts if d < n),
            None if self.payloads is None else self.payloads[:n],
        )  # fmt: skip

    def samples(self, rows: Iterable[int]) -> list[Sample]:
        """The samples at ``rows``, as they are streamed."""
        if self.payloads is not None:
            return [Sample(id=self.ids[i], payload=self.payloads[i]) for i in rows]
        return [Sample(id=self.ids[i], features=self.features[i].tolist()) for i in rows]

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
        moved = new_concept(rng, n, drift_at, drift_width)
        where[moved] = (labels[moved] + 1) % n_classes
    features = centers[where, blob] + rng.normal(scale=spread, size=(n, n_features))
    return LabeledStream(
        features.astype(np.float32), labels, [f"c{i}" for i in range(n_classes)],
        [f"s{i}" for i in range(n)], () if drift_at is None else (drift_at,),
    )  # fmt: skip


def new_concept(rng: np.random.Generator, n: int, drift_at: int, width: int) -> np.ndarray:
    """Which samples follow the new concept: none before ``drift_at``, then a share that rises
    linearly to all over ``width`` samples (1: an abrupt change).

    >>> new_concept(np.random.default_rng(0), 6, 3, 1).tolist()
    [False, False, False, True, True, True]
    """
    share_new = np.clip((np.arange(n) - drift_at + 1) / width, 0, 1)
    return rng.random(n) < share_new


def _stream(
    features: np.ndarray, labels: np.ndarray, n_classes: int, drifts: tuple[int, ...] = ()
) -> LabeledStream:
    return LabeledStream(
        features.astype(np.float32), labels, [f"c{i}" for i in range(n_classes)],
        [f"s{i}" for i in range(len(labels))], drifts,
    )  # fmt: skip


def word_counts(
    n: int,
    *,
    n_features: int = 300,
    n_classes: int = 4,
    words: float = 8.0,
    late_words: int = 100,
    late_at: int = 0,
    seed: int = 0,
) -> LabeledStream:
    """Bag-of-words counts: a document of about ``words`` words drawn half from its class's
    topic, half from a shared background. The last ``late_words`` words of the vocabulary
    (topical ones among them) appear only from ``late_at`` on: before it those features are
    constant zero. Most counts are zero.

    >>> stream = word_counts(400, late_at=100, seed=1)
    >>> stream.features.shape, stream.drifts, bool(stream.features[:100, -100:].any())
    ((400, 300), (100,), False)
    """
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(n_features, 0.05), size=n_classes)
    background = rng.dirichlet(np.ones(n_features))
    labels = rng.integers(0, n_classes, n)
    chances = (topics[labels] + background) / 2
    chances[:late_at, n_features - late_words :] = 0
    chances /= chances.sum(axis=1, keepdims=True)
    counts = rng.multinomial(1 + rng.poisson(words - 1, n), chances)
    return _stream(counts, labels, n_classes, (late_at,) if late_at else ())


def binary_pixels(
    n: int,
    *,
    side: int = 8,
    n_classes: int = 10,
    ink: float = 0.25,
    fade: float = 0.15,
    speckle: float = 0.02,
    seed: int = 0,
) -> LabeledStream:
    """Binary images, ``side`` x ``side`` pixels flattened: each class a random glyph inside
    the border (a share ``ink`` of its pixels on), drawn with a share ``fade`` of its ink lost,
    a share ``speckle`` of stray pixels, and shifted by up to one pixel each way. Most pixels
    are zero.

    >>> stream = binary_pixels(50, seed=1)
    >>> stream.features.shape, sorted(set(stream.features.ravel().tolist()))
    ((50, 64), [0.0, 1.0])
    """
    rng = np.random.default_rng(seed)
    glyphs = np.zeros((n_classes, side, side), dtype=bool)
    glyphs[:, 1:-1, 1:-1] = rng.random((n_classes, side - 2, side - 2)) < ink
    labels = rng.integers(0, n_classes, n)
    images = glyphs[labels] & (rng.random((n, side, side)) >= fade)
    images |= rng.random((n, side, side)) < speckle
    shifts = rng.integers(-1, 2, (n, 2))
    for dy, dx in itertools.product((-1, 0, 1), repeat=2):
        chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
        images[chosen] = np.roll(images[chosen], (dy, dx), axis=(1, 2))
    return _stream(images.reshape(n, side * side), labels, n_classes)


def imbalanced(
    n: int,
    *,
    shares: tuple[float, ...] = (0.67, 0.3, 0.03),
    n_features: int = 10,
    spread: float = 1.5,
    seed: int = 0,
) -> LabeledStream:
    """Gaussian classes in the proportions ``shares``; the last (the rare one when the shares
    fall) sits between the first two, where they overlap.

    >>> stream = imbalanced(1000, seed=1)
    >>> stream.features.shape, stream.classes
    ((1000, 10), ['c0', 'c1', 'c2'])
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(len(shares), n_features))
    centers[-1] = (centers[0] + centers[1]) / 2 + rng.normal(scale=spread, size=n_features)
    labels = rng.choice(len(shares), n, p=np.array(shares) / sum(shares))
    features = centers[labels] + rng.normal(scale=spread, size=(n, n_features))
    return _stream(features, labels, len(shares))


def nearest_prototype(x: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """The class of each row of ``x``: that of its nearest prototype, ``prototypes`` being
    (classes, per class, features).

    >>> nearest_prototype(np.array([[0.9], [-1.0]]), np.array([[[-1.0]], [[1.0]]])).tolist()
    [1, 0]
    """
    flat = prototypes.reshape(-1, prototypes.shape[-1])
    distances = ((x[:, None, :] - flat[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1) // prototypes.shape[1]


def relocated_classes(
    n: int,
    *,
    n_features: int = 4,
    n_classes: int = 3,
    prototypes: int = 3,
    drift_at: int | None = None,
    drift_width: int = 1,
    seed: int = 0,
) -> LabeledStream:
    """Uniform features in [-1, 1]; the class is that of the nearest of ``prototypes`` random
    points per class (a non-linear boundary). From ``drift_at`` on, over ``drift_width``
    samples, the class comes from new random points: the boundary moves far from the old one,
    and where the model was confident it is now confidently wrong (not a relabeling of the
    classes: no permutation of the old labels matches the new ones).

    >>> stream = relocated_classes(300, drift_at=150, seed=1)
    >>> stream.features.shape, sorted(set(stream.labels.tolist())), stream.drifts
    ((300, 4), [0, 1, 2], (150,))
    """
    rng = np.random.default_rng(seed)
    old, new = rng.uniform(-1, 1, (2, n_classes, prototypes, n_features))
    features = rng.uniform(-1, 1, (n, n_features))
    labels = nearest_prototype(features, old)
    if drift_at is not None:
        moved = new_concept(rng, n, drift_at, drift_width)
        labels[moved] = nearest_prototype(features[moved], new)
    return _stream(features, labels, n_classes, () if drift_at is None else (drift_at,))


def rotating(
    n: int, *, n_features: int = 8, turns: float = 0.5, noise: float = 0.05, seed: int = 0
) -> LabeledStream:
    """Two classes on either side of a hyperplane through the origin that turns steadily, by
    ``turns`` of a full turn over the stream (incremental drift: no single change point), with
    a share ``noise`` of the labels flipped.

    >>> stream = rotating(2000, seed=1)
    >>> stream.features.shape, stream.classes, stream.drifts
    ((2000, 8), ['c0', 'c1'], ())
    >>> x, y = stream.features, 2.0 * stream.labels - 1  # a boundary fitted on the start
    >>> w = np.linalg.lstsq(x[:200], y[:200], rcond=None)[0]
    >>> right = np.sign(x @ w) == y
    >>> round(float(right[:200].mean()), 1), round(float(right[-200:].mean()), 1)  # then at the end
    (0.9, 0.2)
    """
    rng = np.random.default_rng(seed)
    start, toward = np.linalg.qr(rng.normal(size=(n_features, 2)))[0].T
    angle = 2 * np.pi * turns * np.arange(n) / n
    normal = np.cos(angle)[:, None] * start + np.sin(angle)[:, None] * toward
    features = rng.normal(size=(n, n_features))
    labels = ((features * normal).sum(1) > 0).astype(np.int64)
    flipped = rng.random(n) < noise
    labels[flipped] = 1 - labels[flipped]
    return _stream(features, labels, 2)


def builtin(name: str, n: int, seed: int = 0) -> LabeledStream:
    """A generated stream of ``n`` samples (``short``: at most `SHORT`) by name (`BUILTIN`):

    - ``stationary``: 5 Gaussian classes; ``abrupt``, ``gradual``: 3 that swap places at half
      the stream (gradual: over a fifth of it, centered on the half);
    - ``sea``: SEA concepts without label noise, their threshold moving at half the stream
      (`sea`; ``sea_abrupt`` among the peers' streams has 10% of its labels flipped);
    - ``sparse``: word counts of 4 topics over 300 words, the last 100 of which appear only
      from a fifth of the stream on (constant zero before);
    - ``pixels``: 10 classes of binary 8 x 8 images, most pixels zero;
    - ``many_classes``: 15 classes, two Gaussian blobs each;
    - ``rare``: 3 classes, one of them 3% of the samples, between the other two;
    - ``relocated``, ``relocated_gradual``: 3 classes with non-linear boundaries that move far
      away at half the stream (gradual: over a fifth of it, centered on the half);
    - ``rotating``: 2 classes split by a hyperplane that turns by half a turn over the stream
      (incremental drift that no detector sees as one change), 5% of labels flipped;
    - ``short``: 4 classes of two blobs each, at most `SHORT` samples.
    """
    gradual = {"drift_at": n // 2 - n // 10, "drift_width": n // 5}
    if name == "stationary":
        return gaussian_classes(n, n_classes=5, spread=1.5, seed=seed)
    if name == "abrupt":
        return gaussian_classes(n, spread=1.5, drift_at=n // 2, seed=seed)
    if name == "gradual":
        return gaussian_classes(n, spread=1.5, **gradual, seed=seed)
    if name == "sea":
        return sea(n, seed=seed)
    if name == "sparse":
        return word_counts(n, late_at=n // 5, seed=seed)
    if name == "pixels":
        return binary_pixels(n, seed=seed)
    if name == "many_classes":
        return gaussian_classes(n, n_classes=15, centroids=2, spread=1.5, seed=seed)
    if name == "rare":
        return imbalanced(n, seed=seed)
    if name == "relocated":
        return relocated_classes(n, drift_at=n // 2, seed=seed)
    if name == "relocated_gradual":
        return relocated_classes(n, **gradual, seed=seed)
    if name == "rotating":
        return rotating(n, seed=seed)
    if name == "short":
        return gaussian_classes(min(n, SHORT), n_classes=4, centroids=2, spread=1.5, seed=seed)
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

    source: Iterable[tuple[dict[str, Any], Any]]
    if name == "sea_abrupt":
        return sea(n, noise=0.1, seed=seed)
    if name == "hyperplane":
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
    return _from_river(source, n, ())


def held_out(name: str, n: int, seed: int = 0) -> LabeledStream:
    """A held-out stream (`HELD_OUT`) of ``n`` samples (``bananas``: at most its 5,300):

    - ``bananas``: river's bundled Bananas, in file order: 2 features, 2 interleaved classes;
    - ``agrawal``: loan applications (9 features on scales from units to hundreds of thousands,
      some coded categories) whose approval rule changes at half the stream, over a twentieth
      of it;
    - ``led``: the 7 segments of a digit, 10% of them flipped, and 17 irrelevant ones: 10 classes;
    - ``waveform``: 3 classes of noisy waveforms, 21 features and 19 of pure noise;
    - ``random_tree``: 3 classes given by a random decision tree on 6 features;
    - ``sine``, ``stagger``: an abrupt change of concept at half the stream (sine: a sine
      boundary that reverses, with 2 noise features; stagger: 3 coded categories, one boolean
      rule for another);
    - ``mixed``: two boolean and two numeric features, a boundary that mixes both;
    - ``rbf_moving``: 4 imbalanced classes of 20 Gaussian centroids in 8 dimensions, 10 of
      them moving all the time (incremental drift no detector sees as one change).

    >>> stream = held_out("stagger", 400, seed=1)
    >>> stream.features.shape, stream.classes, stream.drifts
    ((400, 3), ['0', '1'], (200,))
    """
    from river import datasets
    from river.datasets import synth

    source: Iterable[tuple[dict[str, Any], Any]]
    drifts: tuple[int, ...] = ()
    if name in ("agrawal", "sine", "stagger"):
        changes: dict[str, tuple[Callable[..., SyntheticDataset], int, tuple[int, int]]] = {
            "agrawal": (synth.Agrawal, n // 20, (0, 2)),
            "sine": (partial(synth.Sine, has_noise=True), 50, (0, 1)),
            "stagger": (synth.STAGGER, 50, (0, 2)),
        }
        kind, width, concepts = changes[name]
        before, after = (kind(classification_function=f, seed=seed) for f in concepts)
        source, drifts = _change(before, after, n, width, seed), (n // 2,)
    elif name == "bananas":
        source = datasets.Bananas()
    elif name == "led":
        source = synth.LED(seed=seed, noise_percentage=0.1, irrelevant_features=True)
    elif name == "waveform":
        source = synth.Waveform(seed=seed, has_noise=True)
    elif name == "random_tree":
        source = synth.RandomTree(
            seed_tree=seed, seed_sample=seed, n_classes=3, n_num_features=6, n_cat_features=0,
            max_tree_depth=5,
        )  # fmt: skip
    elif name == "mixed":
        source = synth.Mixed(seed=seed)
    elif name == "rbf_moving":
        source = synth.RandomRBFDrift(
            seed_model=seed, seed_sample=seed, n_classes=4, n_features=8, n_centroids=20,
            change_speed=0.001, n_drift_centroids=10,
        )  # fmt: skip
    else:
        raise ConfigError(f"unknown held-out stream {name!r}; use {', '.join(HELD_OUT)}")
    return _from_river(source, n, drifts)


def _change(
    before: SyntheticDataset, after: SyntheticDataset, n: int, width: int, seed: int
) -> SyntheticDataset:
    """``before``, then ``after`` from half of ``n`` samples on, over about ``width``."""
    from river.datasets import synth

    return synth.ConceptDriftStream(before, after, position=n // 2, width=width, seed=seed)


def sea(n: int, *, noise: float = 0.0, drift_width: int = 100, seed: int = 0) -> LabeledStream:
    """SEA concepts (river's generator): 3 features uniform in [0, 10], the class whether the
    first two sum to more than 8, and from half the stream on (over about ``drift_width``
    samples) to more than 9.5, so about 13% of the samples change class; a share ``noise`` of
    the labels flipped.

    >>> stream = sea(2000, seed=1)
    >>> stream.features.shape, stream.classes, stream.drifts
    ((2000, 3), ['False', 'True'], (1000,))
    >>> x, y = stream.features, stream.labels
    >>> bool(((x[:, 0] + x[:, 1] > 8) == (y == 1))[:900].all())
    True
    >>> bool(((x[:, 0] + x[:, 1] > 9.5) == (y == 1))[1100:].all())
    True
    """
    from river.datasets import synth

    before, after = (synth.SEA(variant=v, noise=noise, seed=seed) for v in (0, 3))
    return _from_river(_change(before, after, n, drift_width, seed), n, (n // 2,))


def _from_river(
    source: Iterable[tuple[dict[str, Any], Any]], n: int, drifts: tuple[int, ...]
) -> LabeledStream:
    """The first ``n`` samples of a river dataset or generator, its classes in sorted order."""
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

"""The stream's cold-start coverage: pure utilities, a uniform reservoir, and with a real budget
gate on a stream with a rare class, every class asked after fewer labels than at random."""

from __future__ import annotations

import numpy as np
import pytest

from streamal.gates import QuantileBudget, Route
from streamal.gates.coverage import Coverage

SHARES = (0.6, 0.37, 0.03)


def rare_stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 5-D, the last 3% of the stream."""
    centers = np.random.default_rng(99).normal(scale=3.0, size=(3, 5))
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=SHARES)
    return centers[labels] + rng.normal(size=(n, 5)), labels


def labels_until_every_class(seed: int, diverse: bool, batch: int = 50) -> int:
    """Requests a 10% quantile gate makes until every class was asked once."""
    x, y = rare_stream(3_000, seed)
    gate, cover = QuantileBudget(budget=0.1), Coverage(seed=seed)
    draws, seen, asked = np.random.default_rng([seed, 1]), set(), 0
    for start in range(0, len(x), batch):
        rows = x[start : start + batch]
        utilities = cover.utilities(rows) if diverse else draws.random(len(rows))
        decision = gate.decide(utilities)
        gate.update(decision)
        picked = decision.routes == Route.ORACLE
        cover.update(rows, picked)
        for label in y[start : start + batch][picked]:
            asked += 1
            seen.add(int(label))
            if len(seen) == 3:
                return asked
    return asked


def test_every_class_is_asked_after_fewer_labels_than_at_random() -> None:
    diverse = [labels_until_every_class(seed, True) for seed in range(8)]
    random = [labels_until_every_class(seed, False) for seed in range(8)]
    assert np.mean(diverse) < 0.5 * np.mean(random), (diverse, random)


def test_utilities_are_pure_ranks_that_grow_with_the_distance_to_what_was_asked() -> None:
    cover = Coverage(seed=0)
    x = np.random.default_rng(1).normal(size=(300, 3))
    cover.update(x, np.arange(300) < 5)
    probe = np.array([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0], [30.0, 0.0, 0.0]])
    first = cover.utilities(probe)
    np.testing.assert_array_equal(first, cover.utilities(probe))
    assert ((first > 0) & (first <= 1)).all() and first[2] == 1.0
    assert first[0] < first[1] < first[2]
    assert cover.asked == 5


def test_the_reservoir_is_a_uniform_sample_of_the_stream_and_asked_ones_are_bounded() -> None:
    cover = Coverage(reservoir=200, memory=30, seed=3)
    for start in range(0, 10_000, 100):
        rows = np.arange(start, start + 100, dtype=float)[:, None]
        cover.update(rows, np.ones(100, dtype=bool))
    kept = cover._reservoir
    assert kept is not None and kept.shape == (200, 1)
    assert abs(kept.mean() - 5_000) < 600  # uniform over 0..9,999, not the newest
    assert cover.asked == 30


def test_features_of_another_width_start_afresh_and_bad_shapes_are_refused() -> None:
    cover = Coverage()
    cover.update(np.zeros((4, 2)), np.ones(4, dtype=bool))
    cover.update(np.zeros((4, 3)), np.zeros(4, dtype=bool))
    assert cover.asked == 0 and cover.utilities(np.zeros((2, 3))).shape == (2,)
    with pytest.raises(ValueError, match="2 dimensions"):
        cover.utilities(np.zeros(3))
    with pytest.raises(ValueError, match=">= 1"):
        Coverage(reservoir=0)

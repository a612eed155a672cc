"""The label-free shift monitor: silent on stationary signals, quick on a jump."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from streamal.gates.shift import ShiftMonitor


def alarms(monitor: ShiftMonitor, batches: list[np.ndarray]) -> list[int]:
    """The batch indices where ``monitor`` reported a shift."""
    return [i for i, batch in enumerate(batches) if monitor.update(batch)]


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.normal(0, 1, (64, 20)),  # dense features
        lambda rng: rng.poisson(0.02, (64, 500)).astype(float),  # sparse counts, rare columns
        lambda rng: (rng.random((64, 100)) < 0.5).astype(float),  # binary pixels
        lambda rng: 0.5 + 0.5 * rng.beta(8, 1, 64),  # confidences
    ],
    ids=["dense", "sparse", "binary", "confidences"],
)
def test_stationary_signals_raise_no_alarm(
    draw: Callable[[np.random.Generator], np.ndarray],
) -> None:
    rng = np.random.default_rng(3)
    assert alarms(ShiftMonitor(), [draw(rng) for _ in range(600)]) == []


def test_a_feature_that_jumps_is_reported_within_the_recent_window() -> None:
    rng = np.random.default_rng(4)
    before = [rng.normal(0, 1, (64, 20)) for _ in range(60)]
    after = [rng.normal(0, 1, (64, 20)) for _ in range(20)]
    for batch in after:
        batch[:, 7] += 1.0  # one column of twenty moves by a standard deviation
    found = alarms(ShiftMonitor(recent=300, reference=1500), before + after)
    # reported once, a few batches after the jump (the recent window holds 5 batches)
    assert len(found) == 1 and 60 <= found[0] < 60 + 5


def test_confidences_that_fall_are_reported_and_the_monitor_starts_over() -> None:
    rng = np.random.default_rng(5)
    monitor = ShiftMonitor(recent=200, reference=800)
    high = [0.5 + 0.5 * rng.beta(8, 1, 50) for _ in range(40)]
    low = [0.5 + 0.5 * rng.beta(2, 2, 50) for _ in range(40)]
    found = alarms(monitor, high + low)
    # once at the fall; the low confidences are then the new normal
    assert len(found) == 1 and 40 <= found[0] < 45


def test_slow_drift_is_left_to_the_label_detectors() -> None:
    rng = np.random.default_rng(6)
    batches = [rng.normal(i / 2000, 1, (64, 5)) for i in range(600)]  # 0.3 sd in 38,400 rows
    assert alarms(ShiftMonitor(), batches) == []


def test_a_change_of_columns_starts_the_windows_over() -> None:
    monitor = ShiftMonitor(recent=10, reference=10)
    for _ in range(3):
        assert not monitor.update(np.zeros((10, 2)))
    assert not monitor.update(np.ones((10, 3)))  # other signals: nothing to compare yet


@pytest.mark.parametrize("kwargs", [{"recent": 0}, {"alpha": 0.0}, {"alpha": 1.0}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ShiftMonitor(**kwargs)  # type: ignore[arg-type]

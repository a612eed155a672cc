"""Drift is seen on the labels that are unbiased samples, and dated where it began."""

from __future__ import annotations

import numpy as np

from streamal.training.config import DriftConfig
from streamal.training.drift import DriftMonitor
from streamal.training.labels import Joined


def label(seq: int, reason: str, correct: bool, confidence: float = 0.9) -> Joined:
    return Joined(f"s{seq}", "a", "a" if correct else "b", confidence, 0.0, reason, seq)


def test_errors_on_uncertain_labels_are_not_drift_evidence() -> None:
    monitor = DriftMonitor(DriftConfig())
    rng = np.random.default_rng(0)
    found = [
        monitor.update(label(i, "uncertain", correct=rng.random() > (0.05 if i < 500 else 0.6)))
        for i in range(1000)
    ]
    assert not any(found)


def test_a_jump_in_audit_errors_is_a_drift_dated_near_its_start() -> None:
    monitor = DriftMonitor(DriftConfig())
    rng = np.random.default_rng(1)
    found = {}
    for i in range(600):
        wrong = rng.random() < (0.02 if i < 400 else 0.9)
        found = monitor.update(label(i, "audit", correct=not wrong))
        if found:
            break
    assert set(found) == {"audit"}
    assert 400 < i < 420  # a few audits after the change
    assert 390 <= found["audit"] <= 410  # where the new concept's labels start, about


def test_less_confidence_on_random_labels_is_a_drift() -> None:
    monitor = DriftMonitor(DriftConfig())
    found = [
        monitor.update(label(i, "explore", correct=True, confidence=0.95 if i < 500 else 0.5))
        for i in range(700)
    ]
    assert {name for drifts in found for name in drifts} == {"confidence"}

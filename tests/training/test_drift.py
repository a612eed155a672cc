"""Drift is seen on the labels that are unbiased samples, and dated where it began."""

from __future__ import annotations

import numpy as np

from streamal.training.config import DriftConfig
from streamal.training.drift import DriftMonitor
from streamal.training.labels import Joined


def label(seq: int, reason: str, correct: bool, confidence: float = 0.9) -> Joined:
    return Joined(f"s{seq}", "a", "a" if correct else "b", confidence, 0.0, reason, seq)


def test_errors_their_confidence_expected_are_not_drift_evidence() -> None:
    """Uncertain labels: many errors by selection, more as the asked samples get harder, but
    as many as the model's confidence said (a calibrated model): no drift."""
    monitor = DriftMonitor(DriftConfig())
    rng = np.random.default_rng(0)
    found = []
    for i in range(2000):
        confidence = rng.uniform(0.5, 0.95) if i < 1000 else rng.uniform(0.34, 0.6)
        correct = rng.random() < confidence
        found.append(monitor.update(label(i, "uncertain", correct, confidence)))
    assert not any(found)


def test_confidently_wrong_answers_are_a_drift_whatever_made_them_asked() -> None:
    """The boundary moved: labels asked as uncertain at confidence 0.7 turn wrong far more
    often than 30%."""
    monitor = DriftMonitor(DriftConfig())
    rng = np.random.default_rng(2)
    found: dict[str, int] = {}
    for i in range(1500):
        wrong = rng.random() < (0.3 if i < 1000 else 0.8)
        if found := monitor.update(label(i, "uncertain", correct=not wrong, confidence=0.7)):
            break
    assert set(found) == {"surprise"}
    assert 1000 < i < 1100 and 950 <= found["surprise"] <= 1050


def test_a_jump_in_audit_errors_is_a_drift_dated_near_its_start() -> None:
    monitor = DriftMonitor(DriftConfig())
    rng = np.random.default_rng(1)
    found = {}
    for i in range(600):
        wrong = rng.random() < (0.02 if i < 400 else 0.9)
        found = monitor.update(label(i, "audit", correct=not wrong))
        if found:
            break
    assert "audit" in found
    assert 400 < i < 420  # a few audits after the change
    assert 390 <= found["audit"] <= 410  # where the new concept's labels start, about


def test_less_confidence_on_random_labels_is_a_drift() -> None:
    monitor = DriftMonitor(DriftConfig())
    found = [
        monitor.update(label(i, "explore", correct=True, confidence=0.95 if i < 500 else 0.5))
        for i in range(700)
    ]
    assert {name for drifts in found for name in drifts} == {"confidence"}

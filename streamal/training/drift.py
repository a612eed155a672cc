"""Drift detection with river's detectors on two streams the trainer sees.

One detector watches the oracle-vs-prediction errors (the model got worse), one the model's
confidence on the requests (the inputs moved). A detector reports a change in either
direction; only a change for the worse (more errors, less confidence) counts as a drift, since
a model that improves with training changes both too. A drift means: explore more for a
while and train early.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from river import drift

from streamal.training.config import DriftConfig


def make_detector(config: DriftConfig) -> Any:
    """A fresh river detector as configured."""
    if config.detector == "adwin":  # checked at every label: labels are few, and late is costly
        return drift.ADWIN(delta=config.delta, clock=1)
    if config.detector == "kswin":
        return drift.KSWIN(alpha=config.delta, seed=0)
    return drift.PageHinkley(delta=config.delta)


RECENT = 50


class _Watch:
    """One stream: its detector, and its mean before and after a change."""

    def __init__(self, config: DriftConfig, worse: int) -> None:
        self.detector = make_detector(config)
        self.worse = worse  # +1: a rise is for the worse; -1: a fall is
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.total, self.count = 0.0, 0

    def update(self, value: float) -> bool:
        self.detector.update(value)
        self.recent.append(value)
        self.total, self.count = self.total + value, self.count + 1
        if not self.detector.drift_detected:
            return False
        before = (self.total - sum(self.recent)) / max(1, self.count - len(self.recent))
        after = sum(self.recent) / len(self.recent)
        self.total, self.count = sum(self.recent), len(self.recent)
        return (after - before) * self.worse > 0


class DriftMonitor:
    """Feeds both streams to their detectors; reports which saw a change for the worse.

    >>> monitor = DriftMonitor(DriftConfig())
    >>> better = [monitor.update(correct=i >= 600, confidence=0.9) for i in range(1200)]
    >>> set().union(*better)  # fewer errors: a change, but no drift
    set()
    >>> worse = [monitor.update(correct=i < 600, confidence=0.9) for i in range(1200)]
    >>> set().union(*worse)
    {'error'}
    """

    def __init__(self, config: DriftConfig) -> None:
        self._watches = {"error": _Watch(config, worse=+1), "confidence": _Watch(config, worse=-1)}

    def update(self, *, correct: bool, confidence: float) -> set[str]:
        """One labeled request: was the prediction right, and how sure was the model."""
        values = {"error": float(not correct), "confidence": confidence}
        return {name for name, watch in self._watches.items() if watch.update(values[name])}

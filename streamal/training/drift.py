"""Drift detection with river's detectors on two streams the trainer sees.

One detector watches the oracle-vs-prediction errors (the model got worse), one the model's
confidence on the requests (the inputs moved). Either firing means: explore more for a while
and train early.
"""

from __future__ import annotations

from typing import Any

from river import drift

from streamal.training.config import DriftConfig


def make_detector(config: DriftConfig) -> Any:
    """A fresh river detector as configured."""
    if config.detector == "adwin":
        return drift.ADWIN(delta=config.delta)
    if config.detector == "kswin":
        return drift.KSWIN(alpha=config.delta, seed=0)
    return drift.PageHinkley(delta=config.delta)


class DriftMonitor:
    """Feeds both streams to their detectors; reports which fired.

    >>> monitor = DriftMonitor(DriftConfig())
    >>> fired = [monitor.update(correct=i < 600, confidence=0.9) for i in range(1200)]
    >>> "error" in set().union(*fired)
    True
    """

    def __init__(self, config: DriftConfig) -> None:
        self._config = config
        self._detectors = {"error": make_detector(config), "confidence": make_detector(config)}

    def update(self, *, correct: bool, confidence: float) -> set[str]:
        """One labeled request: was the prediction right, and how sure was the model."""
        fired = set()
        for name, value in (("error", float(not correct)), ("confidence", confidence)):
            detector = self._detectors[name]
            detector.update(value)
            if detector.drift_detected:
                fired.add(name)
        return fired

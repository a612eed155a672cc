"""Drift detection with river's detectors on the labels that are unbiased samples.

Labels asked because the model was uncertain tell little about drift by their errors alone:
those are high by selection. So three detectors watch the others, and a fourth every label,
against what the model expected:

- ``error``: the errors on labels asked at random (reason ``explore``): the model got worse
  on the stream as it is;
- ``audit``: the errors on audited auto-label candidates: confident predictions went wrong
  (the auto-labels with them);
- ``confidence``: the model's confidence on labels asked at random: the inputs moved;
- ``surprise``: on every label, the error less what the model's confidence expected
  (``wrong - (1 - confidence)``): near 0 on average while the model's confidence means what it
  says, whatever made the sample be asked (the selection is on the confidence, which this
  takes out), and up when it turns confidently wrong: the boundary moved.

And a sequential test on the unbiased labels (asked at random, and audits) finds a large change
in a few labels where the detectors above need tens: ``overconfidence``, Page's CUSUM of the
likelihood ratio that the model's errors run at `ODDS` times the odds its confidence states
(see `Overconfidence`). Not on uncertain labels: they are picked where the served model is
unsure, and a part of it (the one judged) sure there is one its other parts disagree with,
wrong more often than it says without any drift (seen: false alarms on stationary streams
of many classes, where the neighbours part leads the MLP).

None of them reads a label predicted by the untrained version 0: its uniform guesses say
nothing of a model's calibration, and would set the baselines against which the first trained
models' usual over-confidence reads as a drift.

A detector reports a change in either direction; only a change for the worse (more errors, less
confidence) counts as a drift, since a model that improves with training changes all three too.
A drift means: explore more for a while, and train early on the labels since the change.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from river import drift

from streamal.training.config import DriftConfig
from streamal.training.labels import Joined


def make_detector(config: DriftConfig) -> Any:
    """A fresh river detector as configured."""
    if config.detector == "adwin":  # checked at every label: labels are few, and late is costly
        return drift.ADWIN(delta=config.delta, clock=1)
    if config.detector == "kswin":
        return drift.KSWIN(alpha=config.delta, seed=0)
    return drift.PageHinkley(delta=config.delta)


RECENT = 50  # the newest values, taken as the new concept's to tell a rise from a fall
HISTORY = 5000  # values (with their store points) searched for where a change began


class _Watch:
    """One stream of values: its detector, its mean before a change, and its recent values
    with their store points."""

    def __init__(self, config: DriftConfig, worse: int) -> None:
        self.detector = make_detector(config)
        self.worse = worse  # +1: a rise is for the worse; -1: a fall is
        self.values: deque[float] = deque(maxlen=HISTORY)
        self.points: deque[int] = deque(maxlen=HISTORY)
        self.total, self.count = 0.0, 0

    def update(self, value: float, point: int) -> int | None:
        """Add ``value`` (at store ``point``); the point where the new concept starts if this
        completes a change for the worse."""
        self.detector.update(value)
        self.values.append(value)
        self.points.append(point)
        self.total, self.count = self.total + value, self.count + 1
        if not self.detector.drift_detected:
            return None
        recent = list(self.values)[-RECENT:]
        before = (self.total - sum(recent)) / max(1, self.count - len(recent))
        after = sum(recent) / len(recent)
        start = self.points[self._change(before, after)] - 1
        self.total, self.count = sum(recent), len(recent)  # the new concept's values go on
        while len(self.values) > len(recent):
            self.values.popleft()
            self.points.popleft()
        return start if (after - before) * self.worse > 0 else None

    def _change(self, before: float, after: float) -> int:
        """Where the values moved from ``before`` to ``after``: the minimum of Page's CUSUM."""
        steps = (np.array(self.values) - (before + after) / 2) * self.worse
        cusum = np.concatenate([[0.0], np.cumsum(steps)])
        return min(int(np.argmin(cusum)), len(self.values) - 1)


UNBIASED = ("explore", "audit")  # reasons not chosen for the model's uncertainty
ODDS = 5.0  # the alternative: errors at this many times the odds the confidence states
ALARM = math.log(10_000)  # at most one false alarm in about 10,000 labels (Lorden's bound)
CALIBRATION = 500  # about how many labels the model's usual excess of errors is a mean of
PRIOR = 20  # labels of that mean needed before the test is armed (the default asks about 3
# unbiased labels in 100 samples at budget 0.1: 50 left it blind for the first 1,700 or so)


def mean_shift(values: np.ndarray) -> int:
    """Where ``values`` split best into a lower mean before and a higher one from there on
    (the largest between-segments sum of squares); 0 when no split raises the mean.

    >>> mean_shift(np.array([0.1, 0.3, 0.2, 0.2, 1.5, 1.3, 1.6]))
    4
    >>> mean_shift(np.array([1.0, 1.0, 1.0])), mean_shift(np.array([2.0, 0.0]))
    (0, 0)
    """
    n = len(values)
    j = np.arange(1, n)
    before = np.cumsum(values)[:-1]
    rise = (values.sum() - before) / (n - j) - before / j
    gain = np.where(rise > 0, j * (n - j) / n * rise**2, 0.0)
    return int(j[np.argmax(gain)]) if n > 1 and gain.max() > 0 else 0


class Overconfidence:
    """Page's CUSUM of the log-likelihood ratio, label by label, that the model's errors run at
    `ODDS` times the odds its confidence states, against what it states.

    Each label's stated error ``1 - confidence`` is first raised by the model's usual excess
    (a running mean of ``wrong - (1 - confidence)``, over about the last `CALIBRATION` labels,
    when positive), so a model that is as over-confident as ever (label noise, an MLP sure far
    from its boundary) is not drifting. While its confidence means what it says the statistic
    drifts down, and an alarm comes at most once in about ``exp(ALARM)`` labels; when the
    model turns confidently wrong it climbs by up to ``log(ODDS)`` a wrong answer, and an
    alarm comes within a few labels. The change is dated where the steps of the run that ended
    in the alarm split best into a lower mean and a higher one (not where the run left 0: one
    that crept up by chance long before the change would date it far too early, and the old
    concept's labels would be taken as the new one's). The test is armed once `PRIOR` labels
    set the excess, and after an alarm until `rearm` (the labels still judged by the model the
    change made wrong would raise it again and again).

    >>> test = Overconfidence()
    >>> [test.update(0.1, wrong=i % 10 == 0, point=i) for i in range(2000)].count(None)
    2000
    >>> found = [test.update(0.1, wrong=True, point=2000 + i) for i in range(20)]
    >>> [(i, start) for i, start in enumerate(found) if start is not None]  # 8 labels in
    [(7, 1999)]

    A run that crept up first (one error in 4) is dated where the errors turned to all:

    >>> test = Overconfidence()
    >>> calm = [test.update(0.1, wrong=i % 10 == 0, point=i) for i in range(2000)]
    >>> creep = [test.update(0.1, wrong=i % 4 == 0, point=2000 + i) for i in range(40)]
    >>> found = [test.update(0.1, wrong=True, point=2040 + i) for i in range(20)]
    >>> [start for start in found if start is not None]
    [2039]
    """

    def __init__(self) -> None:
        self.alarm = 0.0
        self.excess = 0.0  # the mean of wrong - stated error
        self.count = 0
        self.armed = True
        self.steps: list[float] = []  # the current run's log-likelihood ratios
        self.points: list[int] = []  # and their points

    def update(self, stated_error: float, wrong: bool, point: int) -> int | None:
        """Add a label at store ``point``: the point before the rise began, if this is an
        alarm."""
        if not self.armed:
            return None
        p0 = min(max(stated_error + max(self.excess, 0.0), 1e-3), 1 - 1e-3)
        p1 = ODDS * p0 / (1 - p0 + ODDS * p0)
        self.count += 1
        self.excess += (wrong - stated_error - self.excess) / min(self.count, CALIBRATION)
        if self.count <= PRIOR:
            return None
        step = math.log(p1 / p0 if wrong else (1 - p1) / (1 - p0))
        self.alarm = max(0.0, self.alarm + step)
        if self.alarm == 0.0:
            self.steps, self.points = [], []
            return None
        self.steps.append(step)
        self.points.append(point)
        if self.alarm <= ALARM:
            return None
        start = self.points[mean_shift(np.array(self.steps))]
        self.disarm()
        return start - 1

    def disarm(self) -> None:
        """Stop until `rearm`: a change was found."""
        self.alarm, self.steps, self.points, self.armed = 0.0, [], [], False

    def rearm(self) -> None:
        """Watch again: a model trained since the alarm judges the labels from now on."""
        self.armed = True


class DriftMonitor:
    """Feeds each label to the detectors that watch its kind; reports the drifts it completes.
    One change is reported once: after a drift every detector starts over on the new concept
    (one slower to see the change would report it again, and start the trainer over on the
    few labels it learned since), and the sequential test waits for a new model (`rearm`).

    >>> from streamal.training.labels import Joined
    >>> def label(i, correct):
    ...     guess = "a" if correct else "b"
    ...     return Joined(f"s{i}", "a", guess, 0.9, 0.0, "explore", i, model_version=1)
    >>> monitor = DriftMonitor(DriftConfig())
    >>> [monitor.update(label(i, correct=i >= 600)) for i in range(1200)] == [{}] * 1200
    True
    >>> found = [monitor.update(label(1200 + i, correct=i < 600)) for i in range(1200)]
    >>> [(i, drifts) for i, drifts in enumerate(found) if drifts]  # detector: new concept's start
    [(607, {'overconfidence': 1799})]
    """

    def __init__(self, config: DriftConfig) -> None:
        self._config = config
        self._watches = self._fresh_watches()
        self._overconfidence = Overconfidence()

    def _fresh_watches(self) -> dict[str, _Watch]:
        return {
            "error": _Watch(self._config, worse=+1),
            "audit": _Watch(self._config, worse=+1),
            "confidence": _Watch(self._config, worse=-1),
            "surprise": _Watch(self._config, worse=+1),
        }

    def update(self, joined: Joined) -> dict[str, int]:
        """One label met its request; detector -> store point where the new concept starts,
        for each detector that saw a drift. A label predicted by the untrained version 0 is
        not read (see the module)."""
        if joined.model_version == 0:
            return {}
        error = float(joined.label != joined.predicted)
        values = {"surprise": error - (1.0 - joined.confidence)}
        if joined.reason == "explore":
            values |= {"error": error, "confidence": joined.confidence}
        elif joined.reason == "audit":
            values |= {"audit": error}
        found = {name: self._watches[name].update(v, joined.seq) for name, v in values.items()}
        if joined.reason in UNBIASED:
            found["overconfidence"] = self._overconfidence.update(
                1.0 - joined.confidence, bool(error), joined.seq
            )
        drifts = {name: point for name, point in found.items() if point is not None}
        if drifts:
            self._watches = self._fresh_watches()
            self._overconfidence.disarm()
        return drifts

    def rearm(self) -> None:
        """A new model judges the labels from now on (see `Overconfidence.rearm`)."""
        self._overconfidence.rearm()

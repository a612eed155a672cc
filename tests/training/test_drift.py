"""Drift is seen on the labels that are unbiased samples, and dated where it began."""

from __future__ import annotations

import numpy as np

from streamal.training.config import DriftConfig
from streamal.training.drift import DriftMonitor, Overconfidence
from streamal.training.labels import Joined


def label(
    seq: int, reason: str, correct: bool, confidence: float = 0.9, version: int = 1
) -> Joined:
    guess = "a" if correct else "b"
    return Joined(f"s{seq}", "a", guess, confidence, 0.0, reason, seq, model_version=version)


def test_the_untrained_models_guesses_are_no_evidence() -> None:
    """Random labels sure and wrong set the sequential test off within 10 (below), unless
    the untrained version 0 predicted them: those no detector reads, then or later."""
    calm = [label(i, "explore", correct=i % 10 != 0) for i in range(200)]
    guessed = [label(200 + i, "explore", correct=False, version=0) for i in range(100)]
    assert not first_found(DriftMonitor(DriftConfig()), calm + guessed)
    trained = [label(200 + i, "explore", correct=False) for i in range(30)]
    assert set(first_found(DriftMonitor(DriftConfig()), calm + trained)) >= {"overconfidence"}


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


def first_found(monitor: DriftMonitor, labels: list[Joined]) -> dict[str, tuple[int, int]]:
    """Each detector's first drift: (the label that completed it, the start it dated)."""
    first: dict[str, tuple[int, int]] = {}
    for i, joined in enumerate(labels):
        for name, start in monitor.update(joined).items():
            first.setdefault(name, (i, start))
    return first


def test_confidently_wrong_answers_are_a_drift_whatever_made_them_asked() -> None:
    """The boundary moved: labels asked as uncertain at confidence 0.7 turn wrong far more
    often than 30%: the surprise detector sees it in about 40 labels."""
    rng = np.random.default_rng(2)
    wrong = rng.random(1500) < np.where(np.arange(1500) < 1000, 0.3, 0.8)
    found = first_found(DriftMonitor(DriftConfig()), [
        label(i, "uncertain", correct=not w, confidence=0.7) for i, w in enumerate(wrong)
    ])  # fmt: skip
    assert set(found) == {"surprise"}
    at, start = found["surprise"]
    assert 1000 < at < 1100 and 950 <= start <= 1050


def test_the_sequential_test_reads_the_labels_the_model_did_not_choose() -> None:
    """Uncertain labels on which the judged part is sure and wrong: its other parts disagree
    with it there (they made the sample uncertain), which is not a drift, and the sequential
    test does not read them (10 would set it off). Random labels sure and wrong are: an alarm
    within 10."""
    calm = [label(i, "explore", correct=i % 10 != 0) for i in range(200)]
    chosen = [label(200 + i, "uncertain", correct=False) for i in range(10)]
    random = [label(210 + i, "explore", correct=False) for i in range(30)]
    found = first_found(DriftMonitor(DriftConfig()), calm + chosen + random)
    at, start = found["overconfidence"]
    assert 210 < at < 220 and start == 209


def test_a_jump_in_audit_errors_is_a_drift_dated_near_its_start() -> None:
    rng = np.random.default_rng(1)
    wrong = rng.random(600) < np.where(np.arange(600) < 400, 0.02, 0.9)
    found = first_found(
        DriftMonitor(DriftConfig()), [label(i, "audit", correct=not w) for i, w in enumerate(wrong)]
    )
    assert set(found) == {"overconfidence"}  # first, and the change is reported once
    at, start = found["overconfidence"]
    assert 400 < at < 410  # a few audits after the change
    assert 395 <= start <= 405  # where the new concept's labels start, about


def test_one_change_is_reported_once_and_its_start_is_where_the_errors_jumped() -> None:
    """Random labels wrong a little more often than stated for a while (the sequential
    statistic creeps up), then wrong on nearly every answer: one alarm, dated at the jump, not
    where the creep began; the detectors slower to see the change do not report it again,
    even as the model that made the errors keeps judging."""
    rng = np.random.default_rng(4)
    wrong = rng.random(1400) < np.select(
        [np.arange(1400) < 600, np.arange(1400) < 800], [0.1, 0.2], 0.95
    )
    monitor = DriftMonitor(DriftConfig())
    alarms = [
        (i, found) for i, w in enumerate(wrong)
        if (found := monitor.update(label(i, "explore", correct=not w)))
    ]  # fmt: skip
    assert len(alarms) == 1
    at, found = alarms[0]
    assert 800 < at < 815
    assert all(795 <= start <= 805 for start in found.values())


def test_the_sequential_test_holds_still_while_the_model_is_as_over_confident_as_ever() -> None:
    """A model whose answers are wrong three times as often as its confidence says, all along
    (label noise, say), over 20,000 labels: no alarm. The same model wrong on every answer
    sets it off within 25 labels, once, and again only once a new model judges (`rearm`)."""
    rng = np.random.default_rng(3)
    monitor = Overconfidence()
    confidence = rng.uniform(0.6, 0.999, size=20_000)
    wrong = rng.random(20_000) < 3 * (1 - confidence)
    assert all(monitor.update(1 - c, bool(w), i) is None
               for i, (c, w) in enumerate(zip(confidence, wrong, strict=True)))  # fmt: skip

    def alarms(start: int) -> list[int]:
        found = [monitor.update(1 - c, True, start + i) for i, c in enumerate(confidence[:100])]
        return [i for i, began in enumerate(found) if began is not None]

    first = alarms(20_000)
    assert len(first) == 1 and first[0] < 25  # disarmed after it
    monitor.rearm()
    again = alarms(20_100)
    assert len(again) == 1 and again[0] < 25


def test_the_sequential_test_is_armed_early_in_a_stream() -> None:
    """A change 25 unbiased labels into a stream (about 800 samples at budget 0.1, where the
    default asks some 3 in 100): the model, right 9 times in 10 at 0.9 confidence so far,
    turns wrong on every answer, and is found within 10 labels."""
    monitor = Overconfidence()
    assert all(monitor.update(0.1, i % 10 == 0, i) is None for i in range(25))
    found = [monitor.update(0.1, True, 25 + i) for i in range(20)]
    alarms = [i for i, began in enumerate(found) if began is not None]
    assert alarms and alarms[0] < 10

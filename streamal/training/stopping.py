"""Stopping criteria: the signal that more labels no longer pay.

Four rules, judged after each training round (the trainer), over the stored versions (pool
mode), or along a replayed stream (the simulation):

- ``accuracy_plateau``: the accuracy on the held-out labels gained less than ``min_gain`` in
  the last ``rounds`` rounds over the best before them;
- ``stable_predictions`` (Bloodgood and Vijay-Shanker 2009): the model's predictions on a fixed
  sample of unlabeled inputs (the *stop set*) changed little from round to round: the mean of
  Cohen's kappa between consecutive rounds, over the last ``rounds``, reached ``agreement``;
- ``low_uncertainty`` (Zhu, Wang and Hovy 2008): the mean least confidence on the stop set was
  ``uncertainty`` or below in each of the last ``rounds``: the model is sure of what it serves;
- ``budget_spent``: the labels reached ``max_labels``.

A rule holds until the evidence says otherwise; a new concept (a drift) starts every rule
afresh, since more labels pay again. This module is pure but for `stop_set_view`, which asks a
predictor for its predictions on the stop set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamal.messages import Sample
from streamal.metrics import STOPPING_RULES as RULES
from streamal.model.predictor import Predictor
from streamal.training.config import StoppingConfig

__all__ = ["RULES", "StopSetView", "StoppingMonitor", "kappa", "plateaued", "stable", "sure"]
MIN_COMPARED = 50  # stop-set samples two rounds must share before their agreement counts


def kappa(first: np.ndarray, second: np.ndarray) -> float:
    """Cohen's kappa between two vectors of predicted classes: 1 when they agree everywhere,
    0 when they agree as often as chance (their class shares) would.

    >>> kappa(np.array([0, 1, 2, 1]), np.array([0, 1, 2, 1]))
    1.0
    >>> round(kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])), 3)
    0.0
    >>> kappa(np.array([1, 1, 1]), np.array([1, 1, 1]))  # one class throughout: full agreement
    1.0
    """
    classes = int(max(first.max(), second.max())) + 1
    observed = float(np.mean(first == second))
    chance = float(
        np.bincount(first, minlength=classes) @ np.bincount(second, minlength=classes)
    ) / (len(first) ** 2)
    return 1.0 if chance == 1.0 else (observed - chance) / (1.0 - chance)


def plateaued(accuracies: Sequence[float], rounds: int, min_gain: float) -> bool:
    """Whether the last ``rounds`` accuracies gained less than ``min_gain`` over the best one
    before them.

    >>> plateaued([0.6, 0.8, 0.85, 0.851, 0.849, 0.852], rounds=3, min_gain=0.005)
    True
    >>> plateaued([0.6, 0.8, 0.85, 0.87], rounds=3, min_gain=0.005)
    False
    >>> plateaued([0.9, 0.9], rounds=3, min_gain=0.005)  # too few rounds to tell
    False
    """
    if len(accuracies) <= rounds:
        return False
    return max(accuracies[-rounds:]) - max(accuracies[:-rounds]) < min_gain


def stable(agreements: Sequence[float | None], rounds: int, level: float) -> bool:
    """Whether the mean of the last ``rounds`` agreements (kappa) reached ``level``; a round
    without an agreement (too small a stop set) breaks the run.

    >>> stable([0.9, 0.995, 0.99, 1.0], rounds=3, level=0.99)
    True
    >>> stable([0.995, None, 0.99, 1.0], rounds=4, level=0.99)
    False
    """
    last = list(agreements[-rounds:])
    if len(last) < rounds or any(a is None for a in last):
        return False
    return float(np.mean([a for a in last if a is not None])) >= level


def sure(uncertainties: Sequence[float | None], rounds: int, level: float) -> bool:
    """Whether each of the last ``rounds`` uncertainties was at most ``level``; a round
    without one (no stop set) breaks the run.

    >>> sure([0.3, 0.01, 0.02, 0.01], rounds=3, level=0.02)
    True
    >>> sure([0.01, 0.03, 0.01, 0.01], rounds=3, level=0.02)
    False
    """
    last = list(uncertainties[-rounds:])
    return len(last) == rounds and all(u is not None and u <= level for u in last)


def mean_uncertainty(probabilities: np.ndarray) -> float:
    """The mean least confidence (one minus the top probability) of ``[N, C]`` probabilities.

    >>> mean_uncertainty(np.array([[0.9, 0.1], [0.7, 0.3]]))
    0.2
    """
    return round(float(np.mean(1.0 - probabilities.max(axis=1))), 12)


@dataclass(frozen=True)
class StopSetView:
    """A model's predicted classes and mean least confidence on the stop set."""

    predictions: np.ndarray
    uncertainty: float


def stop_set_view(predictor: Predictor, samples: Sequence[Sample]) -> StopSetView | None:
    """What ``predictor`` predicts for the stop set ``samples`` (those it reads); None when it
    reads none."""
    encoded = predictor.encode(samples)
    if not encoded.kept:
        return None
    probabilities = predictor.probabilities(encoded.inputs).cpu().numpy()
    return StopSetView(probabilities.argmax(axis=1), mean_uncertainty(probabilities))


@dataclass
class StoppingMonitor:
    """The rules over the rounds of one concept (see the module's docstring).

    >>> from streamal.training.config import StoppingConfig
    >>> monitor = StoppingMonitor(StoppingConfig(rounds=2, max_labels=100))
    >>> same = StopSetView(np.arange(60) % 3, 0.01)
    >>> [monitor.observe(0, labels, 0.9, same) for labels in (40, 80, 120)]
    [[], ['low_uncertainty'], ['accuracy_plateau', 'stable_predictions', 'budget_spent']]
    >>> monitor.observe(1, 130, 0.5, same)  # a new concept: the rules start afresh
    []
    """

    config: StoppingConfig
    concept: int = 0
    accuracies: list[float] = field(default_factory=list)
    agreements: list[float | None] = field(default_factory=list)
    uncertainties: list[float | None] = field(default_factory=list)
    holds: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(RULES, False))
    agreement: float | None = None
    uncertainty: float | None = None
    previous: np.ndarray | None = field(default=None, repr=False)  # the last predictions

    def observe(
        self, concept: int, labels: int, accuracy: float | None, view: StopSetView | None
    ) -> list[str]:
        """A round of concept ``concept`` (its start point): the labels so far (all concepts),
        the held-out accuracy of the model it leaves, and that model's view of the stop set;
        the rules that hold from this round on (they did not before)."""
        if concept != self.concept:  # a new concept: more labels pay again
            self.concept, self.previous = concept, None
            self.accuracies, self.agreements, self.uncertainties = [], [], []
            self.holds = dict.fromkeys(RULES, False) | {"budget_spent": self.holds["budget_spent"]}
        if accuracy is not None:
            self.accuracies.append(accuracy)
        self.agreement = self.uncertainty = None
        if view is not None:
            self.uncertainty = view.uncertainty
            previous, self.previous = self.previous, view.predictions
            shared = 0 if previous is None else min(len(previous), len(view.predictions))
            if previous is not None and shared >= MIN_COMPARED:
                self.agreement = kappa(previous[:shared], view.predictions[:shared])
        self.agreements.append(self.agreement)
        self.uncertainties.append(self.uncertainty)
        config = self.config
        now = {
            "accuracy_plateau": plateaued(self.accuracies, config.rounds, config.min_gain),
            "stable_predictions": stable(self.agreements, config.rounds, config.agreement),
            "low_uncertainty": sure(self.uncertainties, config.rounds, config.uncertainty),
            "budget_spent": config.max_labels is not None and labels >= config.max_labels,
        }
        started = [rule for rule in RULES if now[rule] and not self.holds[rule]]
        self.holds = now
        return started

    def summary(self) -> str:
        """One line: the rules that hold, with what they measured, or that none does."""
        held = [rule for rule in RULES if self.holds[rule]]
        if held:
            reasons = "; ".join(f"{rule} ({self.describe(rule)})" for rule in held)
            return f"more labels no longer pay: {reasons}"
        accuracy = f"{self.accuracies[-1]:.3f}" if self.accuracies else "-"
        return (
            f"more labels still pay: no stopping rule holds (held-out accuracy {accuracy} over "
            f"{len(self.accuracies)} rounds, kappa {_shown(self.agreement)}, mean least "
            f"confidence {_shown(self.uncertainty)} on the stop set)"
        )

    def describe(self, rule: str) -> str:
        """What ``rule`` measured in the last round, for a log line."""
        config = self.config
        details = {
            "accuracy_plateau": f"held-out accuracy {self.accuracies[-1]:.3f}, less than "
            f"{config.min_gain:g} gained in {config.rounds} rounds"
            if self.accuracies
            else "no held-out accuracy",
            "stable_predictions": f"kappa {_shown(self.agreement)} between rounds on the stop "
            f"set, mean of {config.rounds} >= {config.agreement:g}",
            "low_uncertainty": f"mean least confidence {_shown(self.uncertainty)} on the stop "
            f"set, <= {config.uncertainty:g} in each of {config.rounds} rounds",
            "budget_spent": f"labels reached train.stopping.max_labels ({config.max_labels})",
        }
        return details[rule]


def _shown(value: float | None) -> str:
    """A measured value for a log line (``-``: none measured).

    >>> _shown(0.98765), _shown(None)
    ('0.988', '-')
    """
    return "-" if value is None else f"{value:.3f}"

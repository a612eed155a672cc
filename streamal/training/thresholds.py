"""The thresholds published with a model version, computed for that model.

- ``budget``: the starting threshold of the budget gate, the ``1 - b`` quantile of the new
  model's utilities on recent requests asked at random (reason ``explore``: an unbiased sample
  of the stream, unlike the uncertain ones), so a new model neither floods nor starves the
  oracle. Without enough of them no budget threshold is published and the gate goes on
  adapting from where it is.
- ``auto_label``: the lowest confidence at which the lower confidence bound of the precision
  on audited samples, as they were served, reaches the target; absent (auto-labeling off) while
  the evidence is too thin or no threshold qualifies. The audits before a split after which
  they are right significantly more often (those of the first, weaker models) are left out
  (`current_evidence`). As served, not scored again by the new
  model: it learned most of them, and a model is more confident and more often right on what
  it learned than on the samples it will auto-label. With it, ``auto_label_bound``: the bound
  there. Without one, ``auto_label_out_of_reach`` (1) where even the most confident audits
  are right too seldom for the target (`auto_label_out_of_reach`): serve audits fewer.
- ``explore``: the share of the budget asked at random, from how much the latest answers of
  each kind surprised the model that served them (`explore_share`): random requests find
  what the model is sure of and wrong about, which uncertain ones never reach.
"""

from __future__ import annotations

import numpy as np
import torch

from streamal.config import Settings
from streamal.gates import (
    current_evidence,
    out_of_reach,
    precision_lower_bound,
    select_threshold,
)
from streamal.messages import Sample
from streamal.model import Predictor
from streamal.model.scoring import probabilities_and_utilities
from streamal.strategies import build_score

MIN_UTILITY_THRESHOLD = 1e-6  # the variable-uncertainty gates need a threshold > 0


MIN_RANDOM_REQUESTS = 100
MIN_ANSWERS_EACH = 30  # answers of each kind explore_share needs


def budget_threshold(
    settings: Settings, predictor: Predictor, recent: list[Sample]
) -> float | None:
    """The ``1 - budget`` quantile of the utilities of ``recent`` randomly asked samples
    (None with fewer than `MIN_RANDOM_REQUESTS` the model reads)."""
    encoded = predictor.encode(recent)
    if len(encoded.kept) < MIN_RANDOM_REQUESTS:
        return None
    strategy = settings.strategy
    score = build_score(strategy.score, seed=strategy.seed)
    _, utilities = probabilities_and_utilities(predictor, score, encoded.inputs, strategy.mc_passes)
    values = np.asarray(torch.as_tensor(utilities).double().cpu())
    return max(float(np.quantile(values, 1 - strategy.budget)), MIN_UTILITY_THRESHOLD)


def auto_label_threshold(
    settings: Settings, confidences: np.ndarray, correct: np.ndarray
) -> tuple[float, float] | None:
    """The auto-label threshold for the precision target on audits (in the order asked), each
    with the confidence it was served with and whether its label agreed, with the precision's
    lower bound there; None while the current ones are fewer than ``min_audits`` or no
    threshold qualifies."""
    auto = settings.strategy.auto_label
    confidences, correct = _current(settings, confidences, correct)
    if len(confidences) < auto.min_audits:
        return None
    method, level, noise = auto.bound, auto.confidence_level, auto.label_noise
    threshold = select_threshold(
        confidences, correct, target=auto.target_precision, method=method, level=level,
        noise=noise,
    )  # fmt: skip
    if threshold is None:
        return None
    above = correct[confidences >= threshold]
    return threshold, float(
        precision_lower_bound(above.sum(), len(above), method=method, level=level, noise=noise)
    )


def auto_label_out_of_reach(
    settings: Settings, confidences: np.ndarray, correct: np.ndarray
) -> bool:
    """Whether the current audits (as in `auto_label_threshold`) put every threshold out of
    reach of the precision target (`out_of_reach`): serve then audits a quarter as many."""
    auto = settings.strategy.auto_label
    confidences, correct = _current(settings, confidences, correct)
    return len(confidences) >= auto.min_audits and out_of_reach(
        confidences, correct, target=auto.target_precision, method=auto.bound,
        level=auto.confidence_level, noise=auto.label_noise,
    )  # fmt: skip


def _current(
    settings: Settings, confidences: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The audits that speak of the model now (`current_evidence`)."""
    start = current_evidence(correct, fewest=settings.strategy.auto_label.min_audits)
    return confidences[start:], correct[start:]


def surprise(confidences: np.ndarray, correct: np.ndarray, classes: int) -> np.ndarray:
    """Each answer's surprise to the model that served it, in nats: ``-log p`` of the label,
    ``p`` the served confidence when the prediction was right, and the rest of the
    probability spread over the other classes when it was wrong (served confidences are kept
    within ``[1 / classes, 0.99]``).

    >>> surprise(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]), 2).round(2).tolist()
    [0.11, 2.3, 0.69]
    """
    p = np.clip(confidences, 1 / classes, 0.99)
    return -np.log(np.where(correct, p, (1 - p) / (classes - 1)))


def explore_share(
    explored: tuple[np.ndarray, np.ndarray],
    uncertain: tuple[np.ndarray, np.ndarray],
    classes: int,
    floor: float,
) -> float | None:
    """The share of the budget to ask at random: the random answers' mean `surprise` over both
    kinds' (a label is worth what it teaches), at least ``floor``; None while either kind has
    fewer than `MIN_ANSWERS_EACH` answers.

    Where the model is as sure as it should be, uncertain samples surprise it more (it is
    unsure of them) and the share stays low; where it is sure and wrong (a concept that moved
    far from its boundary, classes it never saw), random samples surprise it most, and the
    budget moves to them.

    >>> sure_and_right = (np.full(50, 0.95), np.ones(50, dtype=bool))
    >>> unsure = (np.full(50, 0.55), np.arange(50) % 2 == 0)
    >>> explore_share(sure_and_right, unsure, 2, floor=0.2)
    0.2
    >>> sure_and_wrong = (np.full(50, 0.95), np.arange(50) % 2 == 0)
    >>> round(explore_share(sure_and_wrong, unsure, 2, floor=0.2), 2)
    0.69
    """
    if min(len(explored[0]), len(uncertain[0])) < MIN_ANSWERS_EACH:
        return None
    random_value = float(surprise(*explored, classes).mean())
    uncertain_value = float(surprise(*uncertain, classes).mean())
    total = random_value + uncertain_value
    share = random_value / total if total > 0 else floor
    return round(max(floor, share), 4)

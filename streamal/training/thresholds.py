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
  it learned than on the samples it will auto-label.
"""

from __future__ import annotations

import numpy as np
import torch

from streamal.config import Settings
from streamal.gates import current_evidence, precision_lower_bound, select_threshold
from streamal.messages import Sample
from streamal.model import Predictor
from streamal.model.scoring import probabilities_and_utilities
from streamal.strategies import build_score

MIN_UTILITY_THRESHOLD = 1e-6  # the variable-uncertainty gates need a threshold > 0


MIN_RANDOM_REQUESTS = 100


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
    start = current_evidence(correct, fewest=auto.min_audits)
    confidences, correct = confidences[start:], correct[start:]
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

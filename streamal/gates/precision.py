"""Lower confidence bounds on precision, and the auto-label threshold they allow."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaincinv, gammaln, ndtri

__all__ = [
    "BoundMethod", "current_evidence", "precision_lower_bound", "select_threshold", "through_noise",
]  # fmt: skip

BoundMethod = Literal["wilson", "clopper_pearson"]


def precision_lower_bound(
    correct: ArrayLike,
    total: ArrayLike,
    *,
    method: BoundMethod = "wilson",
    level: float = 0.95,
    noise: float = 0.0,
) -> np.ndarray:
    """One-sided lower confidence bounds on a proportion, ``correct`` successes in ``total``.

    Parameters
    ----------
    method
        ``"wilson"`` (score interval) or ``"clopper_pearson"`` (exact, more conservative).
    level
        The confidence level: the true proportion is at or above the bound with this
        probability.
    noise
        The share of wrong answers among the labels that judged the successes: the bound is
        then on the model's precision against the truth (`through_noise`), not on its
        agreement with the answers.

    Examples
    --------
    >>> precision_lower_bound([50, 200], [50, 200]).round(4)
    array([0.9487, 0.9867])
    >>> precision_lower_bound([50, 0], [50, 10], method="clopper_pearson").round(4)
    array([0.9418, 0.    ])
    >>> float(precision_lower_bound(970, 1000).round(4))  # 97% agreement
    0.9598
    >>> float(precision_lower_bound(970, 1000, noise=0.02).round(4))  # from 2% wrong answers
    0.9789
    """
    if method not in get_args(BoundMethod):
        raise ValueError(f"unknown bound method {method!r}; allowed: wilson, clopper_pearson")
    if not 0 < level < 1:
        raise ValueError(f"level must be > 0 and < 1, got {level}")
    k = np.asarray(correct, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    if method == "clopper_pearson":
        agreement = np.where(k > 0, betaincinv(np.maximum(k, 1), n - k + 1, 1 - level), 0.0)
    else:
        z2 = ndtri(level) ** 2
        share = k / n
        spread = np.sqrt(z2 * share * (1 - share) / n + z2**2 / (4 * n**2))
        agreement = (share + z2 / (2 * n) - spread) / (1 + z2 / n)
    return through_noise(agreement, noise) if noise else agreement


def through_noise(agreement: ArrayLike, noise: float) -> np.ndarray:
    """The least precision a model can have whose predictions agree with answers, wrong a
    share ``noise`` of the time, a share ``agreement`` of the time.

    With precision ``p``, ``agreement = p (1 - noise) + (1 - p) e``, where ``e`` (between 0
    and ``noise``) is how often a wrong answer happens to name the model's wrong class; the
    least ``p`` over ``e``.

    >>> through_noise([0.98, 0.95, 0.5], 0.02).round(4)
    array([1.    , 0.9688, 0.5   ])
    >>> float(through_noise(0.98, 0.0))
    0.98
    """
    if not 0 <= noise < 0.5:
        raise ValueError(f"noise must be >= 0 and < 0.5, got {noise}")
    a = np.asarray(agreement, dtype=np.float64)
    unlucky = a / (1 - noise)  # a wrong answer never names the model's wrong class
    lucky = (a - noise) / (1 - 2 * noise)  # it always does
    return np.clip(np.minimum(unlucky, lucky), 0.0, 1.0)


def current_evidence(correct: ArrayLike, *, fewest: int, level: float = 0.99) -> int:
    """Where the evidence about today's model starts in audit outcomes (oldest first): after
    the split whose later outcomes are right significantly more often than the earlier ones
    (one-sided exact test of the errors' split, at ``level`` over every split tried, every
    ``fewest // 4`` outcomes leaving at least ``fewest``), the most significant one; else 0.

    The first models of a stream are wrong more often than the ones that follow them: their
    audits would hold the precision's lower bound under the target long after the served
    model meets it. Only better outcomes since a split forget the earlier ones, so a drop in
    precision (a drift) stays in view.

    >>> current_evidence([False] * 10 + [True] * 290, fewest=100)
    25
    >>> current_evidence(([False] + [True] * 29) * 10, fewest=100)  # errors all along
    0
    >>> current_evidence([True] * 200 + [False] * 10 + [True] * 90, fewest=100)  # worse since
    0
    """
    wrong = ~np.asarray(correct, dtype=bool)
    n, step = len(wrong), max(1, fewest // 4)
    splits = np.arange(step, n - fewest + 1, step)
    errors = int(wrong.sum())
    if not len(splits) or errors == 0:
        return 0
    later = errors - np.cumsum(wrong)[splits - 1]  # errors after each split
    size = n - splits
    # P(at most `later` of the errors fall after the split | they fall anywhere alike)
    k = np.arange(errors + 1)[None, :]
    log_pmf = (
        _log_choose(errors, k)
        + _log_choose(n - errors, size[:, None] - k)
        - _log_choose(n, size)[:, None]
    )
    log_pmf = np.where((k <= later[:, None]) & (k <= size[:, None]), log_pmf, -np.inf)
    p_values = np.exp(np.logaddexp.reduce(log_pmf, axis=1))
    best = int(np.argmin(p_values))
    return int(splits[best]) if p_values[best] * len(splits) < 1 - level else 0


def _audits(confidences: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Audits as arrays: each one's served confidence, and whether it was right."""
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.shape != right.shape or conf.ndim != 1:
        raise ValueError(f"confidences {conf.shape} and correct {right.shape} must be 1-D alike")
    return conf, right


def _log_choose(n: ArrayLike, k: ArrayLike) -> np.ndarray:
    """log(n choose k), -inf where k is out of 0..n."""
    n, k = np.asarray(n, dtype=np.float64), np.asarray(k, dtype=np.float64)
    valid = (k >= 0) & (k <= n)
    safe_k = np.where(valid, k, 0.0)
    value = gammaln(n + 1) - gammaln(safe_k + 1) - gammaln(n - safe_k + 1)
    return np.where(valid, value, -np.inf)


def select_threshold(
    confidences: ArrayLike,
    correct: ArrayLike,
    *,
    target: float = 0.98,
    method: BoundMethod = "wilson",
    level: float = 0.95,
    noise: float = 0.0,
) -> float | None:
    """The lowest confidence threshold whose auto-labels have a precision bound >= ``target``.

    The precision at threshold ``t`` is estimated from the audited samples with confidence
    ``>= t``; only confidences seen among them are candidate thresholds.

    Parameters
    ----------
    confidences
        The model's top probability for each audited sample.
    correct
        Whether the human label agreed with the prediction, per audited sample.
    noise
        The share of wrong answers among those labels (see `precision_lower_bound`).

    Returns
    -------
    float or None
        The threshold, or None when no threshold meets the target.

    Examples
    --------
    >>> conf = [0.99] * 300 + [0.8] * 100
    >>> ok = [True] * 300 + [True, False] * 50
    >>> select_threshold(conf, ok)
    0.99
    >>> select_threshold(conf[:20], ok[:20]) is None
    True
    """
    conf, right = _audits(confidences, correct)
    order = np.argsort(-conf, kind="stable")
    conf = conf[order]
    bounds = precision_lower_bound(
        np.cumsum(right[order]),
        np.arange(1, len(conf) + 1),
        method=method,
        level=level,
        noise=noise,
    )
    distinct = np.append(conf[1:] != conf[:-1], True)  # the last sample at each confidence
    meets = distinct & (bounds >= target)
    return float(conf[meets][-1]) if meets.any() else None


def out_of_reach(
    confidences: ArrayLike,
    correct: ArrayLike,
    *,
    target: float = 0.98,
    method: BoundMethod = "wilson",
    level: float = 0.95,
    noise: float = 0.0,
) -> bool:
    """Whether no threshold can reach ``target`` on audits like these: the fewest audits that
    could vouch for it had they all been right, taken from the most confident, are right less
    often than the target even by their precision's upper confidence bound (False while there
    are fewer). Annotators who disagree with a good model 5% of the time, or a concept it cannot
    learn that well, put every threshold out of reach; a calibrated model does not.

    >>> rng = np.random.default_rng(0)
    >>> sure = 0.9 + 0.1 * rng.random(1000)
    >>> out_of_reach(sure, rng.random(1000) > 0.05)  # right 95% of the time, however sure
    True
    >>> out_of_reach(sure, rng.random(1000) < sure)  # right as often as it is sure
    False
    >>> out_of_reach(sure[:100], np.zeros(100, dtype=bool))  # too few to vouch for the target
    False
    """
    conf, right = _audits(confidences, correct)
    counts = np.arange(1, len(right) + 1)
    vouching = precision_lower_bound(counts, counts, method=method, level=level, noise=noise)
    if not len(right) or vouching[-1] < target:
        return False
    fewest = int(counts[np.argmax(vouching >= target)])
    top = right[np.argsort(conf, kind="stable")[-fewest:]]
    upper = 1 - precision_lower_bound(fewest - top.sum(), fewest, method=method, level=level)
    return bool(min(1.0, float(upper) / (1 - noise)) < target)

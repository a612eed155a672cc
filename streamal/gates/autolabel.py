"""Auto-labeling confident samples, with audits that keep the precision above a target."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from streamal.gates.base import Decision, Gate, Reason, Route, State, as_scores, new_rng_state
from streamal.gates.precision import BoundMethod, precision_lower_bound, select_threshold

__all__ = ["AutoLabelGate", "AutoLabelState"]


@dataclass
class AutoLabelState(State):
    """The candidate threshold, whether auto-labeling is on, and the generator."""

    active: bool


class AutoLabelGate(Gate[AutoLabelState]):
    """Turn skipped samples whose confidence reaches the threshold into auto-labels or audits.

    Of these candidates a share ``audit_share``, drawn at random, goes to the oracle instead
    (reason ``AUDIT``). When their human labels arrive, `observe` records whether the model
    was right and, once ``min_audits`` outcomes are kept, the threshold becomes the lowest one
    at which the lower confidence bound of the audited precision meets ``target``
    (`select_threshold`). Until then, or while no threshold meets the target, nothing is
    auto-labeled (candidates are only audited), unless `set_active` adopted a threshold the
    trainer chose for the current model.

    Parameters
    ----------
    target
        The precision the auto-labels must keep, as a lower confidence bound.
    audit_share
        The share of candidates sent to the oracle for audit.
    min_audits
        How many audited outcomes are needed before anything is auto-labeled.
    method, level
        The lower bound: ``"wilson"`` or ``"clopper_pearson"``, at confidence ``level``.
    threshold
        The starting candidate threshold on the confidence.
    window
        How many recent audited outcomes are kept.
    seed
        Seeds the draws that pick the audits.

    Examples
    --------
    >>> from streamal.gates import FixedThreshold
    >>> budget_gate = FixedThreshold(0.5, budget=1.0)
    >>> gate = AutoLabelGate(min_audits=10, audit_share=0.5, seed=1)
    >>> gate.observe([0.99] * 300, [True] * 300)
    >>> gate.active, gate.threshold
    (True, 0.99)
    >>> upstream = budget_gate.decide([0.9, 0.0, 0.0, 0.0])
    >>> decision = gate.decide([0.3, 0.999, 0.995, 0.5], upstream)
    >>> [Route(r).name for r in decision.routes], [Reason(r).label for r in decision.reasons]
    (['ORACLE', 'AUTO_LABEL', 'ORACLE', 'SKIP'], ['uncertain', 'none', 'audit', 'none'])
    >>> gate.update(decision)
    """

    def __init__(
        self,
        *,
        target: float = 0.98,
        audit_share: float = 0.05,
        min_audits: int = 200,
        method: BoundMethod = "wilson",
        level: float = 0.95,
        threshold: float = 0.9,
        window: int = 5000,
        seed: int = 0,
    ) -> None:
        if not 0 < target < 1:
            raise ValueError(f"target must be > 0 and < 1, got {target}")
        if not 0 < audit_share <= 1:
            raise ValueError(f"audit_share must be > 0 and <= 1, got {audit_share}")
        if not 1 <= min_audits <= window:
            raise ValueError(f"min_audits must be >= 1 and <= window ({window}), got {min_audits}")
        precision_lower_bound(1, 1, method=method, level=level)  # validates method and level
        self.target = target
        self.audit_share = audit_share
        self.min_audits = min_audits
        self.method: BoundMethod = method
        self.level = level
        self._confidences: deque[float] = deque(maxlen=window)
        self._correct: deque[bool] = deque(maxlen=window)
        state = AutoLabelState(self._checked_threshold(threshold), new_rng_state(seed), False)
        super().__init__(state)

    @property
    def active(self) -> bool:
        """Whether candidates that are not audited get auto-labeled."""
        return self._state.active

    @property
    def audits(self) -> int:
        """How many audited outcomes are kept."""
        return len(self._correct)

    @property
    def precision_lower_bound(self) -> float:
        """The lower bound on the audited precision at the current threshold (nan if none)."""
        conf = np.fromiter(self._confidences, dtype=np.float64, count=self.audits)
        above = conf >= self.threshold
        if not above.any():
            return float("nan")
        right = np.fromiter(self._correct, dtype=bool, count=self.audits)[above]
        bound = precision_lower_bound(right.sum(), len(right), method=self.method, level=self.level)
        return float(bound)

    def _checked_threshold(self, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"threshold must be >= 0 and <= 1, got {value}")
        return float(value)

    def decide(
        self, confidences: ArrayLike, upstream: Decision[Any] | None = None
    ) -> Decision[AutoLabelState]:
        """Refine ``upstream`` (another gate's decision for the same batch; none: every sample
        skipped so far).

        Parameters
        ----------
        confidences
            The model's top probability per sample.

        Returns
        -------
        Decision
            ``upstream``'s routes and reasons, with candidates among its ``SKIP`` samples
            turned into ``AUTO_LABEL`` or ``ORACLE`` (reason ``AUDIT``).
        """
        conf = as_scores(confidences, "confidences")
        skipped = np.zeros(len(conf), dtype=np.int8)
        routes = skipped.copy() if upstream is None else upstream.routes.copy()
        reasons = skipped.copy() if upstream is None else upstream.reasons.copy()
        if conf.shape != routes.shape:
            raise ValueError(f"{len(conf)} confidences for {len(routes)} routes")
        state = self._state.copy()
        draws = self._draw(state, lambda rng: rng.random(len(conf)))
        candidate = (routes == Route.SKIP) & (conf >= state.threshold)
        audit = candidate & (draws < self.audit_share)
        routes[audit] = Route.ORACLE
        reasons[audit] = Reason.AUDIT
        if state.active:
            routes[candidate & ~audit] = Route.AUTO_LABEL
        return self._decision(routes, reasons, state)

    def observe(self, confidences: ArrayLike, correct: ArrayLike) -> None:
        """Record audited outcomes and choose the threshold again.

        Parameters
        ----------
        confidences
            The confidence each audited sample had when it was routed.
        correct
            Whether the human label agreed with the prediction.
        """
        conf = as_scores(confidences, "confidences")
        right = np.asarray(correct, dtype=bool)
        if right.shape != conf.shape:
            raise ValueError(f"{len(conf)} confidences for {right.size} outcomes")
        self._confidences.extend(conf.tolist())
        self._correct.extend(right.tolist())
        state = self._state.copy()
        if self.audits >= self.min_audits:
            threshold = select_threshold(
                self._confidences,
                self._correct,
                target=self.target,
                method=self.method,
                level=self.level,
            )
            state.active = threshold is not None
            state.threshold = state.threshold if threshold is None else threshold
        self._commit(state)

    def set_active(self, threshold: float | None) -> None:
        """Adopt the auto-label threshold chosen for a new model, or turn auto-labeling off.

        The trainer chooses it with `select_threshold` on audits scored by the new model, so the
        audits kept here, scored by the previous one, are forgotten; ``None`` stops
        auto-labeling until ``min_audits`` new audits select a threshold.
        """
        self._confidences.clear()
        self._correct.clear()
        state = self._state.copy()
        state.active = threshold is not None
        if threshold is not None:
            state.threshold = self._checked_threshold(threshold)
        self._commit(state)

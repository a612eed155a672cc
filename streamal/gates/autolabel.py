"""Auto-labeling confident samples, with audits that keep the precision above a target."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from streamal.gates.base import Decision, Gate, Reason, Route, State, as_scores, new_rng_state
from streamal.gates.precision import (
    BoundMethod,
    current_evidence,
    out_of_reach,
    precision_lower_bound,
    select_threshold,
)

__all__ = ["AutoLabelGate", "AutoLabelState"]

RATE_WINDOW = 1000  # samples the candidate rate is averaged over
ALARM = math.log(1000)  # the CUSUM of audit errors that pauses auto-labeling
FEWEST_AUDITS = 0.25  # of audit_share, while the audits' bound is far above the target, or
# every threshold is out of reach of it


@dataclass
class AutoLabelState(State):
    """The candidate threshold, whether a threshold is adopted, the generator, and what holds
    auto-labeling back: a pause (its reason, and how many pauses began) or late audits."""

    active: bool
    paused: str | None = None
    pauses: int = 0
    alarm: float = 0.0
    calm_at: float | None = None  # the last audit before the current run of errors was asked
    run_from: float = 0.0  # the current run's first audit was asked
    last_at: float | None = None
    stale: bool = False
    candidate_rate: float = 0.0
    bound: float = 0.0  # the audited precision's lower bound at the threshold
    out_of_reach: bool = False  # the most confident audits are right too seldom for the target


class AutoLabelGate(Gate[AutoLabelState]):
    """Turn skipped samples whose confidence reaches the threshold into auto-labels or audits.

    Of these candidates a share ``audit_share``, drawn at random, goes to the oracle instead
    (reason ``AUDIT``). When their human labels arrive, `observe` records whether the model
    was right and, once ``min_audits`` outcomes of the model now are kept (those of weaker
    models before it left out: `current_evidence`), the threshold becomes the lowest one
    at which the lower confidence bound of the audited precision meets ``target``
    (`select_threshold`). Until then, or while no threshold meets the target, nothing is
    auto-labeled (candidates are only audited), unless `set_active` adopted a threshold the
    trainer chose for the current model.

    Two things hold auto-labeling back whatever the threshold, and raise the audits meanwhile.
    A pause lasts until the audits requested since it began support the target at the
    threshold: the lower bound of their precision reaches it (`observe` with their ``epochs``).
    It begins when serve sees its inputs shift (`pause`), or when audit outcomes turn wrong
    beyond what the target allows: Page's CUSUM of their log-likelihood ratio, an error rate of
    ``5 (1 - target)`` (at most halfway to 1) against ``1 - target``, passes ``log(1000)`` (five
    wrong in a row at the default target; rarely ever while the target holds), counting the
    audits asked while auto-labeling was on. Late audits
    (`set_stale`: answers overdue, so the evidence is no longer current) hold it back until they
    came. While held back, audits take a share ``paused_audits`` of the ``budget``. While the
    audits' lower bound at the threshold is far above the target (the trainer's, announced
    with its threshold, until this gate kept ``min_audits`` of its own), fewer are asked: the
    share shrinks with the room left, ``(1 - bound) / (1 - target)``, down to a quarter. While
    no threshold is adopted and even the most confident audits are right too seldom (the
    fewest that could vouch for the target, all right, taken from the top: their precision's
    upper confidence bound under the target; annotators who err, or a concept the model cannot
    learn that well), a quarter too: audits then vouch for nothing and only keep watch, until
    they come right.

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
    budget, paused_audits
        The share of samples that may be asked, and the share of it audits take while
        auto-labeling is held back.
    noise
        The share of wrong answers annotators give: the bounds are then on the precision
        against the truth (`precision_lower_bound`), and the CUSUM expects these errors too.
        0 trusts every answer.
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
        budget: float = 0.1,
        paused_audits: float = 0.5,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0 < target < 1:
            raise ValueError(f"target must be > 0 and < 1, got {target}")
        if not 0 < audit_share <= 1:
            raise ValueError(f"audit_share must be > 0 and <= 1, got {audit_share}")
        if not 1 <= min_audits <= window:
            raise ValueError(f"min_audits must be >= 1 and <= window ({window}), got {min_audits}")
        if not 0 < budget <= 1 or not 0 <= paused_audits <= 1:
            raise ValueError(f"budget ({budget}) and paused_audits ({paused_audits}) must be <= 1")
        # validates method, level and noise
        precision_lower_bound(1, 1, method=method, level=level, noise=noise)
        self.budget = budget
        self.paused_audits = paused_audits
        self.noise = noise
        # audit errors at the target's precision, and at five times its error rate
        wrong = 1 - target * (1 - noise)
        alarming = min(1 - (1 - 5 * (1 - target)) * (1 - noise), (1 + wrong) / 2)
        self._llr_right = math.log((1 - alarming) / (1 - wrong))
        self._llr_wrong = math.log(alarming / wrong)
        self._fresh: list[tuple[float, bool]] = []  # audits requested since the pause began
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
        """Whether a threshold is adopted (`auto_labeling` says whether it is used now)."""
        return self._state.active

    @property
    def auto_labeling(self) -> bool:
        """Whether candidates that are not audited get auto-labeled now: a threshold is
        adopted, and neither a pause nor late audits hold it back."""
        state = self._state
        return state.active and state.paused is None and not state.stale

    @property
    def held_back(self) -> str | None:
        """Why auto-labeling is held back: the pause's reason, ``"stale"``, or None."""
        return self._state.paused or ("stale" if self._state.stale else None)

    @property
    def epoch(self) -> int:
        """How many pauses began: an audit requested now belongs to this one (`observe`)."""
        return self._state.pauses

    @property
    def audits(self) -> int:
        """How many audited outcomes are kept."""
        return len(self._correct)

    @property
    def precision_lower_bound(self) -> float:
        """The lower bound on the audited precision at the current threshold (nan if none)."""
        return self._bound_at(self.threshold, *self._evidence())

    def _evidence(self) -> tuple[np.ndarray, np.ndarray]:
        """The audits kept that speak of the model now (`current_evidence`): confidences and
        outcomes, oldest first."""
        conf = np.fromiter(self._confidences, dtype=np.float64, count=self.audits)
        right = np.fromiter(self._correct, dtype=bool, count=self.audits)
        start = current_evidence(right, fewest=self.min_audits)
        return conf[start:], right[start:]

    def _bound_at(self, threshold: float, conf: np.ndarray, right: np.ndarray) -> float:
        """The bound on the audits ``conf``, ``right`` (see `_evidence`) at ``threshold``."""
        above = conf >= threshold
        if not above.any():
            return float("nan")
        return float(self._bound(right[above].sum(), above.sum()))

    def _bound(self, right: int, total: int) -> float:
        bound = precision_lower_bound(
            right, total, method=self.method, level=self.level, noise=self.noise
        )
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
        if len(conf):
            weight = min(1.0, len(conf) / RATE_WINDOW)
            state.candidate_rate += weight * (float(candidate.mean()) - state.candidate_rate)
        share = self.audit_share
        if state.paused is not None or state.stale:  # more evidence, from the one budget
            wanted = self.paused_audits * self.budget / max(state.candidate_rate, 1e-9)
            share = max(share, min(1.0, wanted))
        elif state.bound > self.target:  # the evidence to spare: fewer audits
            share *= max(FEWEST_AUDITS, (1 - state.bound) / (1 - self.target))
        elif state.out_of_reach:  # no auto-labels to vouch for: audits only keep watch
            share *= FEWEST_AUDITS
        audit = candidate & (draws < share)
        routes[audit] = Route.ORACLE
        reasons[audit] = Reason.AUDIT
        if state.active and state.paused is None and not state.stale:
            routes[candidate & ~audit] = Route.AUTO_LABEL
        return self._decision(routes, reasons, state)

    def observe(
        self,
        confidences: ArrayLike,
        correct: ArrayLike,
        epochs: ArrayLike | None = None,
        asked_at: ArrayLike | None = None,
        while_auto_labeling: ArrayLike | None = None,
    ) -> float | None:
        """Record audited outcomes, choose the threshold again, end a pause that the audits
        requested since it began now clear, or pause when they turned wrong.

        Parameters
        ----------
        confidences
            The confidence each audited sample had when it was routed.
        correct
            Whether the human label agreed with the prediction.
        epochs
            The `epoch` when each audit was requested (None: before the current pause). Only
            outcomes with epochs are watched for turning wrong: a replica's live audits.
        asked_at
            When each audit was requested (default: in the order given).
        while_auto_labeling
            Whether auto-labeling was on when each audit was requested (default: yes): only
            those audits vouch for auto-labels, and only they are watched.

        Returns
        -------
        float or None
            When the audits that paused auto-labeling now began to go wrong: the request time
            of the last right audit before them (None: no such pause now).
        """
        conf = as_scores(confidences, "confidences")
        right = np.asarray(correct, dtype=bool)
        if right.shape != conf.shape:
            raise ValueError(f"{len(conf)} confidences for {right.size} outcomes")
        self._confidences.extend(conf.tolist())
        self._correct.extend(right.tolist())
        state = self._state.copy()
        if state.paused is not None and epochs is not None:
            fresh = np.asarray(epochs) == state.pauses
            self._fresh += zip(conf[fresh].tolist(), right[fresh].tolist(), strict=True)
            if self._clears(state.threshold):
                state.paused = None
        went_wrong = None
        if epochs is not None:  # a replica's live audits: those asked while it auto-labeled
            times = np.arange(len(right), dtype=float) if asked_at is None else asked_at
            live = np.ones(len(right), dtype=bool)
            if while_auto_labeling is not None:
                live = np.asarray(while_auto_labeling, dtype=bool)
            went_wrong = self._watch(state, right[live], np.asarray(times, dtype=np.float64)[live])
        current = self._evidence()
        if len(current[0]) >= self.min_audits:
            threshold = select_threshold(
                *current,
                target=self.target,
                method=self.method,
                level=self.level,
                noise=self.noise,
            )
            state.active = threshold is not None
            state.threshold = state.threshold if threshold is None else threshold
            bound = self._bound_at(state.threshold, *current)  # its own now
            state.bound = float(np.nan_to_num(bound))
            state.out_of_reach = threshold is None and out_of_reach(
                *current, target=self.target, method=self.method, level=self.level,
                noise=self.noise,
            )  # fmt: skip
        self._commit(state)
        return went_wrong

    def _watch(self, state: AutoLabelState, right: np.ndarray, times: np.ndarray) -> float | None:
        """Page's CUSUM over outcomes in request order; on an alarm, pause (unless paused) and
        return when the run of errors began."""
        order = np.argsort(times, kind="stable")
        went_wrong = None
        for ok, at in zip(right[order].tolist(), times[order].tolist(), strict=True):
            if state.alarm == 0.0:  # a run may start here: the audit before it, and its first
                state.calm_at, state.run_from = state.last_at, at
            state.alarm = max(0.0, state.alarm + (self._llr_right if ok else self._llr_wrong))
            state.last_at = at
            if state.alarm > ALARM:
                state.alarm = 0.0
                began = state.run_from if state.calm_at is None else state.calm_at
                went_wrong = began if went_wrong is None else min(went_wrong, began)
                if state.paused is None:
                    state.paused, state.pauses = "audits", state.pauses + 1
                    self._fresh = []
        return went_wrong

    def _clears(self, threshold: float) -> bool:
        """Whether the audits since the pause support the target at ``threshold``."""
        right = [ok for conf, ok in self._fresh if conf >= threshold]
        if not right:
            return False
        return self._bound(sum(right), len(right)) >= self.target

    def pause(self, reason: str) -> None:
        """Stop auto-labeling until the audits requested from now on support the target
        (a pause in progress starts over: the evidence must come after the newest reason)."""
        state = self._state.copy()
        state.paused, state.pauses = reason, state.pauses + 1
        self._fresh = []
        self._commit(state)

    def set_stale(self, stale: bool) -> None:
        """Hold auto-labeling back while audit answers are overdue (True), or no longer."""
        if stale != self._state.stale:
            state = self._state.copy()
            state.stale = stale
            self._commit(state)

    def set_active(
        self, threshold: float | None, bound: float = 0.0, unreachable: bool = False
    ) -> None:
        """Adopt the auto-label threshold chosen for a new model, or turn auto-labeling off.

        The trainer chooses it with `select_threshold` on the audits as they were served, so
        the audits kept here are forgotten; ``bound`` is the precision's lower bound it found
        there (it sets how many audits are asked until this gate's own audits say); ``None``
        stops auto-labeling until ``min_audits`` new audits select a threshold, with fewer
        audits meanwhile where the trainer found every threshold ``unreachable``
        (`streamal.gates.precision.out_of_reach`).
        """
        self._confidences.clear()
        self._correct.clear()
        state = self._state.copy()
        state.active = threshold is not None
        state.bound = bound if threshold is not None else 0.0
        state.out_of_reach = threshold is None and unreachable
        if threshold is not None:
            state.threshold = self._checked_threshold(threshold)
        self._commit(state)

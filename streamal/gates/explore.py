"""Exploration: a share of the budget asked at random, more for a while after a drift."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from streamal.gates.base import Decision, Gate, Reason, Route, State, new_rng_state

__all__ = ["ExploreGate", "ExploreState"]


@dataclass
class ExploreState(State):
    """The base share (``threshold``), the generator, a drift's boost and the audit rate."""

    boost_share: float = 0.0
    boost_left: int = 0
    boost_id: str | None = None  # the last boost started: each one starts once
    audit_rate: float = 0.0
    audit_samples: int = 0


class ExploreGate(Gate[ExploreState]):
    """Ask a share ``share`` of the budget at random (reason ``EXPLORE``).

    Random requests give unbiased labels where the model is confidently wrong, which the drift
    detector needs. For the samples a boost (`start_boost`) has left the share is the boost's,
    if larger. Audits come first: exploration asks at most what the recent audit rate (a mean
    over the last ``audit_window`` samples) leaves of the budget, and never an audited sample.

    Parameters
    ----------
    share
        The share of the budget asked at random, in ``[0, 1]``.
    budget
        The share of samples that may be asked in all.
    audit_window
        How many recent samples the audit rate is averaged over.
    seed
        Seeds the draws.

    Examples
    --------
    >>> gate = ExploreGate(share=1.0, budget=0.5, seed=1)
    >>> decision = gate.decide([False] * 1000)
    >>> round(float(decision.routes.mean()), 1), Reason(decision.reasons.max()).label
    (0.5, 'explore')
    >>> bool((gate.decide([False] * 1000).routes == decision.routes).all())
    True
    """

    def __init__(
        self, *, share: float = 0.2, budget: float = 0.1, audit_window: int = 1000, seed: int = 0
    ) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"share must be >= 0 and <= 1, got {share}")
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be > 0 and <= 1, got {budget}")
        if audit_window < 1:
            raise ValueError(f"audit_window must be >= 1, got {audit_window}")
        self.budget = budget
        self.audit_window = audit_window
        super().__init__(ExploreState(share, new_rng_state(seed)))

    @property
    def boost_left(self) -> int:
        """How many more samples the current boost covers."""
        return self._state.boost_left

    @property
    def audit_rate(self) -> float:
        """The share of recent samples audited."""
        return self._state.audit_rate

    def start_boost(self, share: float, samples: int, boost_id: str) -> None:
        """Explore a share ``share`` of the budget for the next ``samples`` samples, unless the
        boost ``boost_id`` was the last one started (an announcement read again)."""
        if boost_id == self._state.boost_id:
            return
        state = self._state.copy()
        state.boost_share, state.boost_left, state.boost_id = share, max(0, samples), boost_id
        self._commit(state)

    def decide(self, audited: ArrayLike) -> Decision[ExploreState]:
        """Route a batch whose samples flagged in ``audited`` are already audits.

        Returns
        -------
        Decision
            ``ORACLE`` (reason ``EXPLORE``) or ``SKIP`` per sample.
        """
        audits = np.asarray(audited, dtype=bool)
        if audits.ndim != 1:
            raise ValueError(f"audited must be 1-D, got shape {audits.shape}")
        state = self._state.copy()
        draws = self._draw(state, lambda rng: rng.random(len(audits)))
        picked = np.zeros(len(audits), dtype=bool)
        for i, (audit, draw) in enumerate(zip(audits.tolist(), draws.tolist(), strict=True)):
            share = state.threshold
            if state.boost_left > 0:
                share = max(share, state.boost_share)
                state.boost_left -= 1
            rate = min(share * self.budget, self.budget - state.audit_rate)
            picked[i] = not audit and draw < rate
            state.audit_samples += 1
            weight = 1 / min(state.audit_samples, self.audit_window)
            state.audit_rate += weight * (audit - state.audit_rate)
        routes = np.where(picked, Route.ORACLE, Route.SKIP).astype(np.int8)
        reasons = np.where(picked, Reason.EXPLORE, Reason.NONE).astype(np.int8)
        return self._decision(routes, reasons, state)

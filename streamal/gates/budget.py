"""Label spend: over a sliding window (what the budget gates aim at) and as one account
(`LabelAllowance`, what every request is paid from)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["LabelAllowance", "SlidingWindowBudget"]


class SlidingWindowBudget:
    """The share of the last ``window`` samples sent to the oracle, against a budget ``b``.

    Before ``window`` samples have been seen the missing ones count as not asked, so a fresh
    budget can be spent at once.

    Parameters
    ----------
    budget
        The share of samples that may be asked, in ``(0, 1]``.
    window
        How many recent samples the spend is measured over.

    Examples
    --------
    >>> spend = SlidingWindowBudget(0.5, window=4)
    >>> for asked in (True, True, False):
    ...     spend.record(asked)
    >>> spend.rate, spend.available
    (0.5, False)
    >>> for asked in (False, False):
    ...     spend.record(asked)
    >>> spend.rate, spend.available
    (0.25, True)
    """

    __slots__ = ("_asked", "_flags", "_position", "budget", "window")

    def __init__(self, budget: float = 0.1, window: int = 100) -> None:
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be > 0 and <= 1, got {budget}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.budget = budget
        self.window = window
        self._flags = bytearray(window)
        self._position = 0
        self._asked = 0

    @property
    def rate(self) -> float:
        """The realized label rate over the window."""
        return self._asked / self.window

    @property
    def available(self) -> bool:
        """Whether asking the next sample keeps the spend over the window within the budget.

        The window then holds the next sample and the ``window - 1`` before it, so at budget 1
        every sample may be asked.
        """
        spend = self._asked - self._flags[self._position] + 1
        return spend <= self.budget * self.window + 1e-9

    def record(self, asked: bool) -> None:
        """Account for one more sample, asked or not."""
        self._asked += asked - self._flags[self._position]
        self._flags[self._position] = asked
        self._position = (self._position + 1) % self.window

    def copy(self) -> Self:
        """An independent copy."""
        twin = type(self)(self.budget, self.window)
        twin._flags[:] = self._flags
        twin._position = self._position
        twin._asked = self._asked
        return twin


@dataclass(frozen=True)
class LabelAllowance:
    """The one account every request is paid from, whatever its reason: each sample seen earns
    ``budget`` of a label, at most ``bank`` labels stay unspent, and a request is granted only
    when a whole label is there. A fresh account holds one label: a request is granted while
    the labels spent so far stay within ``budget`` x the samples seen (the peers' protocol),
    so the stream's first sample may be asked. Over any stretch the labels asked stay within
    ``budget`` x the samples seen plus what was banked before it.

    Immutable: `grant` returns the account after the batch, to keep once the batch commits.

    Examples
    --------
    >>> allowance = LabelAllowance(0.25, bank=2.0)
    >>> granted, after = allowance.grant([True] * 8)
    >>> granted.astype(int).tolist(), after.earned
    ([1, 0, 0, 1, 0, 0, 0, 1], 0.0)
    >>> granted, banked = after.grant([False] * 20)
    >>> banked.earned, banked.grant([True] * 3)[0].tolist()
    (2.0, [True, True, False])
    """

    budget: float
    bank: float
    earned: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 1:
            raise ValueError(f"budget must be > 0 and <= 1, got {self.budget}")
        if self.bank < 1:
            raise ValueError(f"bank must be >= 1 label, got {self.bank}")

    def grant(self, wanted: ArrayLike) -> tuple[np.ndarray, LabelAllowance]:
        """Which of the batch's ``wanted`` requests are granted, in stream order, and the
        account after it."""
        asks = np.asarray(wanted, dtype=bool)
        granted = np.zeros(len(asks), dtype=bool)
        earned = self.earned
        for i, ask in enumerate(asks.tolist()):
            earned = min(self.bank, earned + self.budget)
            if ask and earned >= 1 - 1e-9:
                granted[i], earned = True, earned - 1
        return granted, replace(self, earned=earned)

"""Label spend over a sliding window, the budget accounting the stream gates share."""

from __future__ import annotations

from typing import Self

__all__ = ["SlidingWindowBudget"]


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

"""A label-free shift detector: have the stream's inputs (or confidences) just moved?

Serving sees every sample at once while labels come late, so a change in what is served can
stop auto-labeling before any label shows it. `ShiftMonitor` compares the newest ``recent``
samples with the ``reference`` samples just before them, one mean per signal column (the
features, or the model's confidence), and reports a shift when some column's mean moved both
significantly (a z-score past a Bonferroni bound over the columns) and materially (by at least
``min_effect`` pooled standard deviations). Adjacent windows make it blind to slow change by
design: that is what a model learning as it serves does to its confidences, and what the
labels' detectors are for.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri

__all__ = ["ShiftMonitor"]


class _Window:
    """Sums, sums of squares and counts of whole batches, oldest first."""

    def __init__(self, columns: int) -> None:
        self.batches: deque[tuple[int, np.ndarray, np.ndarray]] = deque()
        self.count = 0
        self.total = np.zeros(columns)
        self.squares = np.zeros(columns)

    def add(self, batch: tuple[int, np.ndarray, np.ndarray]) -> None:
        self.batches.append(batch)
        self._move(batch, +1)

    def pop(self) -> tuple[int, np.ndarray, np.ndarray]:
        batch = self.batches.popleft()
        self._move(batch, -1)
        return batch

    def _move(self, batch: tuple[int, np.ndarray, np.ndarray], sign: int) -> None:
        count, total, squares = batch
        self.count += sign * count
        self.total += sign * total
        self.squares += sign * squares


class ShiftMonitor:
    """Reports when the mean of a signal column jumps between adjacent windows.

    Parameters
    ----------
    recent, reference
        Samples in the newest window, and in the window before it (at least; whole batches).
    alpha
        The false-alarm probability of one check over all columns.
    min_effect
        The smallest move that counts, in pooled standard deviations of the column.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> monitor = ShiftMonitor(recent=200, reference=800)
    >>> [monitor.update(rng.normal(0, 1, (50, 3))) for _ in range(40)].count(True)
    0
    >>> moved = [monitor.update(rng.normal([0, 0, 1], 1, (50, 3))) for _ in range(10)]
    >>> moved.index(True)  # within the batches that fill the recent window
    1
    """

    def __init__(
        self,
        *,
        recent: int = 300,
        reference: int = 1500,
        alpha: float = 1e-6,
        min_effect: float = 0.25,
    ) -> None:
        if recent < 1 or reference < 1:
            raise ValueError(f"windows must hold >= 1 sample, got {recent} and {reference}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be > 0 and < 1, got {alpha}")
        self.recent, self.reference = recent, reference
        self.alpha, self.min_effect = alpha, min_effect
        self._columns: int | None = None
        self._new: _Window | None = None
        self._old: _Window | None = None

    def reset(self) -> None:
        """Forget what was seen: the next windows fill from scratch."""
        self._columns = self._new = self._old = None

    def update(self, signals: ArrayLike) -> bool:
        """Add a batch of signals (``[n]`` or ``[n, columns]``); whether the newest window's
        means moved away from the reference's. After a shift the monitor starts over."""
        rows = np.asarray(signals, dtype=np.float64)
        rows = rows.reshape(len(rows), -1)
        if not len(rows):
            return False
        if rows.shape[1] != self._columns:  # new signals (another model, other features)
            self._columns = rows.shape[1]
            self._new, self._old = _Window(self._columns), _Window(self._columns)
        assert self._new is not None and self._old is not None
        self._new.add((len(rows), rows.sum(axis=0), np.square(rows).sum(axis=0)))
        while self._new.count - self._new.batches[0][0] >= self.recent:
            self._old.add(self._new.pop())
        while self._old.batches and self._old.count - self._old.batches[0][0] >= self.reference:
            self._old.pop()
        if self._new.count < self.recent or self._old.count < self.reference:
            return False
        if self._moved(self._new, self._old):
            self.reset()
            return True
        return False

    def _moved(self, new: _Window, old: _Window) -> bool:
        n, m = new.count, old.count
        mean_new, mean_old = new.total / n, old.total / m
        pooled = (new.squares + old.squares) / (n + m) - ((new.total + old.total) / (n + m)) ** 2
        spread = np.sqrt(np.maximum(pooled, 0.0))
        gap = np.abs(mean_new - mean_old)
        z = gap / np.maximum(spread * np.sqrt(1 / n + 1 / m), 1e-12)
        bound = ndtri(1 - self.alpha / (2 * len(gap)))
        return bool(np.any((z > bound) & (gap > self.min_effect * spread)))

"""A user's own score, gate, pool selector and model, named by import path in the tests
(``tests.plugins_for_tests:second_class``): the tests run from the repository root, so
``tests`` is importable there, in-process and in the command-line subprocesses alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from streamal.gates import Reason, SlidingWindowBudget
from streamal.gates.base import BudgetGate, GateState, new_rng_state
from streamal.strategies import DiversityRule, Score

NOT_CALLABLE = 3


def second_class(probs: Any) -> Any:
    """A score: the probability of the second class."""
    return probs[..., 1]


def _embedding_norm(probs: Any, *, embeddings: Any) -> Any:
    return torch.as_tensor(embeddings).norm(dim=-1)


embedding_norm = Score("embedding_norm", _embedding_norm, needs_embeddings=True)
"""A score that declares it reads embeddings."""


coin = Score("coin", lambda probs, seed: seed.random(len(probs)), seeded=True)
"""A score that draws random numbers from the generator it is given."""


class AtLeast(BudgetGate[GateState]):
    """A gate: asks every sample whose utility reaches ``level``, whatever the budget."""

    def __init__(self, *, budget: float, level: float) -> None:
        spend = SlidingWindowBudget(budget, 100)
        super().__init__(GateState(level, new_rng_state(0), spend))

    def _step(self, state: GateState, utility: float, draw: float) -> Reason:
        return Reason.UNCERTAIN if utility >= state.threshold else Reason.NONE


def not_a_gate(*, budget: float) -> str:
    """A factory that makes something other than a gate."""
    return "a gate"


def last_k(selector: Any, k: int, probs: Any, embeddings: Any, labeled: Any) -> np.ndarray:
    """A pool selector: the last ``k`` pool items, the last first."""
    n = probs.shape[-2]
    return np.arange(n - 1, n - 1 - k, -1)


def _farthest(selector: Any, k: int, probs: Any, embeddings: Any, labeled: Any) -> np.ndarray:
    return np.argsort(-torch.as_tensor(embeddings).norm(dim=1).numpy())[:k]


far_first = DiversityRule(_farthest, needs_embeddings=True)
"""A pool selector that declares it reads embeddings: the ``k`` farthest from the origin."""


def plain(n_features: int, n_classes: int) -> nn.Module:
    """A user's ``model.module`` without ``embed()``."""
    return nn.Sequential(nn.Linear(n_features, n_classes))

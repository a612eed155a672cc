"""One training round: warm-start a challenger from the champion, train it on the labeled set
with early stopping on a held-out part, and compare both on that same held-out part."""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from streamal.model import MLP, ModelConfig, build_module
from streamal.training.config import TrainConfig


@dataclass
class FitResult:
    """The challenger and how it and the champion did on the held-out labels."""

    challenger: nn.Module
    accuracy: float
    champion_accuracy: float | None
    epochs: int
    train_size: int
    validation_size: int

    @property
    def better_or_equal(self) -> bool:
        """Whether the challenger may replace the champion (champion / challenger rule)."""
        return self.champion_accuracy is None or self.accuracy >= self.champion_accuracy


def held_out(ids: list[str], share: float) -> np.ndarray:
    """A stable validation mask: an id is held out by its hash, whatever the round.

    >>> held_out(["a", "b", "c", "d"], 0.5).tolist() == held_out(["a", "b", "c", "d"], 0.5).tolist()
    True
    """
    cut = int(share * 1000)
    return np.array([zlib.crc32(i.encode()) % 1000 < cut for i in ids], dtype=bool)


def accuracy(module: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``labels`` the module predicts."""
    module.eval()
    with torch.inference_mode():
        return float((module(features).argmax(1) == labels).float().mean())


def _batches(
    size: int, batch_size: int, min_steps: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """One epoch's batches: a shuffled pass over ``size`` items, repeated until it makes at
    least ``min_steps`` batches (a few labels still move the model, e.g. after a drift).

    >>> [len(b) for b in _batches(10, 4, 5, torch.Generator().manual_seed(0))]
    [4, 4, 2, 4, 4, 2]
    """
    batches: list[torch.Tensor] = []
    while len(batches) < min_steps:
        order = torch.randperm(size, generator=generator)
        batches += list(order.split(batch_size))
    return batches


def warm_up() -> None:
    """Pay torch's one-time optimizer set-up now (the first optimizer imports its compiler
    stack: 1-2 s on a small CPU) rather than in the first round, which serving waits for."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def fit(
    train: TrainConfig,
    model: ModelConfig,
    ids: list[str],
    features: np.ndarray,
    labels: np.ndarray,
    champion: nn.Module | None,
    seed: int = 0,
) -> FitResult | None:
    """Train a challenger on ``features`` / class indices ``labels``; None if too few labels.

    The challenger starts from the champion's weights when there is one (warm start), else
    from scratch; the default MLP's input scaling is fitted anew on the training features
    (robust to outliers, see `robust_scaling`) either way.
    """
    validation = held_out(ids, train.validation_share)
    if validation.all() or not validation.any():
        return None
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels)
    x_train, y_train, x_val, y_val = x[~validation], y[~validation], x[validation], y[validation]

    challenger = build_module(model)
    if champion is not None:
        challenger.load_state_dict(champion.state_dict())
    if isinstance(challenger, MLP):  # refitted each round: no old outlier is inherited
        challenger.fit_scaling(features[~validation], keep_function=champion is not None)
    optimizer = torch.optim.Adam(challenger.parameters(), lr=train.learning_rate)
    loss_of = nn.CrossEntropyLoss()

    best_loss, best_state, stale, epochs = (
        float("inf"),
        copy.deepcopy(challenger.state_dict()),
        0,
        0,
    )
    for epoch in range(1, train.max_epochs + 1):
        epochs = epoch
        challenger.train()
        for batch in _batches(len(x_train), train.batch_size, train.min_steps, generator):
            optimizer.zero_grad()
            loss_of(challenger(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        challenger.eval()
        with torch.inference_mode():
            loss = float(loss_of(challenger(x_val), y_val))
        if loss < best_loss - 1e-4:
            best_loss, best_state, stale = loss, copy.deepcopy(challenger.state_dict()), 0
        else:
            stale += 1
            if stale >= train.patience:
                break
    challenger.load_state_dict(best_state)
    return FitResult(
        challenger=challenger,
        accuracy=accuracy(challenger, x_val, y_val),
        champion_accuracy=None if champion is None else accuracy(champion, x_val, y_val),
        epochs=epochs,
        train_size=len(x_train),
        validation_size=len(x_val),
    )

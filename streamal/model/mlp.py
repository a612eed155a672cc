"""The default model: a multilayer perceptron over ``Sample.features``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from streamal.model.scaling import robust_scaling

INPUT_BOUND = 10.0  # standardized inputs are clipped to +-this: no single value dominates


class MLP(nn.Module):
    """Standardize and clip, then ``Linear -> ReLU -> Dropout`` per hidden layer, then a
    linear head.

    The input scaling lives in buffers (``mean`` holds the center, ``std`` the scale), so it
    travels with the checkpoint; ``embed`` returns the last hidden layer for embedding-based
    strategies.

    >>> model = MLP(n_features=3, n_classes=2, hidden=[8], dropout=0.1)
    >>> model(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    >>> model.embed(torch.zeros(5, 3)).shape
    torch.Size([5, 8])
    >>> model.fit_scaling(np.array([[0.0, 1, 0], [2, 1, 0], [4, 1, 0]]))  # 2 and 3: constant
    >>> model.standardize(torch.tensor([[2.0, 1e20, 3]]))
    tensor([[ 0., 10.,  3.]])
    """

    def __init__(self, n_features: int, n_classes: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    @torch.no_grad()
    def fit_scaling(self, features: np.ndarray, keep_function: bool = False) -> None:
        """Set the input scaling from ``features`` [N, n_features] (see `robust_scaling`).

        ``keep_function`` (a warm start) adapts the first layer to the new scaling, so the
        model computes what it did (but for the clipping) and its training goes on from there.
        """
        center, scale = (torch.as_tensor(values) for values in robust_scaling(features))
        if keep_function:
            first = next(m for m in self.modules() if isinstance(m, nn.Linear))
            first.bias.add_(first.weight @ ((center - self.mean) / self.std))
            first.weight.mul_(scale / self.std)
        self.mean.copy_(center)
        self.std.copy_(scale)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` centered, scaled and clipped to ``+-INPUT_BOUND``."""
        return ((x - self.mean) / self.std).clamp(-INPUT_BOUND, INPUT_BOUND)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation of ``x``."""
        return self.body(self.standardize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` [B, n_features] -> [B, n_classes]."""
        return self.head(self.embed(x))

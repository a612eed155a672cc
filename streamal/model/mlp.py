"""The default model: a multilayer perceptron over ``Sample.features``."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Standardize, then ``Linear -> ReLU -> Dropout`` per hidden layer, then a linear head.

    The input standardization (``mean``, ``std``) lives in buffers, so it travels with the
    checkpoint; ``embed`` returns the last hidden layer for embedding-based strategies.

    >>> model = MLP(n_features=3, n_classes=2, hidden=[8], dropout=0.1)
    >>> model(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    >>> model.embed(torch.zeros(5, 3)).shape
    torch.Size([5, 8])
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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation of ``x``."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` [B, n_features] -> [B, n_classes]."""
        return self.head(self.embed(x))

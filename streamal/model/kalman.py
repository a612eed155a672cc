"""Kalman-filter logistic regressions: linear parts of the default model that learn online,
label by label, with second-order steps (sure after a few labels) and process noise (so they
follow a concept that moves)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

FULL_COVARIANCE_MAX = 2**19
"""Most covariance entries per part (regressions x (n_features + 1)^2) kept as full matrices;
wider inputs keep the diagonal only (checkpoints and steps stay small)."""
PROBABILITY_FLOOR = 1e-6


class KalmanParts(nn.Module):
    """One-vs-rest Bayesian logistic regressions over standardized rows, one per process noise
    in ``noise``, each updated per label by an extended Kalman filter on its weights (with two
    classes, one regression: the second class's, its complement the first's).

    Each class's weights (a bias included) have a Gaussian belief, from a standard normal
    prior. A label moves the mean by a Newton-like step scaled by the belief's covariance, then
    shrinks the covariance along the row: the first labels move a part far, later ones less,
    as for a logistic regression refitted on every label so far. Before each label the
    covariance grows by ``noise`` times the identity (a random walk of the weights), so the
    part keeps learning at a rate set by the noise: 0 learns a fixed concept, more follows a
    moving one faster. A class's probability is its logit moderated by the belief's variance
    along the row (the probit approximation), so rows unlike any label seen are unsure;
    the classes' probabilities are normalized.

    The belief lives in buffers (``mean``, ``covariance``), so it travels with the checkpoint.

    >>> parts = KalmanParts(n_features=1, n_classes=2, noise=[0.0, 1e-3])
    >>> parts.learn(torch.tensor([[-1.0], [1.0]] * 10), torch.tensor([0, 1] * 10))
    >>> parts.log_proba(torch.tensor([[-2.0], [2.0]])).exp().argmax(-1).tolist()
    [[0, 1], [0, 1]]
    >>> tuple(parts.covariance.shape), KalmanParts(1000, 10, [0.0]).covariance.shape
    ((2, 1, 2, 2), torch.Size([1, 10, 1001]))
    """

    def __init__(self, n_features: int, n_classes: int, noise: Sequence[float]) -> None:
        super().__init__()
        width = n_features + 1
        regressions = 1 if n_classes == 2 else n_classes
        full = regressions * width**2 <= FULL_COVARIANCE_MAX
        self.noise: torch.Tensor
        self.mean: torch.Tensor
        self.covariance: torch.Tensor
        self.register_buffer("noise", torch.tensor(list(noise), dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(len(noise), regressions, width))
        shape = (len(noise), regressions, *((width, width) if full else (width,)))
        self.register_buffer("covariance", torch.zeros(shape))
        self.reset()

    @property
    def full(self) -> bool:
        """Whether the covariances are full matrices (else diagonals)."""
        return self.covariance.dim() == 4

    @torch.no_grad()
    def reset(self) -> None:
        """Back to the prior: zero weights, identity covariance."""
        self.mean.zero_()
        self.covariance.copy_(self._prior_covariance())

    def _prior_covariance(self) -> torch.Tensor:
        return self._identity().expand_as(self.covariance)

    def _identity(self) -> torch.Tensor:
        width = self.mean.shape[-1]
        if self.full:
            return torch.eye(width, device=self.mean.device)
        return torch.ones(width, device=self.mean.device)

    def log_proba(self, z: torch.Tensor) -> torch.Tensor:
        """Each part's class log-probabilities ``[K, B, C]`` for standardized rows ``z``."""
        x = _with_bias(z)
        logit = torch.einsum("kcf,bf->kbc", self.mean, x)
        if self.full:
            variance = torch.einsum("bf,kcfg,bg->kbc", x, self.covariance, x)
        else:
            variance = torch.einsum("kcf,bf->kbc", self.covariance, x * x)
        p = torch.sigmoid(logit / torch.sqrt(1 + math.pi / 8 * variance))
        if p.shape[-1] == 1:  # two classes: the second's regression, and its complement
            p = torch.cat([1 - p, p], -1)
        p = p.clamp_min(PROBABILITY_FLOOR)
        return torch.log(p / p.sum(-1, keepdim=True))

    @torch.no_grad()
    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """One filter step per label (standardized rows ``z``, class indices ``y``), in order."""
        mean, covariance, full = self.mean, self.covariance, self.full
        drift = self.noise.view(-1, 1, *[1] * (covariance.dim() - 2)) * self._identity()
        if mean.shape[1] == 1:  # two classes: the second's regression only
            targets = y[:, None].to(mean.dtype)
        else:
            targets = nn.functional.one_hot(y, mean.shape[1]).to(mean.dtype)
        for x, target in zip(_with_bias(z), targets, strict=True):
            covariance += drift
            spread = covariance @ x if full else covariance * x  # [K, C, F]
            variance = spread @ x  # [K, C]
            p = torch.sigmoid(mean @ x)
            curvature = p * (1 - p)
            step = 1 / (1 + curvature * variance)
            mean += spread * ((target - p) * step)[..., None]
            shrink = (curvature * step)[..., None]
            if full:
                covariance -= spread[..., :, None] * spread[..., None, :] * shrink[..., None]
            else:
                covariance -= spread * spread * shrink

    def _load_from_state_dict(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        """A checkpoint saved without these parts loads them at the prior; one saved with a
        regression per class of two keeps the second class's (the only one read)."""
        if prefix + "mean" in state and state[prefix + "mean"].shape[1] > self.mean.shape[1]:
            for name in ("mean", "covariance"):
                state[prefix + name] = state[prefix + name][:, 1:]
        if prefix + "mean" not in state:
            state[prefix + "noise"] = self.noise.clone()
            state[prefix + "mean"] = torch.zeros_like(self.mean)
            state[prefix + "covariance"] = self._prior_covariance().clone()
        super()._load_from_state_dict(state, prefix, *args)


def _with_bias(z: torch.Tensor) -> torch.Tensor:
    return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], 1)

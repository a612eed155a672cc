"""The default model: a multilayer perceptron over ``Sample.features``, optionally blended with
parts that learn online, label by label: linear models (``model.online``, ``model.kalman``)
and nearest neighbours (``model.neighbors``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from streamal.model.kalman import KalmanParts
from streamal.model.scaling import winsorized_standard_scaling

INPUT_BOUND = 10.0  # standardized inputs are clipped to +-this: no single value dominates
LOG_TEMPERATURE_BOUND = 3.0  # a part's temperature stays within exp(+-this)
BLANK_LOG_WEIGHT = -10.0  # a part added to a checkpoint that had none weighs e^-10
VOTE_PRIOR = 0.1  # pseudo-votes of every class in the neighbours part's probabilities


class MLP(nn.Module):
    """Standardize and clip, then ``Linear -> ReLU -> Dropout`` per hidden layer, then a
    linear head; beside it, one online linear part per learning rate in ``online``, a
    neighbours part (``neighbors`` > 0) and one `KalmanParts` regression per process noise in
    ``kalman`` (none by default).

    The parts are complementary learners. The MLP (`deep`) trains in full rounds on every
    label of the concept, and is the better one once it has many labels of a concept that
    stays put. Each online part is a logistic regression that learns each new label once, in
    order, by SGD at its own rate (`learn`): useful after a few labels, and following a
    concept that moves (a slow rate is steadier, a fast one follows faster). A Kalman part is
    a logistic regression too, with second-order steps: sure after fewer labels than SGD, and
    unsure where no label was seen. The neighbours part votes the nearest labels it remembers:
    it follows any boundary, and forgets. The model
    predicts their mixture, weighted by how often each part predicted the latest labels right
    before learning them (`weigh`), so the better learner of the moment leads, whatever the
    stream; each part at a temperature fitted on the same labels, so the mixture is as sure as
    its parts where they agree.

    The input scaling lives in buffers (``mean`` holds the center, ``std`` the scale), so it
    travels with the checkpoint, as do the online parts, the memory, the mixture's log-weights
    and the parts' log-temperatures (only with such parts: the MLP alone keeps the checkpoint
    it always had); ``embed`` returns the last hidden layer for embedding-based strategies.

    >>> model = MLP(n_features=3, n_classes=2, hidden=[8], dropout=0.1, online=[0.01, 0.1])
    >>> len(model.online), model.rates
    (2, tensor([0.0100, 0.1000]))
    >>> model(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    >>> model.embed(torch.zeros(5, 3)).shape
    torch.Size([5, 8])
    >>> model.fit_scaling(np.array([[0.0, 1, 0], [2, 1, 0], [4, 1, 0]]))  # 2 and 3: constant
    >>> model.standardize(torch.tensor([[2.0, 1e20, 3]]))
    tensor([[ 0., 10.,  3.]])
    """

    def __init__(
        self, n_features: int, n_classes: int, hidden: list[int], dropout: float,
        online: Sequence[float] = (), neighbors: int = 0, memory: int = 1000,
        kalman: Sequence[float] = (),
    ) -> None:  # fmt: skip
        super().__init__()
        self.neighbors = neighbors
        self.blended = bool(online) or neighbors > 0 or bool(kalman)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.rates: torch.Tensor
        self.log_weights: torch.Tensor
        self.log_temperatures: torch.Tensor
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)
        self.online = nn.ModuleList(nn.Linear(n_features, n_classes) for _ in online)
        for part in self._linear_parts():
            nn.init.zeros_(part.weight)
            nn.init.zeros_(part.bias)
        self.kalman = KalmanParts(n_features, n_classes, kalman) if kalman else None
        parts = 1 + len(online) + (neighbors > 0) + len(kalman)
        if self.blended:  # a checkpoint of the MLP alone holds no more than it did before
            self.register_buffer("rates", torch.tensor(list(online), dtype=torch.float32))
            self.register_buffer("log_weights", torch.zeros(parts))
            self.register_buffer("log_temperatures", torch.zeros(parts))
        if neighbors:
            self.memory_x: torch.Tensor
            self.memory_y: torch.Tensor
            self.memory_seen: torch.Tensor
            self.register_buffer("memory_x", torch.zeros(memory, n_features))
            self.register_buffer("memory_y", torch.zeros(memory, dtype=torch.long))
            self.register_buffer("memory_seen", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def fit_scaling(self, features: np.ndarray, keep_function: bool = False) -> None:
        """Set the input scaling from ``features`` [N, n_features] (see
        `winsorized_standard_scaling`).

        ``keep_function`` (a warm start) adapts the layers that read the input to the new
        scaling, so the model computes what it did (but for the clipping) and its training
        goes on from there.
        """
        center, scale = (
            torch.as_tensor(values) for values in winsorized_standard_scaling(features, INPUT_BOUND)
        )
        if keep_function:
            first = next(m for m in [*self.body, self.head] if isinstance(m, nn.Linear))
            for layer in [first, *self._linear_parts()]:
                layer.bias.add_(layer.weight @ ((center - self.mean) / self.std))
                layer.weight.mul_(scale / self.std)
        self.mean.copy_(center)
        self.std.copy_(scale)

    def _load_from_state_dict(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        """A checkpoint saved without some of the parts (a store kept from before them) loads
        with those parts blank, weighing next to nothing until labels show them right (see
        `weigh`); a blend saved before its parts had temperatures loads at temperature 1."""
        if self.blended and prefix + "rates" not in state:
            for i, part in enumerate(self._linear_parts()):
                state[f"{prefix}online.{i}.weight"] = torch.zeros_like(part.weight)
                state[f"{prefix}online.{i}.bias"] = torch.zeros_like(part.bias)
            state[prefix + "rates"] = self.rates.clone()
            state[prefix + "log_weights"] = torch.zeros(1)
        if self.neighbors and prefix + "memory_x" not in state:
            state[prefix + "memory_x"] = torch.zeros_like(self.memory_x)
            state[prefix + "memory_y"] = torch.zeros_like(self.memory_y)
            state[prefix + "memory_seen"] = torch.zeros_like(self.memory_seen)
        if self.blended:
            for name, blank in (("log_weights", BLANK_LOG_WEIGHT), ("log_temperatures", 0.0)):
                saved = state.get(prefix + name, torch.zeros(1))
                missing = len(self.log_weights) - len(saved)
                if missing > 0:
                    state[prefix + name] = torch.cat([saved, torch.full((missing,), blank)])
        super()._load_from_state_dict(state, prefix, *args)

    def _linear_parts(self) -> list[nn.Linear]:
        return [cast(nn.Linear, part) for part in self.online]

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` centered, scaled and clipped to ``+-INPUT_BOUND``."""
        return ((x - self.mean) / self.std).clamp(-INPUT_BOUND, INPUT_BOUND)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation of ``x``."""
        return self.body(self.standardize(x))

    def deep(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's own logits of ``x``: what full rounds train."""
        return self.head(self.embed(x))

    def parts(self, x: torch.Tensor) -> torch.Tensor:
        """Every part's logits ``[P, B, C]``: the MLP's, the online parts', the neighbours
        part's, then the Kalman parts', each at its temperature (see `weigh`)."""
        z = self.standardize(x)  # once for every part
        logits = [self.head(self.body(z)), *(part(z) for part in self.online)]
        if self.neighbors:
            logits.append(self.recall(z))
        if self.kalman is not None:
            logits.extend(self.kalman.log_proba(z).unbind())
        if not self.blended:
            return logits[0][None]
        return torch.stack(logits) / self.log_temperatures.exp()[:, None, None]

    def recall(self, z: torch.Tensor) -> torch.Tensor:
        """The neighbours part's log-probabilities for standardized rows ``z``: the votes of
        the ``neighbors`` nearest remembered labels, the i-th nearest weighing ``1 / i``, with
        `VOTE_PRIOR` votes for every class (uniform while nothing is remembered).

        >>> model = MLP(n_features=1, n_classes=2, hidden=[], dropout=0.0, neighbors=3)
        >>> model.learn(torch.tensor([[0.0], [1.0], [5.0]]), torch.tensor([0, 0, 1]))
        >>> model.recall(torch.tensor([[0.2], [4.0]])).exp().argmax(-1).tolist()
        [0, 1]
        """
        classes = self.head.out_features
        stored = min(int(self.memory_seen), len(self.memory_y))
        if not stored:
            return torch.full((len(z), classes), -math.log(classes), device=z.device)
        keys = self.standardize(self.memory_x[:stored])
        k = min(self.neighbors, stored)
        nearest = torch.cdist(z, keys).topk(k, largest=False).indices  # [B, k], nearest first
        weights = 1.0 / torch.arange(1, k + 1, dtype=z.dtype, device=z.device)
        votes = torch.zeros(len(z), classes, dtype=z.dtype, device=z.device)
        votes.scatter_add_(1, self.memory_y[nearest], weights.expand(len(z), k))
        return torch.log((votes + VOTE_PRIOR) / (weights.sum() + classes * VOTE_PRIOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` [B, n_features] -> [B, n_classes]: the log of the mixture of
        the parts' probabilities (the MLP's logits when it has no other part)."""
        if not self.blended:
            return self.deep(x)
        weights = torch.log_softmax(self.log_weights, 0)[:, None, None]
        return torch.logsumexp(torch.log_softmax(self.parts(x), -1) + weights, 0)

    @torch.no_grad()
    def weigh(self, x: torch.Tensor, y: torch.Tensor, memory: float) -> None:
        """Score the parts on labels they have not learned yet (``x``, class indices ``y``, in
        arrival order) by Hedge with fixed share: a label costs each part that predicted it
        wrong 1 (a bounded loss: one confident mistake cannot decide alone), at Hedge's rate
        for this many parts over ``memory`` labels, and each label shares ``1 / memory`` of
        the weight equally, so that a part that led long ago can lead again within about
        ``memory`` labels of a change.

        >>> model = MLP(n_features=1, n_classes=2, hidden=[4], dropout=0.0, online=[0.1])
        >>> model.online[0].bias.data = torch.tensor([1.0, -1.0])  # it says class 0
        >>> model.weigh(torch.zeros(10, 1), torch.zeros(10, dtype=torch.long), memory=100)
        >>> bool(model.log_weights[1] >= model.log_weights[0])
        True
        """
        if not self.blended:
            return
        logits = self.parts(x)
        wrong = (logits.argmax(-1) != y).to(self.log_weights.dtype)
        count = len(wrong)
        rate, share = math.sqrt(8 * math.log(count) / memory), 1.0 / memory
        shared = torch.tensor(math.log(share / count))
        weights = torch.log_softmax(self.log_weights, 0)
        for loss in wrong.T:  # one label at a time, in order
            weights = torch.log_softmax(weights - rate * loss, 0)
            weights = torch.logaddexp(weights + math.log1p(-share), shared)
        self.log_weights.copy_(weights)
        self._calibrate(logits * self.log_temperatures.exp()[:, None, None], y, memory)

    def _calibrate(self, raw: torch.Tensor, y: torch.Tensor, memory: float) -> None:
        """Online temperature scaling of each part: one step per label, in order, on the
        log-temperature's negative log-likelihood of ``y`` under the part's logits ``raw``
        ``[P, B, C]`` at rate ``1 / sqrt(memory)`` (each gradient clipped to +-1). Mixed
        probabilities are only as confident as the least confident part that has weight: a
        part that is right but soft (a slow SGD part early on) would hold back every
        confident prediction of the blend.

        >>> model = MLP(n_features=1, n_classes=2, hidden=[], dropout=0.0, online=[0.1])
        >>> model.online[0].bias.data = torch.tensor([0.5, -0.5])  # right, and soft
        >>> model.weigh(torch.zeros(50, 1), torch.zeros(50, dtype=torch.long), memory=100)
        >>> bool(model.log_temperatures[1] < -1)  # sharper: it is always right
        True
        """
        step = 1 / math.sqrt(memory)
        log_t = self.log_temperatures.clone()
        for label, row in zip(y.tolist(), raw.unbind(1), strict=True):  # row: [P, C]
            scaled = row / log_t.exp()[:, None]
            expected = (torch.softmax(scaled, -1) * scaled).sum(-1)
            gradient = scaled[:, label] - expected  # d(-log p(label)) / d(log T)
            log_t -= step * gradient.clamp(-1.0, 1.0)
        self.log_temperatures.copy_(log_t.clamp(-LOG_TEMPERATURE_BOUND, LOG_TEMPERATURE_BOUND))

    @torch.no_grad()
    def relearn(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Start the online parts and the memory over and have them `learn` ``x``, ``y`` (in
        arrival order): what they would know had they seen only these labels."""
        for part in self._linear_parts():
            part.weight.zero_()
            part.bias.zero_()
        if self.neighbors:
            self.memory_seen.zero_()
        if self.kalman is not None:
            self.kalman.reset()
        self.learn(x, y)

    @torch.no_grad()
    def learn(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Remember each label (the oldest forgotten once the memory is full), take one filter
        step of each Kalman part and one SGD step of each online part, at its rate, on
        cross-entropy per label, in order (online logistic regressions: each label is learned
        once, the latest weigh most)."""
        if self.neighbors and len(y):
            kept = min(len(y), len(self.memory_y))  # more than it holds: the latest
            ring = torch.arange(kept, device=self.memory_y.device)
            slots = (self.memory_seen + len(y) - kept + ring) % len(self.memory_y)
            self.memory_x[slots] = x[-kept:].to(self.memory_x.dtype)
            self.memory_y[slots] = y[-kept:]
            self.memory_seen += len(y)
        z = self.standardize(x)
        if self.kalman is not None and len(y):
            self.kalman.learn(z, y)
        parts = self._linear_parts()
        if not parts:
            return
        weight = torch.stack([part.weight for part in parts])  # [P, C, F]
        bias = torch.stack([part.bias for part in parts])  # [P, C]
        rates = self.rates[:, None]
        targets = nn.functional.one_hot(y, self.head.out_features).to(weight.dtype)
        for row, target in zip(z, targets, strict=True):
            error = rates * (torch.softmax(weight @ row + bias, -1) - target)  # [P, C]
            weight.sub_(error[:, :, None] * row)
            bias.sub_(error)
        for part, w, b in zip(parts, weight, bias, strict=True):
            part.weight.copy_(w)
            part.bias.copy_(b)

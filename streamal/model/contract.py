"""The model contract: what serve, train, pool and the simulation ask of a model.

A model is a `StreamModel`. streamal gives it batches of `Sample` (``features``, a
``payload``, or both) and never looks inside its inputs:

- `StreamModel.encode` turns samples into model input on the model's device, and says which
  samples it cannot read and why (those are dead-lettered; the rest of the batch goes on);
- `StreamModel.logits` gives class logits ``[B, C]`` of encoded input; `StreamModel.embed`
  (optional) a representation ``[B, H]`` for the scores and selectors that read embeddings;
  `StreamModel.rounds_logits` (optional) those of the part that learns in rounds only, for a
  model that also follows the stream by itself (the drift detectors watch it);
- `StreamModel.fit` trains on labeled samples, on the model's device, with the optimizer, loss
  and schedule of the implementation; `StreamModel.update` (optional) learns new labels
  between two rounds, so the served model improves after every label; `StreamModel.follow`
  (optional) learns those held out to judge the next round, in the parts that follow the
  stream label by label only;
- ``network`` is what training changes: its ``state_dict`` is the checkpoint (a frozen backbone
  kept outside it is not saved, so a new version stays small), and its dropout layers are the
  ones MC-dropout scores switch on.

streamal builds a fresh model for every version it loads or trains (see
``model.factory``), so anything expensive and shared, like a frozen backbone, belongs in a
per-process cache (`streamal.model.frozen`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from streamal.messages import Sample


@dataclass
class Encoded:
    """Model input for the samples at ``kept`` (indices into the batch, in order), and the
    samples that could not be read, as ``(index, reason)`` pairs."""

    inputs: Any
    kept: list[int]
    rejected: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Labeled:
    """Samples with their labels as class indices (positions in ``classes``), and, for a part
    of a labeled set (see `arrival_order`), where each came in it.

    >>> Labeled([Sample(id="a", features=[1.0])], np.array([1])).targets.tolist()
    [1]
    """

    samples: list[Sample]
    targets: np.ndarray
    arrival: np.ndarray | None = None
    """Each label's position in the set it was taken from, in the order the labels came (None:
    not known)."""

    def __len__(self) -> int:
        return len(self.samples)


def arrival_order(*parts: Labeled) -> np.ndarray | None:
    """The order of the labels of ``parts`` (of one labeled set), laid end to end, that puts
    them in the order they came; None unless every part knows where its labels came
    (`Labeled.arrival`).

    >>> a = Labeled([Sample(id="a", features=[0.0])] * 2, np.array([0, 0]), np.array([0, 2]))
    >>> b = Labeled([Sample(id="b", features=[1.0])], np.array([1]), np.array([1]))
    >>> arrival_order(a, b).tolist(), arrival_order(a, Labeled([], b.targets))
    ([0, 2, 1], None)
    """
    if any(part.arrival is None for part in parts):
        return None
    return np.argsort(np.concatenate([np.asarray(part.arrival) for part in parts]), kind="stable")


class StreamModel(ABC):
    """A model streamal can serve, train, checkpoint and hot-swap.

    Subclasses set ``classes`` (the labels, in logit order), ``device`` and ``network``, and
    implement `encode`, `logits` and `fit`; `update`, `embed`, `rounds_logits`,
    `stochastic_logits` and `probe` are optional.
    """

    classes: list[str]
    device: torch.device
    network: nn.Module

    @abstractmethod
    def encode(self, samples: Sequence[Sample]) -> Encoded:
        """Model input of ``samples`` on ``device``; a sample it cannot read is rejected with
        a one-line reason rather than failing the batch."""

    @abstractmethod
    def logits(self, inputs: Any) -> torch.Tensor:
        """Class logits ``[B, C]`` of encoded ``inputs`` (called in eval and inference mode)."""

    @abstractmethod
    def fit(self, train: Labeled, validation: Labeled, start: StreamModel | None) -> None:
        """Train ``network`` on ``train``, starting from ``start``'s state when given (the
        champion: a warm start) or from scratch; ``validation`` is held out (e.g. for early
        stopping). Runs on ``device``; leaves the network in eval mode."""

    def follow(self, held_out: Labeled) -> bool:
        """Learn new labels held out from `fit` and `update` (they judge the next round) in the
        parts of the model that follow the stream label by label, and nowhere else (not in
        what `rounds_logits` computes); True if the model changed. Optional: the default
        learns nothing from them."""
        return False

    def update(self, new: Labeled, replay: Labeled) -> bool:
        """Learn the ``new`` labels incrementally, in a few optimizer steps mixed with
        ``replay`` (a sample of older labels, so that what was learned is kept), on
        ``device``; True if the model changed. Optional: the default returns False, and such
        a model improves in full rounds (`fit`) only."""
        return False

    def rounds_logits(self, inputs: Any) -> torch.Tensor | None:
        """Logits ``[B, C]`` of the part of the model that learns in rounds, for a model that
        also follows the stream by itself (e.g. online parts blended in): the drift detectors
        watch this part, since a model that partly follows a change hides it from them, and a
        drift is what sends the rounds back to the new concept's labels. Optional: None (the
        default) means `logits` is that part."""
        return None

    def embed(self, inputs: Any) -> torch.Tensor:
        """A representation ``[B, H]`` of ``inputs``, for embedding-based scores and selectors
        (BADGE, k-center, SEALS, EGL). Optional: a model without it serves every other score."""
        raise NotImplementedError(f"{type(self).__name__} has no embed()")

    @property
    def has_embeddings(self) -> bool:
        """Whether the class implements `embed`."""
        return type(self).embed is not StreamModel.embed

    def stochastic_logits(self, inputs: Any, passes: int) -> torch.Tensor:
        """``passes`` forward passes ``[T, B, C]`` with the network's dropout switched on (the
        caller switches it on and off). Override it to batch the passes. (A `Committee` gives
        its K members' logits instead, whatever ``passes``.)"""
        return torch.stack([self.logits(inputs) for _ in range(passes)])

    def probe(self) -> Any | None:
        """Encoded input for the trial forward pass every loaded version must pass with finite
        logits; None skips the trial."""
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: the trained network's tensors."""
        return self.network.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Take a checkpoint's tensors (names and shapes must match)."""
        self.network.load_state_dict(state, strict=True)

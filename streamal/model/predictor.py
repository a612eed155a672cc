"""A model version ready to serve: probabilities, MC-dropout passes and embeddings of encoded
samples, in eval and inference mode; only dropout is switched on for the stochastic passes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from streamal.messages import Sample
from streamal.model.contract import Encoded, StreamModel


class Predictor:
    """``model`` in eval mode, tagged with its version.

    >>> from streamal.model.config import ModelConfig
    >>> from streamal.model.default import FeatureModel
    >>> config = ModelConfig(n_features=4, classes=["a", "b", "c"], hidden=[8], dropout=0.2)
    >>> predictor = Predictor(FeatureModel(config), version=0)
    >>> encoded = predictor.encode([Sample(id="x", features=[0, 0, 0, 0])] * 2)
    >>> probabilities = predictor.probabilities(encoded.inputs)
    >>> tuple(probabilities.shape), bool(torch.allclose(probabilities.sum(1), torch.ones(2)))
    ((2, 3), True)
    >>> tuple(predictor.stochastic(encoded.inputs, passes=5).shape)
    (5, 2, 3)
    """

    def __init__(self, model: StreamModel, version: int) -> None:
        self.model = model
        self.version = version
        self.classes = list(model.classes)
        self.device = model.device
        model.network.eval()
        self._dropouts = [
            m for m in model.network.modules() if isinstance(m, nn.modules.dropout._DropoutNd)
        ]

    @property
    def has_embeddings(self) -> bool:
        """Whether the model gives embeddings."""
        return self.model.has_embeddings

    def encode(self, samples: Sequence[Sample]) -> Encoded:
        """The model's input for ``samples``, with the ones it cannot read and why."""
        return self.model.encode(samples)

    @torch.inference_mode()
    def logits(self, inputs: Any) -> torch.Tensor:
        """Class logits [B, C] on the model's device."""
        return self.model.logits(inputs)

    @torch.inference_mode()
    def probabilities(self, inputs: Any) -> torch.Tensor:
        """Class probabilities [B, C] on the model's device."""
        return torch.softmax(self.model.logits(inputs), dim=-1)

    @torch.inference_mode()
    def stochastic(self, inputs: Any, passes: int) -> torch.Tensor:
        """``passes`` MC-dropout predictions [T, B, C]."""
        for dropout in self._dropouts:
            dropout.train()
        try:
            logits = self.model.stochastic_logits(inputs, passes)
        finally:
            for dropout in self._dropouts:
                dropout.eval()
        return torch.softmax(logits, dim=-1)

    @torch.inference_mode()
    def embeddings(self, inputs: Any) -> torch.Tensor:
        """The model's representation [B, H] (``TypeError`` if it has none)."""
        if not self.has_embeddings:
            raise TypeError(f"{type(self.model).__name__} gives no embeddings (no embed())")
        return self.model.embed(inputs)

"""Batched prediction with a torch module on its device: probabilities, MC-dropout passes,
embeddings. Everything runs in eval and inference mode; only dropout is switched on for the
stochastic passes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from streamal.model.config import ModelConfig
from streamal.model.mlp import MLP
from streamal.plugins import load_function


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when asked for, or when ``auto`` and a GPU is present; else the CPU."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def build_module(config: ModelConfig) -> nn.Module:
    """A fresh, untrained module: the user's (``model.module``) or the default MLP."""
    if config.module:
        make = load_function(config.module, "model.module")
        module = make(config.n_features, len(config.classes))
        if not isinstance(module, nn.Module):
            raise TypeError(f"{config.module} returned {type(module).__name__}, not a torch module")
        return module
    return MLP(config.n_features, len(config.classes), config.hidden, config.dropout)


class Predictor:
    """A module ready to serve: on ``device``, in eval mode, tagged with its version.

    >>> predictor = Predictor(MLP(4, 3, [8], 0.2), ["a", "b", "c"], version=0)
    >>> probabilities = predictor.probabilities(np.zeros((2, 4), dtype=np.float32))
    >>> tuple(probabilities.shape), bool(torch.allclose(probabilities.sum(1), torch.ones(2)))
    ((2, 3), True)
    >>> tuple(predictor.stochastic(np.zeros((2, 4), dtype=np.float32), passes=5).shape)
    (5, 2, 3)
    """

    def __init__(
        self,
        module: nn.Module,
        classes: list[str],
        version: int,
        device: torch.device | None = None,
    ) -> None:
        self.device = device or pick_device()
        self.module = module.to(self.device).eval()
        self.classes = list(classes)
        self.version = version
        self._dropouts = [
            m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)
        ]

    def _tensor(self, features: np.ndarray) -> torch.Tensor:
        tensor = torch.as_tensor(features, dtype=torch.float32)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    @torch.inference_mode()
    def logits(self, features: np.ndarray) -> torch.Tensor:
        """Class logits [B, C] on the model's device."""
        return self.module(self._tensor(features))

    @torch.inference_mode()
    def probabilities(self, features: np.ndarray) -> torch.Tensor:
        """Class probabilities [B, C] on the model's device."""
        return torch.softmax(self.logits(features), dim=-1)

    @torch.inference_mode()
    def stochastic(self, features: np.ndarray, passes: int) -> torch.Tensor:
        """``passes`` MC-dropout predictions [T, B, C], in one batched forward pass."""
        x = self._tensor(features)
        for dropout in self._dropouts:
            dropout.train()
        try:
            logits = self.module(x.repeat(passes, 1))
        finally:
            for dropout in self._dropouts:
                dropout.eval()
        return torch.softmax(logits, dim=-1).reshape(passes, x.shape[0], -1)

    @torch.inference_mode()
    def embeddings(self, features: np.ndarray) -> torch.Tensor:
        """The penultimate representation [B, H], for modules that define ``embed``."""
        embed = getattr(self.module, "embed", None)
        if embed is None:
            raise TypeError(f"{type(self.module).__name__} has no embed() method")
        return embed(self._tensor(features))

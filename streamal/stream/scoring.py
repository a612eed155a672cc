"""A model's class probabilities and a score's utilities for a feature matrix, in one pass;
and the check at start that the model gives the embeddings a strategy reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamal.errors import ConfigError
from streamal.model import Predictor
from streamal.strategies import Score


def check_embeddings(predictor: Predictor, needs: bool, field: str, name: str) -> None:
    """At start: a one-line `ConfigError` when ``name`` (the value of ``field``) ``needs``
    embeddings and the model's module has no ``embed()`` to give them."""
    if needs and not callable(getattr(predictor.module, "embed", None)):
        raise ConfigError(
            f"config error: {field}: {name} needs embeddings, but the model's module "
            f"({type(predictor.module).__name__}, see model.module) has no embed() method"
        )


def probabilities_and_utilities(
    predictor: Predictor, score: Score, matrix: np.ndarray, passes: int
) -> tuple[torch.Tensor, Any]:
    """Class probabilities [B, C] and utilities [B], both on the model's device.

    Runs ``passes`` MC-dropout passes only for the scores that need them, and the embeddings
    only for the scores that read them.
    """
    probabilities = predictor.probabilities(matrix)
    if score.needs_passes:
        return probabilities, score(predictor.stochastic(matrix, passes))
    if score.needs_embeddings:
        return probabilities, score(probabilities, embeddings=predictor.embeddings(matrix))
    return probabilities, score(probabilities)

"""A model's class probabilities and a score's utilities for encoded samples, in one pass; and
the check at start that the model gives the embeddings a strategy reads."""

from __future__ import annotations

from typing import Any

import torch

from streamal.errors import ConfigError
from streamal.model.committee import Committee
from streamal.model.default import FeatureModel
from streamal.model.predictor import Predictor
from streamal.strategies import Score


def check_embeddings(predictor: Predictor, needs: bool, field: str, name: str) -> None:
    """At start: a one-line `ConfigError` when ``name`` (the value of ``field``) ``needs``
    embeddings and the model has no ``embed()`` to give them."""
    if needs and not predictor.has_embeddings:
        model = predictor.model
        if isinstance(model, Committee):  # its members' kind is what lacks embed()
            model = model.members[0]
        if isinstance(model, FeatureModel):
            what = f"the model's module ({type(model.network).__name__}, see model.module)"
        else:
            what = f"the model ({type(model).__name__}, see model.factory)"
        raise ConfigError(
            f"config error: {field}: {name} needs embeddings, but {what} has no embed() method"
        )


def probabilities_and_utilities(
    predictor: Predictor, score: Score, inputs: Any, passes: int
) -> tuple[torch.Tensor, Any]:
    """Class probabilities [B, C] and utilities [B], both on the model's device.

    Runs ``passes`` MC-dropout passes only for the scores that need them, and the embeddings
    only for the scores that read them.
    """
    probabilities = predictor.probabilities(inputs)
    if score.needs_passes:
        return probabilities, score(predictor.stochastic(inputs, passes))
    if score.needs_embeddings:
        return probabilities, score(probabilities, embeddings=predictor.embeddings(inputs))
    return probabilities, score(probabilities)

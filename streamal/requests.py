"""Label requests from predictions: the one builder that serve and pool both use."""

from __future__ import annotations

from datetime import datetime

import torch

from streamal.messages import LabelProbability, LabelRequest, RequestReason, Sample


def top_guesses(
    probabilities: torch.Tensor, classes: list[str], k: int
) -> list[list[LabelProbability]]:
    """The ``k`` most probable classes of each row of ``probabilities`` [B, C], best first.

    >>> guesses = top_guesses(torch.tensor([[0.25, 0.75]]), ["a", "b"], k=5)
    >>> [(guess.label, guess.p) for guess in guesses[0]]
    [('b', 0.75), ('a', 0.25)]
    """
    top_p, top_i = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
    return [
        [LabelProbability(label=classes[i], p=p) for i, p in zip(indices, values, strict=True)]
        for indices, values in zip(top_i.tolist(), top_p.tolist(), strict=True)
    ]


def label_request(
    sample: Sample,
    guesses: list[LabelProbability],
    utility: float,
    reason: RequestReason,
    model_version: int,
    requested_at: datetime,
) -> LabelRequest:
    """Ask annotators about ``sample``: its features, payload and meta as they came (what the
    trainer learns from), with the model's top ``guesses``."""
    return LabelRequest(
        id=sample.id, features=sample.features, payload=sample.payload, meta=sample.meta,
        prediction=guesses, utility=utility, reason=reason,
        model_version=model_version, requested_at=requested_at,
    )  # fmt: skip

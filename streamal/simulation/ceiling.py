"""The all-labels ceiling: streamal's own model learning from every label as soon as it is seen.

Test-then-train, the peers' prequential protocol with no budget: each chunk of samples is
predicted first, then learned from, with the trainer's own recipe and cadence: a full round
(`fit`) once the new labels reach the labeled set's size (the first after
``train.first_round_labels``), or ``train.min_new_labels``; an incremental
`StreamModel.update` with replayed older labels in between; the trainer's drift detectors watch
every label, and a drift starts the labeled set over at the new concept's start, as in the
trainer. No serve, no annotator delay, no gates: what active learning at a budget is measured
against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.model import Labeled, Predictor, StreamModel, model_factory
from streamal.simulation.run import ROLLING, Options, rolling_mean, run_settings
from streamal.simulation.streams import LabeledStream
from streamal.training.drift import DriftMonitor
from streamal.training.fit import fit
from streamal.training.labels import Joined
from streamal.training.trainer import REPLAY_MIN, REPLAY_PER_NEW


def all_labels(
    base: Settings, stream: LabeledStream, options: Options | None = None, chunk: int = 30
) -> dict[str, Any]:
    """Prequential accuracy (over every sample), the final and the rolling accuracy, and
    whether each sample was predicted right and with what confidence, when every label is
    learned ``chunk`` samples after it came, with ``base`` shaped for ``stream`` as `simulate`
    shapes it."""
    options = options or Options()
    settings = run_settings(base, stream, Path("."), base.strategy.score, options)
    fresh, train = model_factory(settings.model), settings.train
    share, seed = train.validation_share, settings.strategy.seed
    n, model, concept, trained_on = len(stream.ids), None, 0, 0
    correct, confidences = np.zeros(n, dtype=bool), np.zeros(n)
    rng, drifts = np.random.default_rng(seed), DriftMonitor(train.drift)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        batch = Labeled(stream.samples(rows), stream.labels[rows])
        drifted = False
        if model is not None:
            predicted, confidence = _predicted(model, batch)
            correct[rows], confidences[rows] = predicted == batch.targets, confidence
            for row, guess, p in zip(rows.tolist(), predicted, confidence.tolist(), strict=True):
                label, guessed = stream.classes[stream.labels[row]], stream.classes[guess]
                answer = Joined(
                    stream.ids[row], label, guessed, p, 0.0, "explore", row, model_version=1
                )
                found = drifts.update(answer)
                if found:  # the new concept starts after the earliest point a detector saw
                    concept, drifted = max(concept, min(found.values()) + 1), True
        seen = int(rows[-1]) + 1
        labeled = seen - concept
        growth = max(train.first_round_labels, trained_on)
        if model is None or drifted or labeled - trained_on >= min(growth, train.min_new_labels):
            span = range(concept, seen)
            result = fit(fresh, Labeled(stream.samples(span), stream.labels[concept:seen]),
                         share, model, seed)  # fmt: skip
            if result is not None and (drifted or result.better_or_equal):
                model = result.challenger
                drifts.rearm()
            trained_on = labeled
        else:
            old = concept + rng.permutation(start - concept)
            old = old[: max(REPLAY_MIN, REPLAY_PER_NEW * len(rows))]
            replay = Labeled(stream.samples(old), stream.labels[old])
            torch.manual_seed(seed + seen)
            model.update(batch, replay)
            drifts.rearm()
    return {
        "prequential_accuracy": round(float(correct.mean()), 4),
        "final_accuracy": round(float(correct[-min(ROLLING * 2, n) :].mean()), 4),
        "rolling": rolling_mean(correct, ROLLING),
        "correct": correct,
        "confidence": confidences,
    }


def _predicted(model: StreamModel, batch: Labeled) -> tuple[np.ndarray, np.ndarray]:
    """The class index the model predicts for each sample, and its probability."""
    predictor = Predictor(model, 0)
    encoded = predictor.encode(batch.samples)
    if encoded.rejected:  # the generated streams always fit their model
        raise ValueError(f"the model cannot read the stream: {encoded.rejected[0][1]}")
    probabilities = torch.softmax(predictor.logits(encoded.inputs), 1)
    top = probabilities.max(dim=1)
    return top.indices.cpu().numpy(), top.values.double().cpu().numpy()

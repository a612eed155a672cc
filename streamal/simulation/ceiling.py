"""The all-labels ceiling: streamal's own model learning from every label as soon as it is seen.

Test-then-train, the peers' prequential protocol with no budget: each chunk of samples is
predicted first, then learned from, with the trainer's own recipe and cadence: a full round
(`fit`) once the new labels reach the labeled set's size (the first after
``train.first_round_labels``), or ``train.min_new_labels``; an incremental
`StreamModel.update` with replayed older labels in between. No serve, no annotator delay, no
gates: what active learning at a budget is measured against.
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
from streamal.training.fit import fit
from streamal.training.trainer import REPLAY_MIN, REPLAY_PER_NEW


def all_labels(
    base: Settings, stream: LabeledStream, options: Options | None = None, chunk: int = 30
) -> dict[str, Any]:
    """Prequential accuracy (over every sample), the final and the rolling accuracy when every
    label is learned ``chunk`` samples after it came, with ``base`` shaped for ``stream`` as
    `simulate` shapes it."""
    options = options or Options()
    settings = run_settings(base, stream, Path("."), base.strategy.score, options)
    fresh, train = model_factory(settings.model), settings.train
    share, seed = train.validation_share, settings.strategy.seed
    n, model, trained_on = len(stream.ids), None, 0
    correct = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        batch = Labeled(stream.samples(rows), stream.labels[rows])
        if model is not None:
            correct[rows] = _predicted(model, batch) == batch.targets
        seen = int(rows[-1]) + 1
        growth = max(train.first_round_labels, trained_on)
        if model is None or seen - trained_on >= min(growth, train.min_new_labels):
            everything = Labeled(stream.samples(range(seen)), stream.labels[:seen])
            result = fit(fresh, everything, share, model, seed)
            if result is not None and result.better_or_equal:
                model = result.challenger
            trained_on = seen
        else:
            old = rng.permutation(start)[: max(REPLAY_MIN, REPLAY_PER_NEW * len(rows))]
            replay = Labeled(stream.samples(old), stream.labels[old])
            torch.manual_seed(seed + seen)
            model.update(batch, replay)
    return {
        "prequential_accuracy": round(float(correct.mean()), 4),
        "final_accuracy": round(float(correct[-min(ROLLING * 2, n) :].mean()), 4),
        "rolling": rolling_mean(correct, ROLLING),
    }


def _predicted(model: StreamModel, batch: Labeled) -> np.ndarray:
    predictor = Predictor(model, 0)
    encoded = predictor.encode(batch.samples)
    predicted = np.full(len(batch), -1)
    predicted[encoded.kept] = predictor.logits(encoded.inputs).argmax(1).cpu().numpy()
    return predicted

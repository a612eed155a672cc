"""The all-labels ceiling learns every label as it comes, with the trainer's own recipe."""

from __future__ import annotations

import numpy as np

from streamal.config import Settings
from streamal.simulation.ceiling import all_labels
from streamal.simulation.streams import gaussian_classes


def test_the_ceiling_learns_each_label_after_predicting_it_and_is_reproducible() -> None:
    stream = gaussian_classes(1200, n_features=4, n_classes=3, spread=1.0, seed=7)
    first, again = (all_labels(Settings(), stream, chunk=40) for _ in range(2))
    assert first["prequential_accuracy"] == again["prequential_accuracy"]
    rolling = first["rolling"]
    assert len(rolling) == 1200 and rolling[39] == 0.0  # the first chunk: no model yet
    # the reference: nearest class mean, fitted on the whole stream and scored on it (the
    # stream's Gaussian classes make it about the best one can do)
    x, y = stream.features, stream.labels
    means = np.stack([x[y == k].mean(axis=0) for k in range(3)])
    reference = float((((x[:, None] - means) ** 2).sum(-1).argmin(1) == y).mean())
    assert first["final_accuracy"] >= reference - 0.03  # learned as it came, never shown ahead

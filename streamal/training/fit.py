"""One training round: a fresh challenger trains on the labeled set (warm-started from the
champion by the model's own `fit`), and both are compared on the same held-out labels."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from streamal.model import Labeled, ModelFactory, Predictor, StreamModel

log = logging.getLogger(__name__)

MIN_HELD_OUT = 5


@dataclass
class FitResult:
    """The challenger and how it and the champion did on the held-out labels."""

    challenger: StreamModel
    accuracy: float
    champion_accuracy: float | None
    train_size: int
    validation_size: int
    learned_held_out: bool = False
    """Whether the challenger learned from every label, the held-out ones too (a few labels):
    as champion, it cannot be judged on them."""

    @property
    def better_or_equal(self) -> bool:
        """Whether the challenger may replace the champion (champion / challenger rule)."""
        return self.champion_accuracy is None or self.accuracy >= self.champion_accuracy


def held_out(ids: list[str], share: float) -> np.ndarray:
    """A stable validation mask: an id is held out by its hash, whatever the round.

    >>> held_out(["a", "b", "c", "d"], 0.5).tolist() == held_out(["a", "b", "c", "d"], 0.5).tolist()
    True
    """
    cut = int(share * 1000)
    return np.array([zlib.crc32(i.encode()) % 1000 < cut for i in ids], dtype=bool)


def accuracy(model: StreamModel, labeled: Labeled, judged: bool = False) -> float:
    """Share of ``labeled`` the model predicts (of the samples it reads); ``judged``: the
    share its part that learns in rounds predicts (`StreamModel.rounds_logits`, when it has
    one), the part the held-out labels judge: its other parts learned them
    (`StreamModel.follow`)."""
    predictor = Predictor(model, 0)
    encoded = predictor.encode(labeled.samples)
    logits = rounds_logits(model, encoded.inputs) if judged else None
    if logits is None:
        logits = predictor.logits(encoded.inputs)
    predicted = logits.argmax(1).cpu().numpy()
    return float((predicted == labeled.targets[encoded.kept]).mean()) if encoded.kept else 0.0


def rounds_logits(model: StreamModel, inputs: object) -> torch.Tensor | None:
    """The logits of ``model``'s part that learns in rounds on encoded ``inputs``, without
    gradients (None: the model has no such part, see `StreamModel.rounds_logits`)."""
    with torch.inference_mode():
        return model.rounds_logits(inputs)


def warm_up() -> None:
    """Pay torch's one-time optimizer set-up now (the first optimizer imports its compiler
    stack: 1-2 s on a small CPU) rather than in the first round, which serving waits for."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def fit(
    fresh: ModelFactory,
    labeled: Labeled,
    validation_share: float,
    champion: StreamModel | None,
    seed: int = 0,
) -> FitResult | None:
    """Train a challenger (a ``fresh()`` model) on ``labeled`` but for the held-out share
    (`held_out`); None without labels. While fewer than `MIN_HELD_OUT` labels would be held
    out, the challenger learns from all of them and is judged (with the champion) on them too:
    so few cannot tell two models apart, and the first models come after a few labels.

    Samples the model cannot read (stored before the model changed, say) are skipped with a
    log line: the model's ``fit`` sees only samples its ``encode`` accepts.
    """
    torch.manual_seed(seed)
    challenger = fresh()
    labeled = _readable(challenger, labeled)
    if not len(labeled):
        return None
    validation = held_out([s.id for s in labeled.samples], validation_share)
    learned_all = bool(validation.sum() < MIN_HELD_OUT or validation.all())
    if learned_all:  # a few labels: learn from all
        train_part = validation_part = labeled
    else:
        train_part, validation_part = _split(labeled, ~validation), _split(labeled, validation)
    challenger.fit(train_part, validation_part, champion)
    challenger.network.eval()
    return FitResult(
        challenger=challenger,
        accuracy=accuracy(challenger, validation_part, judged=True),
        champion_accuracy=(
            None if champion is None else accuracy(champion, validation_part, judged=True)
        ),
        train_size=len(train_part),
        validation_size=len(validation_part),
        learned_held_out=learned_all,
    )


def _readable(model: StreamModel, labeled: Labeled) -> Labeled:
    rejected = model.encode(labeled.samples).rejected
    if not rejected:
        return labeled
    index, reason = rejected[0]
    log.warning(
        "skipped %d labeled samples the model cannot read, e.g. %r: %s",
        len(rejected), labeled.samples[index].id, reason,
    )  # fmt: skip
    keep = np.ones(len(labeled), dtype=bool)
    keep[[i for i, _ in rejected]] = False
    return _split(labeled, keep)


def _split(labeled: Labeled, mask: np.ndarray) -> Labeled:
    samples = [sample for sample, keep in zip(labeled.samples, mask, strict=True) if keep]
    arrival = np.flatnonzero(mask) if labeled.arrival is None else labeled.arrival[mask]
    return Labeled(samples, labeled.targets[mask], arrival)

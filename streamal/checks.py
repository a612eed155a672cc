"""The contract check suite: run any model through everything streamal does with it.

Like river's estimator checks, one call tests a model implementation (the default model, a
user's ``model.module`` or ``model.featurizer``, or a user's `StreamModel` from
``model.factory``) on samples and labels the user provides::

    from streamal.checks import check_model
    check_model(ModelConfig(factory="mypkg.models:make", classes=[...]), samples, labels)

The last fifth of the samples is held out. The model must read every sample, give finite
logits, MC-dropout passes and (if it has ``embed``) embeddings of the right shapes, learn
better than always answering the most frequent class, keep what it learned through a warm
start, survive a checkpoint round trip through the model store and the verifying loader, and
then run the whole loop on the embedded transport: serve -> simulated annotator -> train ->
hot swap, within the label budget; finally pool mode selects from the held-out samples with
the newest version (with BADGE when the model gives embeddings).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from streamal.config import Settings
from streamal.messages import Sample
from streamal.model import Committee, Labeled, ModelConfig, ModelLoader, Predictor, StreamModel
from streamal.pool.job import Pool, select, selector_for
from streamal.simulation.run import Options, simulate
from streamal.simulation.streams import LabeledStream
from streamal.strategies import PoolConfig
from streamal.training.fit import FitResult, accuracy, fit

HELD_OUT = 0.2
MARGIN = 0.05  # over always answering the most frequent class
PASSES = 4
PICKS = 10


class ModelCheckError(AssertionError):
    """A model failed checks of the suite; the message lists each failure."""


@dataclass
class Check:
    """One check's outcome; ``detail`` says what was measured, or why it failed."""

    name: str
    passed: bool
    detail: str


@dataclass
class _Context:
    settings: Settings
    stream: list[Sample]
    stream_labels: np.ndarray
    test: list[Sample]
    test_labels: np.ndarray
    workdir: Path
    budget: float
    seed: int
    trained: FitResult | None = None
    results: list[Check] = field(default_factory=list)

    @property
    def loader(self) -> ModelLoader:
        return ModelLoader(self.settings.model, self.seed)

    @property
    def baseline(self) -> float:
        """Accuracy of always answering the most frequent class of the held-out samples."""
        return float(np.bincount(self.test_labels).max() / len(self.test_labels))


def check_model(
    model: ModelConfig | Settings,
    samples: Sequence[Sample],
    labels: Sequence[str],
    *,
    budget: float = 0.2,
    seed: int = 0,
    workdir: Path | None = None,
) -> list[Check]:
    """Run every check on the model ``model`` describes (a `ModelConfig`, or whole `Settings`
    whose strategy is used too), with ``samples`` and their ``labels`` (in stream order, at
    least a few hundred). Raises `ModelCheckError` listing the failures; returns the checks.
    """
    settings = model if isinstance(model, Settings) else Settings(model=model)
    if len(samples) != len(labels) or len(samples) < 50:
        raise ValueError("check_model needs at least 50 samples, each with its label")
    unknown = sorted(set(labels) - set(settings.model.classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among model.classes")
    index = {name: i for i, name in enumerate(settings.model.classes)}
    targets = np.array([index[label] for label in labels], dtype=np.int64)
    cut = len(samples) - max(1, int(len(samples) * HELD_OUT))
    with tempfile.TemporaryDirectory() as scratch:
        context = _Context(
            settings, list(samples[:cut]), targets[:cut], list(samples[cut:]), targets[cut:],
            workdir or Path(scratch), budget, seed,
        )  # fmt: skip
        for name, run in CHECKS:
            try:
                passed, detail = run(context)
            except Exception as error:  # the model's code may raise anything: a failed check
                passed, detail = False, f"{type(error).__name__}: {error}"
            context.results.append(Check(name, passed, detail))
    failed = [check for check in context.results if not check.passed]
    if failed:
        raise ModelCheckError("; ".join(f"{check.name}: {check.detail}" for check in failed))
    return context.results


def _reads_every_sample(context: _Context) -> tuple[bool, str]:
    model = context.loader.fresh()
    rejected = model.encode(context.stream + context.test).rejected
    if rejected:
        index, reason = rejected[0]
        return False, f"rejected {len(rejected)} samples, e.g. {index}: {reason}"
    return True, f"read {len(context.stream) + len(context.test)} samples"


def _predicts(context: _Context) -> tuple[bool, str]:
    predictor = context.loader.untrained()
    inputs = predictor.encode(context.test).inputs
    logits = predictor.logits(inputs)
    shape = (len(context.test), len(predictor.classes))
    if tuple(logits.shape) != shape or not bool(torch.isfinite(logits).all()):
        return False, f"logits of shape {tuple(logits.shape)} (expected {shape}), or not finite"
    passes = predictor.stochastic(inputs, PASSES)
    votes = len(model.members) if isinstance(model := predictor.model, Committee) else PASSES
    if tuple(passes.shape) != (votes, *shape) or not bool(torch.isfinite(passes).all()):
        return False, f"MC-dropout passes of shape {tuple(passes.shape)} or not finite"
    if not predictor.has_embeddings:
        return True, "logits and passes; no embed(): embedding-based scores are refused"
    embeddings = predictor.embeddings(inputs)
    if embeddings.ndim != 2 or embeddings.shape[0] != shape[0]:
        return False, f"embeddings of shape {tuple(embeddings.shape)} (expected [B, H])"
    return True, f"logits, passes and embeddings of width {embeddings.shape[1]}"


def _learns(context: _Context) -> tuple[bool, str]:
    labeled = Labeled(context.stream, context.stream_labels)
    context.trained = fit(context.loader.fresh, labeled, HELD_OUT, None, context.seed)
    if context.trained is None:
        return False, "too few samples to hold some out for validation"
    reached = accuracy(context.trained.challenger, Labeled(context.test, context.test_labels))
    bar = context.baseline + MARGIN
    return reached >= bar, f"accuracy {reached:.3f} on held-out samples (bar {bar:.3f})"


def _warm_starts(context: _Context) -> tuple[bool, str]:
    if context.trained is None:
        return False, "nothing learned to start from"
    held_out = Labeled(context.test, context.test_labels)
    before = accuracy(context.trained.challenger, held_out)
    labeled = Labeled(context.stream, context.stream_labels)
    again = fit(context.loader.fresh, labeled, HELD_OUT, context.trained.challenger, context.seed)
    after = 0.0 if again is None else accuracy(again.challenger, held_out)
    bar = before - MARGIN
    return after >= bar, f"accuracy {before:.3f} -> {after:.3f} from a warm start (bar {bar:.3f})"


def _checkpoints(context: _Context) -> tuple[bool, str]:
    if context.trained is None:
        return False, "nothing learned to store"
    loader = ModelLoader(
        context.settings.model.model_copy(update={"store": context.workdir / "checked"}),
        context.seed,
    )
    model: StreamModel = context.trained.challenger
    checkpoint = loader.store.save(model.state_dict(), list(model.classes))
    loaded = loader.load(checkpoint)
    original = Predictor(model, 0)
    inputs = original.encode(context.test).inputs
    same = torch.allclose(original.logits(inputs), loaded.logits(inputs), atol=1e-5)
    size = loader.store.weights_path(checkpoint.version).stat().st_size
    return same, f"{size:,} bytes, {'the same' if same else 'other'} logits after loading"


def _runs_the_loop(context: _Context) -> tuple[bool, str]:
    stream = LabeledStream.of_samples(
        context.stream,
        [context.settings.model.classes[i] for i in context.stream_labels],
        context.settings.model.classes,
    )
    expected_labels = context.budget * len(context.stream)
    options = Options(
        budget=context.budget, seed=context.seed, own_model=True,
        min_new_labels=max(10, int(expected_labels / 6)),
    )  # fmt: skip
    report = simulate(
        context.settings, stream, "check", "margin", context.workdir / "loop", options
    )
    rate = report["label_rate"]
    detail = (
        f"{report['model_versions']} versions hot-swapped in, label rate {rate:.3f} at budget "
        f"{context.budget:g}, final accuracy {report['final_accuracy']:.3f}"
    )
    served = report["model_versions"] >= 1 and report["model_swaps"]
    return bool(served) and rate <= 1.5 * context.budget, detail


def _selects_from_a_pool(context: _Context) -> tuple[bool, str]:
    settings = context.settings
    loop = settings.model.model_copy(update={"store": context.workdir / "loop" / "models"})
    newest = ModelLoader(loop, context.seed).newest()
    if newest is None:
        return False, "the loop stored no model to select with"
    predictor = newest[1]
    diversity = "badge" if predictor.has_embeddings else "none"
    selector = selector_for(PoolConfig(score="margin", diversity=diversity), predictor)
    pool = Pool([sample.id for sample in context.test], context.test)
    picks = min(PICKS, len(context.test))
    selection = select(settings, pool, picks, selector, predictor)
    distinct = len({int(i) for i in selection.indices})
    return distinct == picks, f"{distinct} distinct picks of {picks} with margin + {diversity}"


CHECKS: list[tuple[str, Callable[[_Context], tuple[bool, str]]]] = [
    ("reads every sample", _reads_every_sample),
    ("predicts", _predicts),
    ("learns", _learns),
    ("warm-starts", _warm_starts),
    ("checkpoints", _checkpoints),
    ("runs the loop", _runs_the_loop),
    ("selects from a pool", _selects_from_a_pool),
]

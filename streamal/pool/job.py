"""``streamal pool select``: pick the most informative items of a stored pool.

The pool is a JSONL file of Samples or an ``.npz`` with ``ids`` and ``features``. It is scored
in chunks with the same model and strategy module as ``serve``; the picks (with their utility
and rank) are written to a JSONL or CSV file, and optionally sent to annotators as
LabelRequests on the usual topic.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.errors import ConfigError, MessageError, ModelError, StreamalError
from streamal.messages import Sample, decode, encode, now
from streamal.model import ModelLoader, Predictor
from streamal.model.features import FeatureRows
from streamal.model.scoring import check_embeddings
from streamal.pool.subsample import subsample
from streamal.requests import label_request, top_guesses
from streamal.strategies import PoolConfig, PoolSelector, build_selector
from streamal.training.stopping import StoppingMonitor, stop_set_view
from streamal.transport import Record, open_transport, topic_specs

CHUNK = 65_536
Progress = Callable[[int, int], None]


class PoolError(StreamalError):
    """The pool file or the selection request is unusable; the message says why."""


class NoModel(PoolError):
    """No trained model to select with (none stored, or no labels to train a proxy on)."""


@dataclass
class Pool:
    """The items to choose from: their ids and samples."""

    ids: list[str]
    samples: Sequence[Sample]

    def take(self, rows: np.ndarray) -> Pool:
        """The items at positions ``rows``."""
        samples = self.samples
        taken = (
            samples.take(rows) if isinstance(samples, FeatureRows) else [samples[i] for i in rows]
        )
        return Pool([self.ids[i] for i in rows], taken)


def read_pool(path: Path) -> Pool:
    """A pool from ``.jsonl`` (Samples) or ``.npz`` (``ids`` and ``features``)."""
    if not path.exists():
        raise PoolError(f"{path}: no such file")
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    raise PoolError(f"{path}: unknown pool format {path.suffix!r}; use .jsonl (Samples) or .npz")


def _read_npz(path: Path) -> Pool:
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, features = data["ids"], data["features"]
    except KeyError as missing:
        raise PoolError(
            f"{path}: an .npz pool needs arrays 'ids' and 'features' ({missing})"
        ) from None
    except (ValueError, OSError) as error:
        raise PoolError(f"{path}: not a readable .npz file ({error})") from None
    if features.ndim != 2 or len(ids) != len(features):
        raise PoolError(
            f"{path}: features must be [N, n_features] with one id each "
            f"(got {features.shape} and {len(ids)} ids)"
        )
    if not np.isfinite(features).all():
        raise PoolError(f"{path}: features must be finite numbers")
    ids = [str(i) for i in ids]
    return Pool(ids, FeatureRows(ids, features.astype(np.float32, copy=False)))


def _read_jsonl(path: Path) -> Pool:
    samples: list[Sample] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                samples.append(decode(Sample, line))
            except MessageError as error:
                raise PoolError(f"{path}: line {number}: {error}") from None
    return Pool([s.id for s in samples], samples)


def load_model(settings: Settings, which: str) -> Predictor:
    """The newest stored version that verifies (``latest``), or the checkpoint file at ``which``;
    either verified by `ModelLoader`."""
    loader = ModelLoader(settings.model, settings.strategy.seed)
    if which != "latest":
        return loader.load_file(Path(which))
    newest = loader.newest()
    if newest is None:
        raise NoModel(
            f"no usable model in {settings.model.store} (none stored, or none verifies); "
            "train one or pass --model PATH"
        )
    return newest[1]


def selector_for(config: PoolConfig, predictor: Predictor) -> PoolSelector:
    """The selector ``config`` describes, checked at start: a user's score or selector loads,
    and the model gives the embeddings they read."""
    selector = build_selector(config)
    check_embeddings(predictor, selector.score.needs_embeddings, "--strategy", config.score)
    check_embeddings(predictor, selector.rule.needs_embeddings, "--diversity", config.diversity)
    return selector


def encoded(predictor: Predictor, samples: Sequence[Sample]) -> Any:
    """The model's input for ``samples``; a `PoolError` naming the first it cannot read."""
    result = predictor.encode(samples)
    if result.rejected:
        index, reason = result.rejected[0]
        raise PoolError(f"sample {samples[index].id!r}: {reason}")
    return result.inputs


def predict_pool(
    predictor: Predictor,
    samples: Sequence[Sample],
    passes: int | None,
    embed: bool,
    progress: Progress | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probabilities (``[N, C]``, or ``[T, N, C]`` with passes) and, if ``embed``, embeddings,
    in chunks."""
    probabilities, embeddings = [], []
    for start in range(0, len(samples), CHUNK):
        chunk = encoded(predictor, samples[start : start + CHUNK])
        if passes:
            probabilities.append(predictor.stochastic(chunk, passes).cpu())
        else:
            probabilities.append(predictor.probabilities(chunk).cpu())
        if embed:
            embeddings.append(predictor.embeddings(chunk).cpu())
        if progress:
            progress(min(start + CHUNK, len(samples)), len(samples))
    return (
        torch.cat(probabilities, dim=1 if passes else 0),
        torch.cat(embeddings) if embed else None,
    )


def drawn(pool: Pool, config: PoolConfig) -> tuple[np.ndarray, Pool]:
    """The positions and items of ``pool`` a selection scores: ``config.subsample`` of them
    drawn at random, or all."""
    rows = np.arange(len(pool.ids))
    if config.subsample is None or config.subsample >= len(rows):
        return rows, pool
    rows = subsample(len(rows), config.subsample, seed=config.seed)
    return rows, pool.take(rows)


@dataclass
class Selection:
    """The picked pool positions, in picking order, with their utilities."""

    indices: np.ndarray
    utilities: np.ndarray
    seconds: float


def select(
    settings: Settings,
    pool: Pool,
    budget: int,
    selector: PoolSelector,
    predictor: Predictor,
    labeled: Sequence[Sample] | None = None,
    progress: Progress | None = None,
) -> Selection:
    """Score ``pool`` (or ``selector.config.subsample`` of its items, drawn at random) and pick
    ``budget`` items with ``selector`` (see `selector_for`); the embeddings are computed only
    when the selector reads them."""
    if budget < 1:
        raise PoolError(f"--budget must be >= 1 (got {budget})")
    started = time.perf_counter()
    config, embed = selector.config, selector.needs_embeddings
    rows, pool = drawn(pool, config)
    check_pool_limit(selector, len(pool.ids), len(predictor.classes))
    passes = config.mc_passes if selector.score.needs_passes else None
    probabilities, embeddings = predict_pool(predictor, pool.samples, passes, embed, progress)
    labeled_embeddings = None
    if labeled:
        labeled_embeddings = (
            predictor.embeddings(encoded(predictor, labeled)).cpu() if embed else None
        )
    elif config.diversity == "seals":
        raise PoolError("diversity seals needs labeled items: none are in the label store yet")
    try:
        picked = selector(
            min(budget, len(pool.ids)), probs=probabilities, embeddings=embeddings,
            labeled=labeled_embeddings,
        )  # fmt: skip
    except ValueError as error:
        raise PoolError(str(error)) from None
    utilities = selector.utilities(probabilities, embeddings)
    values = np.asarray(torch.as_tensor(utilities).double())[picked]
    return Selection(rows[picked], values, time.perf_counter() - started)


def stopping(settings: Settings, pool: Pool, labels: int) -> StoppingMonitor:
    """The stopping rules over the training rounds in the model store (the versions published
    by a round, oldest first), with a fixed random sample of ``pool`` as the stop set (the
    newest ``train.stopping.rounds + 1`` round versions predict it) and ``labels`` spent; a
    version that does not verify gives no predictions."""
    config = settings.train.stopping
    loader = ModelLoader(settings.model, settings.strategy.seed)
    rounds = [c for c in loader.store.checkpoints() if "accuracy" in c.metrics]
    draws = np.random.default_rng(settings.strategy.seed)
    rows = draws.choice(len(pool.ids), min(config.stop_set, len(pool.ids)), replace=False)
    stop_set = [pool.samples[int(i)] for i in sorted(rows)]
    monitor = StoppingMonitor(config)
    for n, checkpoint in enumerate(rounds):
        view = None
        if n >= len(rounds) - config.rounds - 1:
            try:
                view = stop_set_view(loader.load(checkpoint), stop_set)
            except ModelError:  # a version that does not verify shows nothing (breaks the run)
                view = None
        monitor.observe(0, labels, checkpoint.metrics["accuracy"], view)
    return monitor


def check_pool_limit(selector: PoolSelector, items: int, classes: int) -> None:
    """A one-line `PoolError` if the score takes no pool of ``items`` x ``classes``."""
    score = selector.score
    if (why := score.refuses(items, classes)) is not None and score.pool_limit is not None:
        raise PoolError(
            f"--strategy {why}: pass --subsample {score.pool_limit // classes} or use a "
            "cheaper --strategy"
        )


def write_selection(path: Path, pool: Pool, selection: Selection) -> None:
    """``id``, ``utility`` and ``rank`` per pick, as JSONL or CSV by the file's extension."""
    rows = [
        (pool.ids[i], float(u), rank)
        for rank, (i, u) in enumerate(zip(selection.indices, selection.utilities, strict=True), 1)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "utility", "rank"])
            writer.writerows(rows)
    elif path.suffix in (".jsonl", ".ndjson"):
        with path.open("w") as out:
            for sample_id, utility, rank in rows:
                out.write(json.dumps({"id": sample_id, "utility": utility, "rank": rank}) + "\n")
    else:
        raise ConfigError(f"--output {path}: use a .jsonl or .csv file")


def send_to_annotators(
    settings: Settings, pool: Pool, selection: Selection, predictor: Predictor
) -> int:
    """Produce a LabelRequest per pick on the label-requests topic; how many."""
    picked = [pool.samples[int(i)] for i in selection.indices]
    probabilities = predictor.probabilities(encoded(predictor, picked)).cpu()
    guesses = top_guesses(probabilities, predictor.classes, settings.serve.top_k)
    at, topic = now(), settings.topics.label_requests
    with open_transport(settings) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
        for sample, guess, utility in zip(picked, guesses, selection.utilities, strict=True):
            request = label_request(
                sample, guess, float(utility), "uncertain", predictor.version, at
            )
            transport.produce(Record(topic, encode(request), key=sample.id.encode()))
    return len(picked)


def print_progress(done: int, total: int) -> None:
    """A progress line on a terminal's stderr."""
    if sys.stderr.isatty():
        width = 30
        filled = int(width * done / max(total, 1))
        print(f"\rscoring [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}",
              end="" if done < total else "\n", file=sys.stderr, flush=True)  # fmt: skip

"""Diverse cold start of a pool selection: while there is no trained model, or some class has
no label yet, the first requests cover the pool instead of trusting a model that cannot know.

The picks are greedy k-center (by default: a rare class that sits apart is found first) or
k-means++ draws (seldom an outlier) over the pool's coordinates: the model's input rows,
standardized robustly (median and interquartile range of the pool), or the model's embeddings
when its input is not a feature matrix. Labeled items count as picked
already, so each round covers what the labels do not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from streamal.messages import Sample
from streamal.model import Predictor
from streamal.model.scaling import robust_scaling
from streamal.pool.distances import squared_distances
from streamal.pool.job import CHUNK, Pool, PoolError, Selection, drawn, encoded
from streamal.pool.kcenter import k_center
from streamal.pool.kmeanspp import k_means_pp
from streamal.strategies import PoolConfig

__all__ = ["cold_reason", "coordinates", "select_cold"]


def cold_reason(trained: bool, labels: Sequence[str], classes: Sequence[str]) -> str | None:
    """Why a selection starts cold, or None when it need not: no trained model, or ``labels``
    (the label store's; none known: a model trained elsewhere is trusted) lack a class.

    >>> cold_reason(False, [], ["a", "b"])
    'no trained model yet'
    >>> cold_reason(True, ["a", "a"], ["a", "b", "c"])
    'no label of class b, c yet'
    >>> cold_reason(True, ["b", "a"], ["a", "b"]) is None, cold_reason(True, [], ["a"]) is None
    (True, True)
    """
    if not trained:
        return "no trained model yet"
    seen = set(labels)
    missing = [name for name in classes if name not in seen]
    return f"no label of class {', '.join(missing)} yet" if seen and missing else None


def coordinates(
    predictor: Predictor, samples: Sequence[Sample], scaling: tuple[np.ndarray, np.ndarray]
) -> torch.Tensor:
    """Where the cold start measures distances (see the module), ``[N, D]`` on the CPU;
    ``scaling`` is the center and scale of the pool's input columns (`input_scaling`)."""
    parts = []
    for start in range(0, len(samples), CHUNK):
        inputs = encoded(predictor, samples[start : start + CHUNK])
        if _is_matrix(inputs):
            center, scale = (torch.as_tensor(v, device=inputs.device) for v in scaling)
            parts.append(((inputs - center) / scale).float().cpu())
        else:
            parts.append(predictor.embeddings(inputs).float().cpu())
    return torch.cat(parts)


def _is_matrix(inputs: object) -> bool:
    return isinstance(inputs, torch.Tensor) and inputs.ndim == 2 and inputs.is_floating_point()


def input_scaling(predictor: Predictor, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """The robust center and scale of the model's input columns over ``samples`` (a pool), for
    a model whose input is a feature matrix; a one-line `PoolError` for a model that has
    neither such input nor embeddings."""
    inputs = encoded(predictor, samples[:1])
    if not _is_matrix(inputs):
        if predictor.has_embeddings:
            return np.zeros(1, np.float32), np.ones(1, np.float32)  # unused: embeddings
        raise PoolError(
            "a cold start covers the pool in the model's input rows or embeddings: this model's "
            "input is no feature matrix and it has no embed(); pass --cold-start off"
        )
    sample = samples[:: max(1, len(samples) // 100_000)]  # a strided sample sets the scale
    return robust_scaling(encoded(predictor, sample).cpu().numpy())


def select_cold(
    pool: Pool,
    budget: int,
    config: PoolConfig,
    predictor: Predictor,
    labeled: Sequence[Sample] | None,
) -> Selection:
    """Pick ``budget`` items of ``pool`` (or of its ``config.subsample``) that cover it, with
    ``config.cold_start``; the utility of a pick is its distance to the nearest other pick or
    labeled item."""
    if budget < 1:
        raise PoolError(f"--budget must be >= 1 (got {budget})")
    started = time.perf_counter()
    rows, pool = drawn(pool, config)
    scaling = input_scaling(predictor, pool.samples)
    points = coordinates(predictor, pool.samples, scaling)
    centers = coordinates(predictor, labeled, scaling) if labeled else None
    pick = k_center if config.cold_start == "kcenter" else k_means_pp
    picked = pick(
        points, min(budget, len(points)), centers=centers, seed=config.seed,
        chunk_elements=config.chunk_elements,
    )  # fmt: skip
    spread = _spread(points[torch.as_tensor(picked)], centers)
    return Selection(rows[picked], spread, time.perf_counter() - started)


def _spread(picks: torch.Tensor, centers: torch.Tensor | None) -> np.ndarray:
    """Each pick's distance to the nearest other pick or center (0 for a lone pick).

    >>> _spread(torch.tensor([[0.0], [3.0]]), torch.tensor([[1.0]])).tolist()
    [1.0, 2.0]
    """
    distances = squared_distances(picks, picks).fill_diagonal_(torch.inf)
    if centers is not None:
        distances = torch.cat([distances, squared_distances(picks, centers)], dim=1)
    nearest = distances.amin(dim=1) if distances.shape[1] else torch.zeros(len(picks))
    return np.asarray(nearest.nan_to_num(posinf=0.0).sqrt().double())

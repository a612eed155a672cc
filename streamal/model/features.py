"""Samples to the default model's feature matrix: ``features`` as given, or a user's
featurizer over ``payload``.

A sample that cannot become a row of finite floats of the model's width is rejected with a
one-line reason, and the rest of the batch goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from streamal.errors import first_line
from streamal.messages import Sample
from streamal.model.config import ModelConfig
from streamal.plugins import load_function
from streamal.validation import printable

NO_FEATURIZER = "payload given but no featurizer configured (model.featurizer)"


@dataclass
class Featurized:
    """Rows of ``matrix`` belong to the samples at ``kept`` (indices into the input)."""

    matrix: np.ndarray
    kept: list[int]
    rejected: list[tuple[int, str]] = field(default_factory=list)


class Featurizer:
    """Builds the float32 matrix [B, n_features] the model reads.

    >>> featurize = Featurizer(ModelConfig(n_features=2))
    >>> out = featurize([Sample(id="a", features=[1, 2]), Sample(id="b", features=[1])])
    >>> out.matrix.tolist(), out.kept, out.rejected
    ([[1.0, 2.0]], [0], [(1, 'features: expected 2 values (got 1)')])
    """

    def __init__(self, config: ModelConfig) -> None:
        self._width = config.n_features
        self._from_payload: Callable[[list[Any]], Any] | None = (
            load_function(config.featurizer, "model.featurizer") if config.featurizer else None
        )

    def __call__(self, samples: Sequence[Sample]) -> Featurized:
        if isinstance(samples, FeatureRows) and samples.readable(self._width):
            return Featurized(samples.matrix, list(range(len(samples))))
        rows: dict[int, np.ndarray] = {}
        rejected: list[tuple[int, str]] = []
        payloads: list[int] = []
        for index, sample in enumerate(samples):
            if sample.features is not None:
                if len(sample.features) == self._width:
                    rows[index] = np.asarray(sample.features, dtype=np.float32)
                else:
                    reason = f"features: expected {self._width} values (got {len(sample.features)})"
                    rejected.append((index, reason))
            elif self._from_payload is None:
                rejected.append(
                    (index, "payload given but no featurizer configured (model.featurizer)")
                )
            else:
                payloads.append(index)
        if payloads:
            self._featurize_payloads(samples, payloads, rows, rejected)
        kept = sorted(rows)
        matrix = (
            np.stack([rows[i] for i in kept]) if kept else np.empty((0, self._width), np.float32)
        )
        return Featurized(matrix, kept, sorted(rejected))

    def _featurize_payloads(
        self,
        samples: Sequence[Sample],
        indices: list[int],
        rows: dict[int, np.ndarray],
        rejected: list[tuple[int, str]],
    ) -> None:
        """One call for the batch; if it fails, one call per sample to find the bad ones."""
        with contextlib.suppress(Exception):  # user code: the loop below isolates the culprits
            matrix = self._checked([samples[i].payload for i in indices])
            rows.update(zip(indices, matrix, strict=True))
            return
        for index in indices:
            try:
                rows[index] = self._checked([samples[index].payload])[0]
            except Exception as error:  # user code may raise anything
                rejected.append((index, f"featurizer: {printable(first_line(error))}"))

    def _checked(self, payloads: list[Any]) -> np.ndarray:
        assert self._from_payload is not None
        matrix = np.asarray(self._from_payload(payloads), dtype=np.float32)
        if matrix.shape != (len(payloads), self._width):
            raise ValueError(f"expected shape ({len(payloads)}, {self._width}), got {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("produced a value that is not finite")
        return matrix


class FeatureRows(Sequence[Sample]):
    """The rows of a finite float32 feature matrix as samples, made when read (a pool may hold
    millions); a slice is a `FeatureRows` too, and the `Featurizer` takes its matrix as is.

    >>> rows = FeatureRows(["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    >>> len(rows), rows[1].features, [sample.id for sample in rows[:1]]
    (2, [3.0, 4.0], ['a'])
    >>> Featurizer(ModelConfig(n_features=2))(rows[1:]).matrix.tolist()
    [[3.0, 4.0]]
    """

    def __init__(self, ids: list[str], features: np.ndarray) -> None:
        self._ids, self.matrix = ids, features

    def readable(self, width: int) -> bool:
        """Whether every row is ``width`` finite float32 values (the matrix is the model's)."""
        matrix = self.matrix
        return (
            matrix.dtype == np.float32
            and matrix.shape[1] == width
            and bool(np.isfinite(matrix).all())
        )

    def __len__(self) -> int:
        return len(self._ids)

    def take(self, rows: np.ndarray) -> FeatureRows:
        """The rows at positions ``rows``."""
        return FeatureRows([self._ids[i] for i in rows], self.matrix[rows])

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> FeatureRows: ...

    def __getitem__(self, index: int | slice) -> Sample | FeatureRows:
        if isinstance(index, slice):
            return FeatureRows(self._ids[index], self.matrix[index])
        return Sample.model_construct(
            id=self._ids[index], features=self.matrix[index].tolist(), payload=None,
            meta=None, ts=None,
        )  # fmt: skip

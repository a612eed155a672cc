"""The one way from a stored model version to a verified `Predictor`: serve, train, pool and the
simulation all load through `ModelLoader`.

A version (a checkpoint of the store, or an announcement of one) is accepted only when all of
this holds; otherwise ``ModelError`` says why in one line and the caller keeps the model it has:

- it was stored for the configured classes;
- its ``uri`` resolves (symlinks followed) to that version's weights file in the model's store
  folder, ``<model.store>/<model.name>/v000007.pt``: an announcement can make a replica read
  nothing else, and cannot claim a version whose checkpoint is not in the store;
- the file is a regular file, opened without waiting (a FIFO or a device is refused at once),
  and no larger than `size_limit` of the model;
- its sha256 is the announced one, and it loads with ``weights_only=True`` into a fresh model
  (see `model_factory`) with the same tensor names and shapes;
- every tensor of the loaded state is finite, and a trial forward pass on the model's probe
  batch (`StreamModel.probe`; the default model's: rows of zeros, ones and minus ones) gives
  finite logits.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from functools import cached_property
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import torch

from streamal.errors import ModelError, first_line
from streamal.metrics import Metrics
from streamal.model.config import ModelConfig
from streamal.model.contract import StreamModel
from streamal.model.factory import model_factory
from streamal.model.predictor import Predictor
from streamal.model.store import Checkpoint, ModelStore

log = logging.getLogger(__name__)

FORMAT_ALLOWANCE = 1 << 20  # bytes of a checkpoint file that are not tensor data, at most


class StoredVersion(Protocol):
    """What names a stored version: a `Checkpoint`, or the announcement of one."""

    @property
    def version(self) -> int: ...

    @property
    def uri(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def classes(self) -> list[str]: ...


class ModelLoader:
    """Verified predictors of the model that ``config`` describes, from its store.

    Parameters
    ----------
    config
        The model's settings: its kind, classes, store, device.
    seed
        Seeds the untrained version 0, so that runs are reproducible.
    metrics
        Where refused versions are counted (``streamal_model_rejections_total``), if given.
    """

    def __init__(self, config: ModelConfig, seed: int = 0, metrics: Metrics | None = None) -> None:
        self.config = config
        self._seed = seed
        self._metrics = metrics
        self.fresh = model_factory(config)

    @cached_property
    def store(self) -> ModelStore:
        """The model's store, opened (created if missing) on first use: a named file needs none."""
        return ModelStore(self.config.store, self.config.name)

    def untrained(self) -> Predictor:
        """Version 0: a fresh model initialized from the seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            return Predictor(self.fresh(), 0)

    def load(self, stored: StoredVersion) -> Predictor:
        """``stored`` as a verified predictor; ``ModelError`` (counted) if it is refused."""
        try:
            return self._verified(stored)
        except ModelError:
            self._refused()
            raise

    def newest(self) -> tuple[Checkpoint, Predictor] | None:
        """The newest stored version that verifies, with its predictor; None if none does.

        Each newer version skipped is logged with the reason, and counted as refused.
        """
        for version in reversed(self.store.versions()):
            try:
                checkpoint = self.store.checkpoint(version)
                return checkpoint, self._verified(checkpoint)
            except ModelError as error:
                self._refused()
                log.warning("skipped stored model v%d: %s", version, error)
        return None

    def load_file(self, path: Path) -> Predictor:
        """The checkpoint file a person names, as version 0 of the configured classes: verified
        like a stored version, except that it may lie anywhere and has no sha256 to match."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as error:
            raise ModelError(f"{str(path)!r}: cannot resolve the path ({error})") from None
        return self._predictor(resolved, repr(str(path)), None, 0)

    def _verified(self, stored: StoredVersion) -> Predictor:
        label = repr(stored.uri)  # quoted: an announced uri may hold anything, newlines too
        if list(stored.classes) != self.config.classes:
            raise ModelError(
                f"model v{stored.version}: classes {stored.classes} differ from "
                f"configured {self.config.classes}"
            )
        return self._predictor(self._confined(stored), label, stored.sha256, stored.version)

    def _confined(self, stored: StoredVersion) -> Path:
        """The path ``stored.uri`` names, if it is that version's weights file in the store."""
        uri = stored.uri
        path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)
        try:
            path, folder = path.resolve(), self.store.folder.resolve()
        except (OSError, RuntimeError) as error:
            raise ModelError(f"{uri!r}: cannot resolve the path ({error})") from None
        if not path.is_relative_to(folder):
            raise ModelError(f"{uri!r}: outside the model store {str(folder)!r}")
        expected = self.store.weights_path(stored.version).name
        if path != folder / expected:
            raise ModelError(f"{uri!r}: not the checkpoint of v{stored.version} ({expected})")
        return path

    def _predictor(self, path: Path, label: str, sha256: str | None, version: int) -> Predictor:
        model = self.fresh()
        data = _read(path, label, size_limit(model))
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and digest != sha256:
            raise ModelError(
                f"{label}: sha256 mismatch (announced {sha256[:12]}, file {digest[:12]})"
            )
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as error:
            reason = first_line(error)
            raise ModelError(f"{label}: checkpoint does not fit the model ({reason})") from None
        predictor = Predictor(model, version)
        check_finite(predictor, label)
        return predictor

    def _refused(self) -> None:
        if self._metrics is not None:
            self._metrics.model_rejections.inc()


def size_limit(model: StreamModel) -> int:
    """The largest checkpoint accepted for ``model``, in bytes: twice its tensors (room for a
    wider dtype) plus `FORMAT_ALLOWANCE` for the file format.

    >>> from streamal.model.default import FeatureModel
    >>> size_limit(FeatureModel(ModelConfig(n_features=4, classes=list("abc"), hidden=[8])))
    1098256
    """
    tensors = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return 2 * tensors + FORMAT_ALLOWANCE


def _read(path: Path, label: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, refusing anything else and anything over
    ``limit`` bytes without waiting (``O_NONBLOCK``: opening a FIFO does not wait for a writer)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        raise ModelError(f"{label}: cannot read checkpoint ({error.strerror})") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise ModelError(f"{label}: not a regular file")
        if info.st_size > limit:
            raise ModelError(f"{label}: {info.st_size} bytes, over this model's {limit}")
        with open(handle, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as error:
        raise ModelError(f"{label}: cannot read checkpoint ({error.strerror})") from None
    finally:
        os.close(handle)
    if len(data) > limit:
        raise ModelError(f"{label}: grew over this model's {limit} bytes while read")
    return data


def check_finite(predictor: Predictor, label: str) -> None:
    """``ModelError`` unless every tensor of ``predictor``'s model state is finite and a trial
    forward pass on the model's probe batch (if it has one) gives finite logits."""
    for name, tensor in predictor.model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"{label}: tensor {name!r} holds NaN or inf")
    probe = predictor.model.probe()
    if probe is None:
        return
    try:
        logits = predictor.logits(probe)
    except Exception as error:
        raise ModelError(f"{label}: the trial forward pass failed ({first_line(error)})") from None
    if not bool(torch.isfinite(logits).all()):
        raise ModelError(f"{label}: non-finite logits on a trial input")

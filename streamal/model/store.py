"""Versioned model checkpoints on a filesystem shared by trainer and serving replicas.

Layout: ``<root>/<model name>/v000007.pt`` (the state dict, ``torch.save``) and
``v000007.json`` (metadata with the checkpoint's sha256). Both are written to a temporary file,
flushed to disk and renamed into place, the metadata last, so a reader sees a version completely
or not at all. Files get the permissions of the model's folder less the execute bits, so
replicas that may read the folder may read its checkpoints. A write that fails (a full disk, say)
raises ``ModelError`` and leaves no temporary file. `ModelStore.prune` deletes old versions,
metadata first, so a reader never finds a version whose weights are gone. Loading and verifying a
stored version is `streamal.model.loader`'s job.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from streamal.errors import ModelError

log = logging.getLogger(__name__)

MARKER = ".streamal-model-store"
_VERSION_FILE = re.compile(r"^v(\d{6,})\.json$")
_WEIGHTS_FILE = re.compile(r"^v(\d{6,})\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    """One stored model version and what is known about it."""

    name: str
    version: int
    uri: str
    sha256: str
    classes: list[str]
    created_at: str
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)


class ModelStore:
    """The checkpoints of model ``name`` under ``root``.

    A directory that holds other files and no store marker is refused, never written to.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.folder = root / name
        marker = root / MARKER
        try:
            # listed before the marker is checked: the marker is written before anything else,
            # so a store that another process is creating right now is never taken for foreign
            found = [p.name for p in root.iterdir()] if root.is_dir() else []
            if found and not marker.exists():
                raise ModelError(f"{root}: not a streamal model store (it holds other files)")
            root.mkdir(parents=True, exist_ok=True)
            if not marker.exists():  # before any folder, so a process starting beside us sees it
                marker.write_text("1\n")
            self.folder.mkdir(exist_ok=True)
        except OSError as error:
            raise ModelError(f"{root}: cannot open the model store ({_reason(error)})") from None

    def versions(self) -> list[int]:
        """The complete versions (those with metadata), oldest first."""
        return sorted(
            int(m.group(1)) for p in self.folder.iterdir() if (m := _VERSION_FILE.match(p.name))
        )

    def checkpoints(self) -> list[Checkpoint]:
        """The complete versions' metadata, oldest first (but of those the trainer's `prune`
        deleted since they were listed)."""
        found = []
        for version in self.versions():
            try:
                found.append(self.checkpoint(version))
            except ModelError:
                if (self.folder / f"v{version:06d}.json").exists():
                    raise
        return found

    def latest(self) -> Checkpoint | None:
        """The newest complete version, or None when the store is empty."""
        versions = self.versions()
        return self.checkpoint(versions[-1]) if versions else None

    def weights_path(self, version: int) -> Path:
        """Where the weights of ``version`` are (or would be) stored."""
        return self.folder / f"v{version:06d}.pt"

    def checkpoint(self, version: int) -> Checkpoint:
        """The metadata of ``version``."""
        path = self.folder / f"v{version:06d}.json"
        try:
            return Checkpoint(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise ModelError(f"{path}: unreadable checkpoint metadata ({error})") from None

    def save(
        self,
        state: Mapping[str, torch.Tensor],
        classes: list[str],
        metrics: dict[str, float] | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> Checkpoint:
        """Store ``state`` (a model's trained tensors) as the next version; return its
        checkpoint.

        Raises
        ------
        ModelError
            The store cannot be written (one line; no temporary file is left).
        """
        versions = self.versions()
        version = (versions[-1] if versions else 0) + 1
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
        data = buffer.getvalue()
        weights = self.weights_path(version)
        _write_atomically(weights, data)
        checkpoint = Checkpoint(
            name=self.name,
            version=version,
            uri=weights.resolve().as_uri(),
            sha256=hashlib.sha256(data).hexdigest(),
            classes=list(classes),
            created_at=datetime.now(UTC).isoformat(),
            metrics=dict(metrics or {}),
            thresholds=dict(thresholds or {}),
        )
        self._write_metadata(checkpoint)
        return checkpoint

    def retune(self, checkpoint: Checkpoint, thresholds: dict[str, float]) -> Checkpoint:
        """Keep new ``thresholds`` for a stored version (same weights); its new checkpoint."""
        retuned = replace(checkpoint, thresholds=dict(thresholds))
        self._write_metadata(retuned)
        return retuned

    def prune(self, keep: int, keep_rounds: int = 0) -> list[int]:
        """Delete every version but the newest ``keep`` and, of the older ones, the newest
        ``keep_rounds`` that a round published (their metrics hold an ``accuracy``), and any
        weights of an older version left without metadata; the versions deleted, oldest first.
        Metadata that cannot be read is not a round's; a file that cannot be deleted is logged
        and left to the next prune.
        """
        versions = self.versions()
        rounds = [v for v in versions[:-keep] if "accuracy" in self._metrics(v)]
        kept = set(versions[-keep:]) | set(rounds[len(rounds) - keep_rounds :])
        newest = max(kept, default=0)
        files = [
            (int(m.group(1)), path)
            for path in self.folder.iterdir()
            if (m := _VERSION_FILE.match(path.name) or _WEIGHTS_FILE.match(path.name))
        ]
        doomed = sorted(
            (version, path.suffix != ".json", path)  # metadata first: then the version is gone
            for version, path in files
            if version not in kept and version < newest
        )
        for _, _, path in doomed:
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                log.warning("%s: cannot delete (%s)", path, _reason(error))
        return sorted({version for version, _, _ in doomed})

    def _metrics(self, version: int) -> dict[str, float]:
        """The metrics of ``version``; none if its metadata cannot be read (gone, or corrupt)."""
        try:
            return self.checkpoint(version).metrics
        except ModelError:
            return {}

    def _write_metadata(self, checkpoint: Checkpoint) -> None:
        meta = json.dumps(asdict(checkpoint), indent=2).encode()
        _write_atomically(self.folder / f"v{checkpoint.version:06d}.json", meta)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or nothing, with the folder's
    permissions less the execute bits; ``ModelError`` (and no temporary file) if that fails."""
    try:
        _write_and_rename(path, data)
    except OSError as error:
        raise ModelError(f"{path}: cannot write ({_reason(error)})") from None


def _write_and_rename(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), stat.S_IMODE(path.parent.stat().st_mode) & 0o666)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _reason(error: OSError) -> str:
    """The operating system's words for ``error``, without the path it names."""
    return error.strerror or type(error).__name__

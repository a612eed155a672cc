"""Versioned model checkpoints on a filesystem shared by trainer and serving replicas.

Layout: ``<root>/<model name>/v000007.pt`` (the state dict, ``torch.save``) and
``v000007.json`` (metadata with the checkpoint's sha256). Both are written to a temporary file,
flushed to disk and renamed into place, the metadata last, so a reader sees a version completely
or not at all. Loading checks the sha256 and the tensor shapes and uses ``weights_only=True``;
any mismatch raises ``ModelError`` and leaves the caller's current model untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch
from torch import nn

from streamal.errors import ModelError

MARKER = ".streamal-model-store"
_VERSION_FILE = re.compile(r"^v(\d{6,})\.json$")


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
        self._dir = root / name
        marker = root / MARKER
        if root.exists() and not marker.exists() and any(root.iterdir()):
            raise ModelError(f"{root}: not a streamal model store (it holds other files)")
        root.mkdir(parents=True, exist_ok=True)
        if not marker.exists():  # before any folder, so a process starting beside us sees it
            marker.write_text("1\n")
        self._dir.mkdir(exist_ok=True)

    def latest(self) -> Checkpoint | None:
        """The newest complete version, or None when the store is empty."""
        versions = sorted(
            int(m.group(1)) for p in self._dir.iterdir() if (m := _VERSION_FILE.match(p.name))
        )
        return self.checkpoint(versions[-1]) if versions else None

    def checkpoint(self, version: int) -> Checkpoint:
        """The metadata of ``version``."""
        path = self._dir / f"v{version:06d}.json"
        try:
            return Checkpoint(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise ModelError(f"{path}: unreadable checkpoint metadata ({error})") from None

    def save(
        self,
        module: nn.Module,
        classes: list[str],
        metrics: dict[str, float] | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> Checkpoint:
        """Store ``module``'s weights as the next version; return its checkpoint."""
        latest = self.latest()
        version = (latest.version if latest else 0) + 1
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buffer)
        data = buffer.getvalue()
        weights = self._dir / f"v{version:06d}.pt"
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

    def _write_metadata(self, checkpoint: Checkpoint) -> None:
        meta = json.dumps(asdict(checkpoint), indent=2).encode()
        _write_atomically(self._dir / f"v{checkpoint.version:06d}.json", meta)


def load_weights(module: nn.Module, uri: str, sha256: str | None) -> nn.Module:
    """Load the checkpoint at ``uri`` into ``module`` after checking its sha256 and shapes.

    ``sha256=None`` skips the hash check, for a file a person names rather than one announced.

    ``module`` should be a fresh instance: on any error it is left unusable and the caller keeps
    serving its current one.
    """
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"{uri}: cannot read checkpoint ({error.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ModelError(f"{uri}: sha256 mismatch (announced {sha256[:12]}, file {digest[:12]})")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{uri}: checkpoint does not fit the model ({reason})") from None
    return module


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or nothing."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
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

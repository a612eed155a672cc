"""The model store: atomic versions, verified loads, refusal of anything foreign or corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamal.errors import ModelError
from streamal.model import MLP, ModelStore, load_weights


def mlp(hidden: int = 8) -> MLP:
    return MLP(n_features=4, n_classes=3, hidden=[hidden], dropout=0.0)


def test_versions_increase_and_round_trip(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "default")
    assert store.latest() is None
    first = store.save(mlp(), ["a", "b", "c"], metrics={"accuracy": 0.8})
    original = mlp()
    second = store.save(original, ["a", "b", "c"], thresholds={"auto_label": 0.97})
    assert (first.version, second.version) == (1, 2)
    assert store.latest() == second
    loaded = load_weights(mlp(), second.uri, second.sha256)
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), original(x))
    assert store.checkpoint(1).metrics == {"accuracy": 0.8}


def test_a_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    checkpoint = ModelStore(tmp_path, "default").save(mlp(), ["a", "b", "c"])
    path = Path(checkpoint.uri.removeprefix("file://"))
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_weights(mlp(), checkpoint.uri, checkpoint.sha256)


def test_a_checkpoint_of_another_shape_is_refused(tmp_path: Path) -> None:
    checkpoint = ModelStore(tmp_path, "default").save(mlp(hidden=16), ["a", "b", "c"])
    with pytest.raises(ModelError, match="does not fit the model"):
        load_weights(mlp(hidden=8), checkpoint.uri, checkpoint.sha256)


def test_garbage_with_a_matching_hash_is_refused(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "evil.pt"
    path.write_bytes(b"not a torch file at all")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match="does not fit the model"):
        load_weights(mlp(), path.as_uri(), digest)


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    import hashlib

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (tmp_path / "pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Boom()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ModelError):
        load_weights(mlp(), path.as_uri(), digest)
    assert not (tmp_path / "pwned").exists()


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        load_weights(mlp(), (tmp_path / "gone.pt").as_uri(), "0" * 64)


def test_a_foreign_directory_is_refused_and_untouched(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ModelError, match="not a streamal model store"):
        ModelStore(tmp_path, "default")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_incomplete_versions_are_invisible(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "default")
    store.save(mlp(), ["a", "b", "c"])
    (tmp_path / "default" / "v000002.pt").write_bytes(b"half written, no metadata yet")
    latest = store.latest()
    assert latest is not None and latest.version == 1

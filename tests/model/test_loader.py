"""The loader: a stored version becomes a predictor only if it is the right file, whole, of the
right shape, finite, and gives finite logits; anything else is refused in one line."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.errors import ModelError
from streamal.metrics import Metrics
from streamal.model import MLP, Checkpoint, ModelConfig, ModelLoader, ModelStore
from streamal.model.loader import size_limit

CLASSES = ["a", "b", "c"]

DEFAULT = ModelConfig()  # the default model's parts


def mlp(hidden: int = 8) -> MLP:
    return MLP(
        n_features=4, n_classes=3, hidden=[hidden], dropout=0.0, online=DEFAULT.online,
        neighbors=DEFAULT.neighbors, memory=DEFAULT.memory, kalman=DEFAULT.kalman,
    )  # fmt: skip


@pytest.fixture
def loader(tmp_path: Path) -> ModelLoader:
    """A loader of 4 features, 3 classes, one hidden layer of 8, on the CPU, counting refusals."""
    config = ModelConfig(
        n_features=4, classes=CLASSES, hidden=[8], dropout=0.0, device="cpu",
        store=tmp_path / "m",
    )  # fmt: skip
    return ModelLoader(config, metrics=Metrics())


def refusals(loader: ModelLoader) -> float | None:
    return loader._metrics.registry.get_sample_value("streamal_model_rejections_total")  # type: ignore[union-attr]


def poisoned(name: str, value: float) -> MLP:
    """An MLP with one entry of tensor ``name`` set to ``value``."""
    module = mlp()
    with torch.no_grad():
        module.state_dict()[name].view(-1)[0] = value
    return module


def planted(store: ModelStore, version: int, data: bytes) -> Checkpoint:
    """``data`` stored as the weights of ``version``, with a matching sha256."""
    path = store.weights_path(version)
    path.write_bytes(data)
    return Checkpoint(
        name=store.name, version=version, uri=path.as_uri(),
        sha256=hashlib.sha256(data).hexdigest(), classes=CLASSES, created_at="2026-01-01",
    )  # fmt: skip


def test_a_stored_version_loads_as_a_predictor_of_its_version(loader: ModelLoader) -> None:
    original = mlp()
    checkpoint = loader.store.save(original.state_dict(), CLASSES)
    predictor = loader.load(checkpoint)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert predictor.version == 1 and predictor.classes == CLASSES
    assert torch.equal(predictor.logits(torch.as_tensor(x)).cpu(), original(torch.as_tensor(x)))
    assert refusals(loader) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("head.weight", float("nan")), ("body.0.bias", float("inf")), ("std", -float("inf"))],
)
def test_non_finite_weights_are_refused(loader: ModelLoader, name: str, value: float) -> None:
    checkpoint = loader.store.save(
        poisoned(name, value).state_dict(), CLASSES
    )  # its sha256 matches
    with pytest.raises(ModelError, match=f"tensor '{name}' holds NaN or inf"):
        loader.load(checkpoint)
    assert refusals(loader) == 1


def test_finite_weights_with_non_finite_logits_are_refused(loader: ModelLoader) -> None:
    checkpoint = loader.store.save(poisoned("std", 0.0).state_dict(), CLASSES)  # 0 / 0 on the probe
    with pytest.raises(ModelError, match="non-finite logits on a trial input"):
        loader.load(checkpoint)


def test_a_tampered_checkpoint_is_refused(loader: ModelLoader) -> None:
    checkpoint = loader.store.save(mlp().state_dict(), CLASSES)
    path = loader.store.weights_path(1)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        loader.load(checkpoint)


def test_a_checkpoint_of_another_shape_is_refused(loader: ModelLoader) -> None:
    checkpoint = loader.store.save(mlp(hidden=16).state_dict(), CLASSES)
    with pytest.raises(ModelError, match="does not fit the model"):
        loader.load(checkpoint)


def test_a_checkpoint_of_other_classes_is_refused(loader: ModelLoader) -> None:
    checkpoint = loader.store.save(mlp().state_dict(), ["x", "y", "z"])
    with pytest.raises(ModelError, match=r"classes \['x', 'y', 'z'\] differ"):
        loader.load(checkpoint)


def test_garbage_with_a_matching_hash_is_refused(loader: ModelLoader) -> None:
    with pytest.raises(ModelError, match="does not fit the model"):
        loader.load(planted(loader.store, 1, b"not a torch file at all"))


def test_pickled_code_is_not_executed(loader: ModelLoader, tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"x": Boom()}, loader.store.weights_path(1))
    data = loader.store.weights_path(1).read_bytes()
    with pytest.raises(ModelError, match="does not fit the model"):
        loader.load(planted(loader.store, 1, data))
    assert not (tmp_path / "pwned").exists()


def test_a_missing_file_is_refused(loader: ModelLoader) -> None:
    checkpoint = replace(loader.store.save(mlp().state_dict(), CLASSES), version=2)
    checkpoint = replace(checkpoint, uri=loader.store.weights_path(2).as_uri())
    with pytest.raises(ModelError, match="cannot read checkpoint \\(No such file"):
        loader.load(checkpoint)


def test_a_uri_outside_the_model_folder_is_refused(loader: ModelLoader, tmp_path: Path) -> None:
    elsewhere = ModelStore(tmp_path / "elsewhere", "default").save(
        mlp().state_dict(), CLASSES
    )  # verifies
    folder = loader.store.folder
    (folder / "v000001.pt").symlink_to(Path(elsewhere.uri.removeprefix("file://")))
    outside = [
        elsewhere.uri,  # absolute
        elsewhere.uri.removeprefix("file://"),  # a plain path
        f"file://{folder}/../../elsewhere/default/v000001.pt",  # climbing out
        (folder / "v000001.pt").as_uri(),  # a link inside, to a file outside
        "file:///etc/passwd",
    ]
    for uri in outside:
        with pytest.raises(ModelError, match="outside the model store"):
            loader.load(replace(elsewhere, uri=uri))
    assert refusals(loader) == len(outside)


def test_a_uri_must_be_the_file_of_the_announced_version(loader: ModelLoader) -> None:
    real = loader.store.save(mlp().state_dict(), CLASSES)
    with pytest.raises(ModelError, match=r"not the checkpoint of v999999 \(v999999\.pt\)"):
        loader.load(replace(real, version=999999))  # v1's file, announced as v999999
    with pytest.raises(ModelError, match="No such file"):
        loader.load(replace(real, version=999999, uri=loader.store.weights_path(999999).as_uri()))


@pytest.mark.timeout(20)  # a FIFO opened for reading would wait for a writer forever
def test_a_fifo_or_a_folder_is_refused_at_once(loader: ModelLoader) -> None:
    os.mkfifo(loader.store.weights_path(1))
    loader.store.weights_path(2).mkdir()
    for version in (1, 2):
        stored = planted(loader.store, 3, b"")
        stored = replace(stored, version=version, uri=loader.store.weights_path(version).as_uri())
        with pytest.raises(ModelError, match="not a regular file"):
            loader.load(stored)
    with pytest.raises(ModelError, match="not a regular file"):
        loader.load_file(loader.store.weights_path(1))


def test_a_checkpoint_over_the_size_limit_is_refused_unread(loader: ModelLoader) -> None:
    limit = size_limit(loader.fresh())
    checkpoint = planted(loader.store, 1, b"")
    with loader.store.weights_path(1).open("wb") as sparse:
        sparse.truncate(limit + 1)
    with pytest.raises(ModelError, match=f"{limit + 1} bytes, over this model's {limit}"):
        loader.load(checkpoint)


def test_newest_skips_the_versions_that_do_not_verify_and_says_why(
    loader: ModelLoader, caplog: pytest.LogCaptureFixture
) -> None:
    store = loader.store
    assert loader.newest() is None
    good = store.save(mlp().state_dict(), CLASSES, thresholds={"budget": 0.3})
    store.save(mlp().state_dict(), CLASSES)
    store.weights_path(2).write_bytes(b"scrambled")
    store.save(poisoned("head.bias", float("nan")).state_dict(), CLASSES)
    (store.folder / "v000004.json").write_text("{half")
    with caplog.at_level(logging.WARNING, logger="streamal.model.loader"):
        newest = loader.newest()
    assert newest is not None
    checkpoint, predictor = newest
    assert checkpoint == good and predictor.version == 1
    skipped = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in skipped] == [
        "skipped stored model v4",
        "skipped stored model v3",
        "skipped stored model v2",
    ]
    assert "unreadable checkpoint metadata" in skipped[0]
    assert "'head.bias' holds NaN or inf" in skipped[1]
    assert "sha256 mismatch" in skipped[2]
    assert all("\n" not in line for line in skipped)
    assert refusals(loader) == 3


def test_a_named_file_may_lie_anywhere_but_is_verified(loader: ModelLoader, tmp_path: Path) -> None:
    original = mlp()
    torch.save(original.state_dict(), tmp_path / "mine.pt")
    predictor = loader.load_file(tmp_path / "mine.pt")
    assert predictor.version == 0
    x = torch.randn(3, 4)
    assert torch.equal(predictor.logits(x).cpu(), original(x))
    torch.save(poisoned("head.weight", float("nan")).state_dict(), tmp_path / "nan.pt")
    with pytest.raises(ModelError, match="holds NaN or inf"):
        loader.load_file(tmp_path / "nan.pt")
    assert not loader.config.store.exists()  # a named file needs no store


def test_version_0_is_the_same_untrained_model_for_the_same_seed(tmp_path: Path) -> None:
    config = ModelConfig(n_features=4, classes=CLASSES, hidden=[8], store=tmp_path, device="cpu")
    first, second = ModelLoader(config, seed=3).untrained(), ModelLoader(config, seed=3).untrained()
    other = ModelLoader(config, seed=4).untrained()
    x = torch.ones(2, 4)
    assert first.version == 0 and torch.equal(first.logits(x), second.logits(x))
    assert not torch.equal(first.logits(x), other.logits(x))

"""``streamal pool select`` end to end on small pools: every diversity mode, bad files, topics."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.messages import LabelRequest, OracleLabel, decode
from streamal.model import MLP, ModelStore
from streamal.training.labels import LabelStore
from tests.helpers import read_all, write_config

ROOT = Path(__file__).parent.parent.parent
CLASSES = ["a", "b", "c"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, str, Path]:
    """A trained-enough model in the store, an .npz pool of 300 items, and a config file."""
    settings = Settings(
        transport={"local": {"path": str(tmp_path / "log.sqlite"), "synchronous": "normal"}},
        model={"n_features": 4, "classes": CLASSES, "hidden": [8], "store": str(tmp_path / "m")},
        train={"label_store": str(tmp_path / "labels.sqlite")},
    )
    torch.manual_seed(0)
    ModelStore(settings.model.store, "default").save(MLP(4, 3, [8], 0.1).state_dict(), CLASSES)
    rng = np.random.default_rng(0)
    pool = tmp_path / "pool.npz"
    np.savez(pool, ids=np.array([f"p{i}" for i in range(300)]),
             features=rng.normal(size=(300, 4)).astype(np.float32))  # fmt: skip
    return settings, write_config(settings, tmp_path / "c.yaml"), pool


def pool_select(config: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamal", "pool", "select", "-c", config, *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def label_some(settings: Settings, count: int) -> None:
    store = LabelStore(settings.train.label_store, CLASSES)
    rng = np.random.default_rng(1)
    for i in range(count):
        store.add_request(LabelRequest(
            id=f"l{i}", features=rng.normal(size=4).tolist(), utility=0.5, reason="uncertain",
            prediction=[{"label": "a", "p": 0.6}, {"label": "b", "p": 0.4}], model_version=1,
            requested_at=datetime.now(UTC),
        ))  # fmt: skip
        label = CLASSES[i % len(CLASSES)]
        store.add_label(OracleLabel(id=f"l{i}", label=label, labeled_at=0), f"labels:0:{i}")
    store.close()


@pytest.mark.parametrize("diversity", ["none", "kcenter", "badge", "seals"])
def test_each_diversity_picks_k_distinct_pool_items(setup, tmp_path: Path, diversity: str) -> None:
    settings, config, pool = setup
    if diversity == "seals":
        label_some(settings, 10)
    out = tmp_path / "picked.jsonl"
    result = pool_select(
        config, "-i", str(pool), "-k", "25", "--diversity", diversity, "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 25 and len({r["id"] for r in rows}) == 25
    assert [r["rank"] for r in rows] == list(range(1, 26))
    assert all(r["id"].startswith("p") for r in rows)
    assert "selected 25 of 300 items" in result.stderr


def test_top_k_by_margin_picks_the_most_uncertain(setup, tmp_path: Path) -> None:
    settings, config, pool = setup
    out = tmp_path / "picked.csv"
    assert pool_select(config, "-i", str(pool), "-k", "10", "-o", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "id,utility,rank"
    utilities = [float(line.split(",")[1]) for line in lines[1:]]
    assert utilities == sorted(utilities, reverse=True)
    from streamal.pool.job import encoded, load_model, read_pool
    from streamal.strategies import margin

    predictor = load_model(settings, "latest")
    everything = margin(predictor.probabilities(encoded(predictor, read_pool(pool).samples)))
    assert min(utilities) >= float(torch.sort(everything, descending=True).values[9]) - 1e-6


def test_pool_mode_prints_whether_more_labels_pay(setup, tmp_path: Path) -> None:
    settings, config, pool = setup
    store = ModelStore(settings.model.store, "default")
    weights = MLP(4, 3, [8], 0.1).state_dict()
    for _ in range(4):  # four rounds of one unchanging model: predictions and accuracy stand
        store.save(weights, CLASSES, {"accuracy": 0.9})
    label_some(settings, 10)
    result = pool_select(config, "-i", str(pool), "-k", "5", "-o", str(tmp_path / "p.csv"))
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "labels" in line and "pay" in line]
    assert line.startswith("more labels no longer pay: accuracy_plateau (held-out accuracy 0.900")
    assert "stable_predictions (kappa 1.000 between rounds" in line
    assert "low_uncertainty" not in line  # an untrained model is unsure


def test_pool_mode_judges_rounds_whose_models_disagree_as_still_paying(setup) -> None:
    from streamal.pool.job import read_pool, stopping

    settings, _, pool = setup
    store = ModelStore(settings.model.store, "default")
    for accuracy in (0.5, 0.6, 0.7, 0.8):  # each round another model, and better
        store.save(MLP(4, 3, [8], 0.1).state_dict(), CLASSES, {"accuracy": accuracy})
    monitor = stopping(settings, read_pool(pool), labels=40)
    assert not any(monitor.holds.values()), monitor.summary()
    assert monitor.summary().startswith("more labels still pay: no stopping rule holds")
    assert monitor.agreement is not None and monitor.agreement < 0.9
    store.weights_path(store.versions()[-1]).write_bytes(b"not a checkpoint")  # does not verify
    assert stopping(settings, read_pool(pool), labels=40).agreement is None


def test_picks_can_go_to_annotators(setup, tmp_path: Path) -> None:
    settings, config, pool = setup
    out = tmp_path / "picked.jsonl"
    result = pool_select(config, "-i", str(pool), "-k", "7", "-o", str(out), "--to-topic")
    assert result.returncode == 0, result.stderr
    requests = [
        decode(LabelRequest, e.value) for e in read_all(settings, settings.topics.label_requests)
    ]
    picked = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(r.id for r in requests) == sorted(picked)
    assert all(len(r.features or []) == 4 and r.prediction for r in requests)


def test_a_jsonl_pool_of_samples_works(setup, tmp_path: Path) -> None:
    _, config, _ = setup
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(json.dumps({"id": f"j{i}", "features": [i, 0, 1, 2]}) + "\n" for i in range(20))
    )
    out = tmp_path / "picked.jsonl"
    assert pool_select(config, "-i", str(pool), "-k", "5", "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("pool.txt", b"whatever", "unknown pool format '.txt'; use .jsonl (Samples) or .npz"),
        ("pool.npz", b"not a zip", "not a readable .npz file"),
        ("pool.jsonl", b'{"id": "x", "features": [1, 2]}\n', "features: expected 4 values (got 2)"),
        ("pool.jsonl", b'{"id": "x", "features": [1, 2, 3, 4]}\n{oops\n', "line 2: invalid JSON"),
        ("missing.npz", None, "no such file"),
    ],
)
def test_bad_pool_files_get_one_clear_line(
    setup, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    _, config, _ = setup
    pool = tmp_path / name
    if content is not None:
        pool.write_bytes(content)
    result = pool_select(config, "-i", str(pool), "-k", "5", "-o", str(tmp_path / "o.jsonl"))
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_seals_without_labeled_items_says_so(setup, tmp_path: Path) -> None:
    _, config, pool = setup
    result = pool_select(
        config, "-i", str(pool), "-k", "5", "--diversity", "seals", "-o", str(tmp_path / "o.csv")
    )
    assert result.returncode == 1
    assert "seals needs labeled items" in result.stderr


def test_a_checkpoint_file_can_be_named_instead_of_the_store(setup, tmp_path: Path) -> None:
    settings, config, pool = setup
    latest = ModelStore(settings.model.store, "default").latest()
    assert latest is not None
    path = latest.uri.removeprefix("file://")
    out = tmp_path / "picked.jsonl"
    named = pool_select(config, "-i", str(pool), "-k", "5", "--model", path, "-o", str(out))
    assert named.returncode == 0, named.stderr
    stored = pool_select(config, "-i", str(pool), "-k", "5", "-o", str(tmp_path / "s.jsonl"))
    assert stored.returncode == 0 and out.read_text() == (tmp_path / "s.jsonl").read_text()
    missing = pool_select(config, "-i", str(pool), "-k", "5", "--model", str(tmp_path / "no.pt"),
                          "-o", str(out))  # fmt: skip
    assert missing.returncode == 1 and "cannot read checkpoint" in missing.stderr


def test_a_named_checkpoint_with_nan_weights_is_refused_in_one_line(setup, tmp_path: Path) -> None:
    _, config, pool = setup
    module = MLP(4, 3, [8], 0.1)
    with torch.no_grad():
        module.head.weight[0, 0] = float("nan")
    torch.save(module.state_dict(), tmp_path / "nan.pt")
    result = pool_select(config, "-i", str(pool), "-k", "5", "--model", str(tmp_path / "nan.pt"),
                         "-o", str(tmp_path / "o.csv"))  # fmt: skip
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "tensor 'head.weight' holds NaN or inf" in result.stderr


def test_latest_is_the_newest_stored_version_that_verifies(setup, tmp_path: Path) -> None:
    settings, config, pool = setup
    store = ModelStore(settings.model.store, "default")
    store.save(MLP(4, 3, [8], 0.1).state_dict(), CLASSES)
    (settings.model.store / "default" / "v000002.pt").write_bytes(b"scrambled")
    result = pool_select(config, "-i", str(pool), "-k", "5", "-o", str(tmp_path / "o.csv"))
    assert result.returncode == 0, result.stderr
    assert "skipped stored model v2" in result.stderr and "model v1)" in result.stderr


PLUGINS = "tests.plugins_for_tests"


def test_a_users_score_and_selector_named_by_import_path_pick(setup, tmp_path: Path) -> None:
    settings, config, pool = setup
    out = tmp_path / "picked.jsonl"
    result = pool_select(config, "-i", str(pool), "-k", "5", "--strategy",
                         f"{PLUGINS}:second_class", "--diversity", f"{PLUGINS}:last_k",
                         "-o", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p299", "p298", "p297", "p296", "p295"]
    from streamal.pool.job import encoded, load_model, read_pool

    samples = [read_pool(pool).samples[i] for i in (299, 298, 297, 296, 295)]
    predictor = load_model(settings, "latest")
    second = predictor.probabilities(encoded(predictor, samples))[:, 1]
    assert [r["utility"] for r in rows] == pytest.approx(second.tolist(), abs=1e-6)


@pytest.fixture
def plain_model(setup, tmp_path: Path) -> tuple[str, Path]:
    """A config whose ``model.module`` has no ``embed()``, a stored version of it, the pool."""
    settings, _, pool = setup
    model = settings.model.model_copy(update={"module": f"{PLUGINS}:plain", "name": "plain"})
    from tests.plugins_for_tests import plain

    ModelStore(model.store, model.name).save(plain(4, 3).state_dict(), CLASSES)
    plain_settings = settings.model_copy(update={"model": model})
    return write_config(plain_settings, tmp_path / "plain.yaml"), pool


def test_top_k_with_a_module_without_embed_works(plain_model, tmp_path: Path) -> None:
    config, pool = plain_model
    out = tmp_path / "picked.jsonl"
    result = pool_select(config, "-i", str(pool), "-k", "5", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--diversity", "kcenter"], "--diversity: kcenter needs embeddings"),
        (["--diversity", f"{PLUGINS}:far_first"], f"--diversity: {PLUGINS}:far_first needs "
         "embeddings"),
        (["--strategy", "expected_gradient_length"], "--strategy: expected_gradient_length needs "
         "embeddings"),
    ],
)  # fmt: skip
def test_reading_embeddings_a_module_cannot_give_is_one_line_at_start(
    plain_model, tmp_path: Path, flags: list[str], message: str
) -> None:
    config, pool = plain_model
    result = pool_select(config, "-i", str(pool), "-k", "5", *flags, "-o", str(tmp_path / "o.csv"))
    assert result.returncode == 2
    assert result.stderr == (
        f"config error: {message}, but the model's module (Sequential, see model.module) has no "
        "embed() method\n"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--strategy", f"{PLUGINS}:nope"],
         f"--strategy: module '{PLUGINS}' has no attribute 'nope'"),
        (["--diversity", "no_such_package.pick:mine"],
         "--diversity: No module named 'no_such_package'"),
        (["--diversity", f"{PLUGINS}:NOT_CALLABLE"],
         f"--diversity: {PLUGINS}:NOT_CALLABLE is not callable"),
        (["--strategy", "smallest_margin"], "--strategy: must be one of: least_confidence, "),
        (["--diversity", "k-center"], "--diversity: must be one of: none, kcenter, badge, seals "
         "or package.module:object (got 'k-center')"),
    ],
)  # fmt: skip
def test_a_bad_strategy_or_diversity_is_one_line_and_exit_2(
    setup, tmp_path: Path, flags: list[str], message: str
) -> None:
    _, config, pool = setup
    result = pool_select(config, "-i", str(pool), "-k", "5", *flags, "-o", str(tmp_path / "o.csv"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: {message}") and result.stderr.count("\n") == 1

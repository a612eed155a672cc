"""``streamal simulate`` and ``streamal demo`` run the real loop and write reports people read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamal.config import Settings
from streamal.model import ModelStore
from streamal.simulation.run import Options, simulate
from streamal.simulation.streams import builtin, from_jsonl, gaussian_classes, peer

ROOT = Path(__file__).parent.parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def streamal(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamal", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def check_report(out: Path, strategies: list[str], samples: int) -> list[dict]:
    report = json.loads((out / "report.json").read_text())
    assert report["samples"] == samples
    runs = report["strategies"]
    assert [r["strategy"] for r in runs] == strategies
    for run in runs:
        assert 0 <= run["prequential_accuracy"] <= 1
        assert run["labels_used"] > 0 and run["model_versions"] >= 1
        assert len(run["series"]["position"]) == len(run["series"]["accuracy"])
        assert run["series"]["labels_used"] == sorted(run["series"]["labels_used"])
    for name in ("accuracy_vs_labels.png", "accuracy_over_stream.png"):
        assert (out / name).read_bytes()[:8] == PNG
    return runs


def test_simulate_compares_strategies_with_the_baselines(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = streamal(
        "simulate", "--stream", "stationary", "--samples", "3000", "--strategies", "entropy",
        "--budget", "0.1", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    runs = check_report(out, ["entropy", "random", "margin"], 3000)
    assert all(r["final_accuracy"] > 0.6 for r in runs)  # 5 classes: chance is 0.2
    assert "entropy" in result.stdout and "report:" in result.stdout
    assert "stopping: labels spent where the curve flattened" in result.stdout


@pytest.mark.timeout(900)  # a hang guard only: a slow runner takes longer, never cuts the stream
def test_demo_runs_the_whole_loop_and_its_default_beats_random_by_three_points(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    # The README's command on its fixed seed and 20,000 samples, bound by samples, not seconds:
    result = streamal("demo", "--out", str(out), "--seconds", "1e9", timeout=840)
    assert result.returncode == 0, result.stderr[-2000:]
    default, random = check_report(out, ["default", "random"], 20_000)  # not cut by time
    assert all(r["model_versions"] >= 2 for r in (default, random))  # hot swaps happened
    assert "answered accuracy (last 500)" in result.stderr  # the progress display
    assert result.stdout.splitlines()[0].split()[:3] == ["strategy", "labels", "rate"]
    for run in (default, random):  # the same budget, audits and exploration included
        assert abs(run["label_rate"] - 0.1) <= 0.005
    # the boundary keeps turning: the labels near it tell how it turns, labels far from it
    # tell little, so the careful labeler follows it closer (seed 0: 0.940 against 0.902)
    assert default["prequential_accuracy"] >= random["prequential_accuracy"] + 0.03
    # confident samples are auto-labeled, and the ones that stand keep the target on a
    # boundary that moves under them (seed 0: 0.989)
    assert default["auto_labeled_share"] > 0 and default["standing_precision"] >= 0.98


def test_a_users_labeled_jsonl_stream(tmp_path: Path) -> None:
    stream = gaussian_classes(50, n_features=3, seed=2)
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(
        json.dumps({"id": i, "features": f.tolist(), "label": stream.classes[c]}) + "\n"
        for i, f, c in zip(stream.ids, stream.features, stream.labels, strict=True)
    ))  # fmt: skip
    loaded = from_jsonl(path)
    assert loaded.ids == stream.ids and loaded.classes == stream.classes
    assert np.allclose(loaded.features, stream.features)
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "features": [1]}\n')
    with pytest.raises(Exception, match="line 1: needs id, features and label"):
        from_jsonl(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("name", ["stationary", "abrupt", "gradual"])
def test_builtin_streams_are_seeded_and_drift_where_they_say(name: str) -> None:
    first, again = builtin(name, 2000, seed=5), builtin(name, 2000, seed=5)
    assert np.array_equal(first.features, again.features)
    assert bool(first.drifts) == (name != "stationary")


def test_a_simulation_is_reproducible_and_holds_the_budget(tmp_path: Path) -> None:
    stream = builtin("abrupt", 4000, seed=3)  # drift at 2,000: 1,000 samples after v1 to learn
    options = Options(budget=0.1, rate=1500, seed=3)
    first, again = (
        simulate(Settings(), stream, "margin", "margin", tmp_path, options) for _ in range(2)
    )
    # on the stream's clock, not the machine's: the same seed, the same run; and the second run
    # starts afresh where the first one ran (it used to go on from its labels and models)
    assert first == again
    assert first["model_versions"] >= 2 and first["drift_events"]
    # audits, cold-start and drift exploration come out of the same budget
    assert 0.09 * 4000 <= first["labels_used"] <= 0.11 * 4000 + 20
    stopping = first["stopping"]  # where the trainer's stopping rules began to hold
    assert stopping["flattened"]["labels"] < first["labels_used"]
    fired = [point for point in stopping["rules"].values() if point is not None]
    assert fired and stopping["rules"]["budget_spent"] is None  # no cap was set
    for point in fired:
        assert 0 < point["labels"] <= first["labels_used"] and 0 < point["position"] < 4000


def test_every_version_that_served_is_judged_whatever_the_store_would_keep(
    tmp_path: Path,
) -> None:
    stream = builtin("stationary", 1500, seed=0)
    options = Options(budget=0.1, rate=1500, seed=0)
    report = simulate(
        Settings(model={"keep_versions": 1}), stream, "margin", "margin", tmp_path, options
    )
    stored = ModelStore(tmp_path / "models", "default").versions()
    assert report["model_versions"] > 2 and len(stored) == stored[-1] >= report["model_versions"]


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [("sea_abrupt", (3000, 3), 2), ("hyperplane", (3000, 10), 2), ("rbf5", (3000, 10), 5),
     ("phishing", (1250, 9), 2), ("image_segments", (2310, 18), 7)],
)  # fmt: skip
def test_peer_streams_are_the_anchors_streams(
    name: str, shape: tuple[int, int], classes: int
) -> None:
    stream = peer(name, 3000)
    assert stream.features.shape == shape and len(stream.classes) == classes
    assert np.array_equal(stream.features, peer(name, 3000).features)  # seeded
    assert stream.drifts == ((1500,) if name == "sea_abrupt" else ())

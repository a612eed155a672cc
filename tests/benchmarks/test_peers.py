"""Real outcomes of `benchmarks/peers.py` on small fixed-seed streams (budget 0.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.benchmarks import load_benchmark

peers = load_benchmark("peers")
BUDGETED = [s for s in peers.STRATEGIES if s != "all_labels"]
UNCERTAINTY = [s for s in peers.STRATEGIES if "+" in s]


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, dict[str, Any]]]:
    """Every strategy on 2,000 samples of ``sea_abrupt`` and on the whole phishing set."""
    streams = {"sea_abrupt": peers.load_stream("sea_abrupt", 2_000)}
    streams["phishing"] = peers.load_stream("phishing")
    return {
        name: {strategy: peers.run_strategy(stream, strategy) for strategy in peers.STRATEGIES}
        for name, stream in streams.items()
    }


@pytest.mark.parametrize("stream, n", [("sea_abrupt", 2_000), ("phishing", 1_250)])
def test_budget_is_respected(results: dict[str, Any], stream: str, n: int) -> None:
    for strategy in BUDGETED:
        used = results[stream][strategy]["labels_used"]
        assert used <= peers.BUDGET * n + 1, strategy
        assert used >= 0.9 * peers.BUDGET * n, strategy  # within 10% of the budget
    assert results[stream]["all_labels"]["labels_used"] == n


@pytest.mark.parametrize("stream", ["sea_abrupt", "phishing"])
def test_all_labels_is_a_ceiling_over_random(results: dict[str, Any], stream: str) -> None:
    assert results[stream]["all_labels"]["accuracy"] >= results[stream]["random"]["accuracy"]


def test_an_uncertainty_strategy_beats_random_on_phishing(results: dict[str, Any]) -> None:
    random = results["phishing"]["random"]["accuracy"]
    assert max(results["phishing"][s]["accuracy"] for s in UNCERTAINTY) > random


def test_real_sets_are_read_whole_in_file_order() -> None:
    stream = peers.load_stream("image_segments")
    assert (len(stream.labels), len(stream.classes)) == (2_310, 7)


def test_main_prints_one_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    peers.main(["--streams", "phishing", "--strategies", "random,margin+split"])
    report = json.loads(capsys.readouterr().out)
    entry = report["streams"]["phishing"]
    assert set(entry["strategies"]) == {"random", "margin+split"}
    assert entry["anchors"]["best_peer"] == {
        "name": "skactiveml.StreamProbabilisticAL",
        "accuracy": 0.876,
    }
    assert entry["default"]["strategy"] == report["default_strategy"] == "margin+split"
    assert report["mean_accuracy"]["random"] == entry["strategies"]["random"]["accuracy"]


def test_unknown_names_are_refused_with_the_allowed_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        peers.main(["--strategies", "margin+fancy"])
    assert exit_info.value.code == 2
    assert "allowed: random, all_labels, margin+variable_uncertainty" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown strategy 'bald'; allowed: random"):
        peers.run_strategy(peers.load_stream("phishing"), "bald")


def test_the_forest_learns_within_the_budget_as_the_linear_learner_does() -> None:
    stream = peers.load_stream("phishing")
    majority = max(stream.labels.count(label) for label in stream.classes) / len(stream.labels)
    for seed in (0, 1):
        forest = peers.run_strategy(stream, "margin+split", learner_name="forest", seed=seed)
        assert 0.9 * peers.BUDGET * 1_250 <= forest["labels_used"] <= peers.BUDGET * 1_250 + 1
        assert forest["accuracy"] > majority + 0.2  # it learns, far above the majority class
    first, again = (
        peers.run_strategy(stream, "random", learner_name="forest", seed=3) for _ in range(2)
    )
    assert first == {**again, "seconds": first["seconds"]}  # the seed fixes the run


def test_a_stream_of_streamals_own_is_z_scored_as_the_peers_see_it() -> None:
    samples = [({0: 10.0, 1: 0.0}, "a"), ({0: 30.0, 1: 0.0}, "b"), ({0: 20.0, 1: 5.0}, "a")]
    stream = peers.z_scored("three", samples)
    assert stream.classes == ["a", "b"] and stream.labels == ["a", "b", "a"]
    assert stream.features[1][0] == pytest.approx(1.0)  # (30 - 20) / 10 over what it has seen
    deviation = (50 / 9) ** 0.5  # of 0, 0, 5
    assert stream.features[2] == {0: pytest.approx(0.0), 1: pytest.approx((5 - 5 / 3) / deviation)}


def test_a_label_delay_holds_each_answer_back_and_spends_the_same_budget() -> None:
    stream = peers.load_stream("phishing")
    n, first_class = len(stream.labels), stream.classes[0]
    now, late, never = (peers.run_strategy(stream, "random", delay=d) for d in (0, 300, n))
    assert now["labels_used"] == late["labels_used"] == never["labels_used"]  # same draws
    # nothing learned before the stream ends: the untrained learner's first class, throughout
    assert never["accuracy"] == round(stream.labels.count(first_class) / n, 4)
    assert never["accuracy"] < late["accuracy"] < now["accuracy"]  # the answers' wait costs

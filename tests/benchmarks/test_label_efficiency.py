"""`benchmarks/label_efficiency.py`'s learning curve on held-out samples, on a small stream."""

from __future__ import annotations

import doctest
from pathlib import Path

from streamal.simulation.streams import builtin
from tests.benchmarks import load_benchmark

label_efficiency = load_benchmark("label_efficiency")


def test_every_version_is_tested_on_the_samples_after_the_stream(tmp_path: Path) -> None:
    reach = label_efficiency.held_out_labels_to_reach
    protocol = label_efficiency.PEERS_PROTOCOL
    needed = reach("stationary", 1500, 1500.0, tmp_path, 0.85, builtin, protocol)
    # 5 Gaussian classes (chance 0.2): both runs get there and stay, within their 150 labels
    assert needed is not None and set(needed) == {"default", "random"}
    assert all(labels is not None and 0 < labels <= 150 for labels in needed.values()), needed
    # a stream that drifts has no fixed concept to test on, and short does not grow longer
    assert reach("abrupt", 1500, 1500.0, tmp_path, 0.85, builtin, protocol) is None
    assert reach("short", 1500, 1500.0, tmp_path, 0.85, builtin, protocol) is None


def test_a_peer_streams_goal_is_set_against_learning_from_every_label(tmp_path: Path) -> None:
    runs = {"default": label_efficiency.RUNS["default"]}
    result = label_efficiency.peer_result("phishing", 20_000, 1500.0, tmp_path, runs=runs)
    accuracy = result["accuracy"]
    assert result["samples"] == 1250  # the bundled dataset, whole
    # every label learned beats a tenth of them, on the same samples, as the goal knows
    assert accuracy["default"] < accuracy["all_labels"] < 1.0, accuracy
    goal = label_efficiency.PEER_ANCHORS["phishing"][2] + 0.01
    assert result["goal_accuracy"] == round(goal, 4)
    assert result["goal_over_all_labels"] == round(goal - accuracy["all_labels"], 4)


def test_late_answers_are_learned_late(tmp_path: Path) -> None:
    runs = {"default": label_efficiency.RUNS["default"]}
    accuracy = {
        delay: label_efficiency.stream_result(
            "short", 1200, 1500.0, tmp_path / str(delay), ceiling=False, runs=runs,
            protocol=label_efficiency.with_label_delay(label_efficiency.PEERS_PROTOCOL, delay),
        )["accuracy"]["default"]
        for delay in (0.0, 0.5)
    }  # fmt: skip
    # 4 classes (chance 0.25): answers 750 samples late leave the first 750 of the 1,200 samples
    # to the untrained model, where answers before the next samples have it learn from the first
    assert accuracy[0.5] < 0.5 < 0.7 < accuracy[0.0], accuracy


def test_the_scripts_examples_hold() -> None:
    failed, tried = doctest.testmod(label_efficiency)
    assert tried >= 5 and failed == 0


def test_the_summary_reads_only_what_the_runs_measured() -> None:
    summary = label_efficiency.summary
    ran = {"accuracy": {"default": 0.9, "random": 0.86}}
    assert summary({"a": ran}) == {"default_minus_random": 0.04}  # no ceiling: no room
    assert summary({"a": {"accuracy": {"default": 0.9}}}) == {}  # --runs default: no lead
    # the ceiling under random (a drift it found late): no share of a room that is not there
    under = {"accuracy": {"default": 0.9, "random": 0.86, "all_labels": 0.85}}
    assert "share_of_room_taken" not in summary({"a": under})
    learners = {"best_peer_learner": "linear+random", "default_minus_best_peer_learner": 0.02}
    both = summary({"a": ran | learners, "b": ran | learners | {"goal_accuracy": 0.95}})
    assert both["goals_met"] == "0 of 1" and both["default_minus_best_peer_learner"] == 0.02

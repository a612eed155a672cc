"""`benchmarks/label_efficiency.py`'s learning curve on held-out samples, on a small stream."""

from __future__ import annotations

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

"""`benchmarks/label_efficiency.py`'s learning curve on held-out samples, on a small stream."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from streamal.simulation.streams import builtin

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # it imports peers.py from beside it
    try:
        spec = importlib.util.spec_from_file_location(
            "benchmarks_label_efficiency", BENCHMARKS / "label_efficiency.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


label_efficiency = _load()


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

"""Benchmark the strategy module; prints one JSON object.

- ``gating``: scoring + gating throughput of the batched path (one ``margin`` call and one
  ``decide``/``update`` per batch) against a per-sample Python loop making the same decisions
  (one sample at a time, as river's and scikit-activeml's stream strategies run), measured in
  the same run; the decisions are checked to be identical.
- ``k_center``: greedy k-center on a pool of ``N x 128`` float32 embeddings with labeled
  centers: seconds and peak resident memory.

Usage: ``python benchmarks/strategies.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamal.gates import Route
from streamal.pool import k_center
from streamal.strategies import StrategyConfig, build_auto_label, build_gate, margin

GATES = ("variable_uncertainty", "split", "quantile")


def route_stream(probs: torch.Tensor, gate_name: str, batch: int) -> np.ndarray:
    """Routes for every sample: margin utility, budget gate, auto-label gate, in batches."""
    config = StrategyConfig(gate={"name": gate_name}, auto_label={"min_audits": 1})
    gate, auto = build_gate(config), build_auto_label(config)
    assert auto is not None
    auto.observe(np.linspace(0.5, 1.0, 1_000), np.ones(1_000, dtype=bool))  # auto-labeling on
    routes = []
    for start in range(0, len(probs), batch):
        chunk = probs[start : start + batch]
        upstream = gate.decide(margin(chunk).numpy())
        decision = auto.decide(chunk.amax(dim=1).numpy(), upstream)
        gate.update(upstream)
        auto.update(decision)
        routes.append(decision.routes)
    return np.concatenate(routes)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def gating(samples: int, batch: int, classes: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    probs = torch.tensor(rng.dirichlet(np.full(classes, 0.3), size=samples), dtype=torch.float32)
    results: dict[str, Any] = {"samples": samples, "batch": batch, "classes": classes}
    route_stream(probs[:batch], GATES[0], batch)  # warm up torch and numpy
    for name in GATES:
        batched_s, batched = timed(partial(route_stream, probs, name, batch))
        single_s, single = timed(partial(route_stream, probs, name, 1))
        if not np.array_equal(batched, single):
            raise AssertionError(f"{name}: batched and per-sample decisions differ")
        results[name] = {
            "batched_samples_per_s": round(samples / batched_s),
            "per_sample_samples_per_s": round(samples / single_s),
            "speedup": round(single_s / batched_s, 1),
            "oracle_share": round(float((batched == Route.ORACLE).mean()), 4),
            "auto_label_share": round(float((batched == Route.AUTO_LABEL).mean()), 4),
        }
    return results


def resident_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def k_center_run(points: int, dim: int, k: int, labeled: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    pool = torch.randn(points, dim, generator=generator)
    centers = torch.randn(labeled, dim, generator=generator)
    before = resident_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
    seconds, picked = timed(lambda: k_center(pool, k, centers=centers))
    assert len(set(picked.tolist())) == k
    peak = resident_mib("VmHWM")
    return {
        "points": points,
        "dim": dim,
        "k": k,
        "labeled": labeled,
        "seconds": round(seconds, 2),
        "pool_mib": round(pool.numel() * pool.element_size() / 2**20, 1),
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(peak, 1),
        "peak_over_before_mib": round(peak - before, 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    quick = parser.parse_args().quick
    report = {
        "gating": gating(samples=2_000 if quick else 20_000, batch=256, classes=10),
        "k_center": k_center_run(
            points=10_000 if quick else 100_000, dim=128, k=30 if quick else 300, labeled=1_000
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

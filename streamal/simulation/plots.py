"""The pictures of a simulation: accuracy against labels spent, and over the stream."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt

STOP_MARKERS = {"flattened": "o", "accuracy_plateau": "s", "stable_predictions": "^",
                "low_uncertainty": "v", "budget_spent": "D"}  # fmt: skip


def accuracy_vs_labels(reports: Sequence[dict[str, Any]], path: Path) -> None:
    """Rolling prequential accuracy against the labels spent so far, one line per strategy,
    marked where the curve flattened and where each stopping rule first held."""
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for report in reports:
        series = report["series"]
        (line,) = axes.plot(series["labels_used"], series["accuracy"], label=_label(report))
        stopping = report["stopping"]
        points = {"flattened": stopping["flattened"], **stopping["rules"]}
        for name, point in points.items():
            if point is not None:
                axes.plot(point["labels"], point["accuracy"], marker=STOP_MARKERS[name],
                          markerfacecolor="none", markersize=8, color=line.get_color())  # fmt: skip
    for name, marker in STOP_MARKERS.items():  # one legend entry per marker
        axes.plot([], [], marker=marker, markerfacecolor="none", color="gray", linestyle="",
                  label=name.replace("_", " "))  # fmt: skip
    title = "Accuracy against labels spent (markers: flattened, stopping rules)"
    _finish(figure, axes, "labels used", title, path)


def accuracy_over_stream(reports: Sequence[dict[str, Any]], path: Path) -> None:
    """Rolling accuracy along the stream, with the stream's drifts, the detections and swaps."""
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=120)
    for report in reports:
        series = report["series"]
        (line,) = axes.plot(series["position"], series["accuracy"], label=_label(report))
        for swap in report["model_swaps"]:
            axes.plot(swap, 0.02, marker="|", markersize=10, color=line.get_color())
        for detected in report["drift_events"]:
            axes.axvline(detected, color=line.get_color(), linestyle=":", alpha=0.8)
    for index, drift in enumerate(reports[0]["stream_drifts"] if reports else []):
        axes.axvline(
            drift, color="red", linestyle="--", label="concept change" if index == 0 else None
        )
    title = "Accuracy over the stream (ticks: model swaps, dotted: drift detected)"
    _finish(figure, axes, "stream position (samples)", title, path)


def _label(report: dict[str, Any]) -> str:
    accuracy = report["prequential_accuracy"]
    return f"{report['strategy']} ({report['labels_used']:,} labels, accuracy {accuracy:.3f})"


def _finish(figure: Any, axes: Any, xlabel: str, title: str, path: Path) -> None:
    """The accuracy axis, grid, legend and title both plots share; then save to ``path``."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel("prequential accuracy (rolling 500)")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

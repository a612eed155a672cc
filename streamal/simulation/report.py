"""Run several strategies over one stream, and write what people look at: a JSON report,
two plots, and a summary table."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from streamal.config import Settings
from streamal.simulation import plots
from streamal.simulation.run import Options, Status, simulate
from streamal.simulation.streams import LabeledStream

BASELINES = ("random", "margin")


def strategies_with_baselines(names: Sequence[str], configured: str) -> list[str]:
    """The requested strategies, then the baselines that are not among them; ``default`` (the
    ``configured`` score) already is the baseline of that name, which would only repeat it.

    >>> strategies_with_baselines(["default", "entropy", "margin"], "margin")
    ['default', 'entropy', 'margin', 'random']
    >>> strategies_with_baselines(["default"], "margin")
    ['default', 'random']
    >>> strategies_with_baselines(["default"], "entropy")
    ['default', 'random', 'margin']
    """
    chosen = list(dict.fromkeys(names))
    covered = set(chosen) | ({configured} if "default" in chosen else set())
    return chosen + [b for b in BASELINES if b not in covered]


def compare(
    settings: Settings,
    stream: LabeledStream,
    names: Sequence[str],
    out: Path,
    options: Options,
    description: str,
) -> list[dict[str, Any]]:
    """Simulate each strategy (``default`` = the configured one), then write the report files."""
    reports = []
    for name in names:
        score = settings.strategy.score if name == "default" else name
        reports.append(simulate(settings, stream, name, score, out / name, options))
    out.mkdir(parents=True, exist_ok=True)
    summary = {"stream": description, "samples": len(stream.ids), "strategies": reports}
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    plots.accuracy_vs_labels(reports, out / "accuracy_vs_labels.png")
    plots.accuracy_over_stream(reports, out / "accuracy_over_stream.png")
    return reports


def print_summary(reports: Sequence[dict[str, Any]], out: Path, file: TextIO = sys.stdout) -> None:
    """A table of the reports, and where the files are."""
    header = f"{'strategy':<12}{'labels':>8}{'rate':>7}{'auto':>8}{'issued':>8}{'standing':>9}"
    header += f"{'retracted':>10}{'wrong run':>10}{'pauses':>7}{'accuracy':>10}{'final':>7}"
    header += f"{'versions':>9}{'drifts':>7}"
    print(header, file=file)
    for r in reports:
        issued, standing = (
            "-" if r[key] is None else f"{r[key]:.3f}"
            for key in ("auto_label_precision", "standing_precision")
        )
        print(
            f"{r['strategy']:<12}{r['labels_used']:>8,}{r['label_rate']:>7.3f}"
            f"{r['auto_labeled_share']:>8.1%}{issued:>8}{standing:>9}{r['retracted']:>10}"
            f"{r['longest_wrong_run']:>10}{sum(r['auto_label_pauses'].values()):>7}"
            f"{r['prequential_accuracy']:>10.3f}{r['final_accuracy']:>7.3f}"
            f"{r['model_versions']:>9}{len(r['drift_events']):>7}",
            file=file,
        )
    print_stopping(reports, file)
    print(f"report: {out / 'report.json'}", file=file)
    print(f"plots: {out / 'accuracy_vs_labels.png'}, {out / 'accuracy_over_stream.png'}", file=file)


STOPPING_COLUMNS = {"accuracy_plateau": "plateau", "stable_predictions": "stable",
                    "low_uncertainty": "certain", "budget_spent": "budget"}  # fmt: skip


def print_stopping(reports: Sequence[dict[str, Any]], file: TextIO = sys.stdout) -> None:
    """Labels spent where each run's learning curve flattened, and where each stopping rule
    first held (``-``: never).

    >>> rules = dict.fromkeys(STOPPING_COLUMNS) | {"stable_predictions": {"labels": 420}}
    >>> report = {"strategy": "margin", "stopping": {"flattened": {"labels": 380}, "rules": rules}}
    >>> print_stopping([report], sys.stdout)
    stopping: labels spent where the curve flattened, and where each rule first held
    strategy       flat plateau  stable certain  budget
    margin          380       -     420       -       -
    """
    print(
        "stopping: labels spent where the curve flattened, and where each rule first held",
        file=file,
    )
    header = f"{'strategy':<12}{'flat':>7}" + "".join(f"{c:>8}" for c in STOPPING_COLUMNS.values())
    print(header, file=file)
    for r in reports:
        stopping = r["stopping"]
        points = [stopping["flattened"], *(stopping["rules"][rule] for rule in STOPPING_COLUMNS)]
        cells = ["-" if p is None else f"{p['labels']:,}" for p in points]
        print(
            f"{r['strategy']:<12}{cells[0]:>7}" + "".join(f"{c:>8}" for c in cells[1:]), file=file
        )


class ProgressLine:
    """Shows a running simulation: one updating line on a terminal, else a line per 10%."""

    def __init__(self, file: TextIO = sys.stderr) -> None:
        self._file = file
        self._shown: tuple[str, int] = ("", -1)

    def __call__(self, status: Status) -> None:
        done = status.routed / max(status.total, 1)
        answered = status.answered_accuracy
        accuracy = "-" if answered is None else f"{answered:.2f}"
        text = (
            f"[{status.strategy}] {status.routed:,}/{status.total:,} samples ({done:.0%}) | "
            f"asked {status.asked:,} | auto-labeled {status.auto_labeled:,} | "
            f"model v{status.version} | answered accuracy (last 500) {accuracy}"
        )
        if self._file.isatty():
            end = "\n" if status.routed >= status.total else ""
            print(f"\r{text:<110}", end=end, file=self._file, flush=True)
        elif (status.strategy, int(done * 10)) != self._shown:
            self._shown = (status.strategy, int(done * 10))
            print(text, file=self._file, flush=True)

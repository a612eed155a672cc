"""What a running simulation shows: names that say what each accuracy is measured on."""

from __future__ import annotations

import io

from streamal.simulation.report import ProgressLine
from streamal.simulation.run import Status


def test_progress_line_names_the_answered_accuracy_not_the_prequential_one() -> None:
    out = io.StringIO()
    ProgressLine(out)(Status("default", 1000, 2000, 1000, 90, 5, 2, answered_accuracy=0.6))
    line = out.getvalue()
    assert "answered accuracy (last 500) 0.60" in line and "prequential" not in line

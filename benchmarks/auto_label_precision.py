"""Whether auto-labels keep their precision promise, on every stream; prints one JSON object.

The real serve + simulated annotator + train loop runs streamal's default strategy at budget
0.1 on each built-in stream and each peer-anchor stream, with the annotator's label delay and a
share of wrong answers (label noise). Reported per stream, against the ground truth:

- ``auto_label_precision``: the share of auto-labels that were right, as issued;
- ``standing_precision``: the same over the auto-labels that stand after retractions;
- ``retracted``: how many auto-labels were retracted;
- ``auto_labeled_share``: auto-labels over the stream's samples (and over its second half,
  ``auto_labeled_share_second_half``: once the model had time to become good);
- ``longest_wrong_run``: the longest run of consecutive wrong auto-labels, as issued;
- ``auto_label_pauses``: the pauses of auto-labeling, by reason;
- ``meets_target``: standing precision at or above ``strategy.auto_label.target_precision``;
- ``prequential_accuracy``, for context.

Usage: ``python benchmarks/auto_label_precision.py [--samples N] [--rate R] [--streams A,B]
[--peers A,B] [--label-delay S] [--label-noise P] [--declared-noise P]`` (``--streams ""`` or
``--peers ""``: none). The annotators' error rate is declared to streamal
(``strategy.auto_label.label_noise``) as measured, unless ``--declared-noise`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from streamal.config import Settings
from streamal.simulation.run import Options, simulate
from streamal.simulation.streams import BUILTIN, PEERS, builtin, peer

KEYS = (
    "auto_label_precision", "standing_precision", "retracted", "auto_labeled_share",
    "auto_labeled_share_second_half",
    "longest_wrong_run", "auto_label_pauses", "prequential_accuracy",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=12_000, help="samples per stream")
    parser.add_argument("--rate", type=float, default=1500.0, help="samples per second")
    parser.add_argument("--streams", default=",".join(BUILTIN), help="comma-separated")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated")
    parser.add_argument("--label-delay", type=float, default=0.5, help="seconds of stream time")
    parser.add_argument("--label-noise", type=float, default=0.02, help="share of wrong answers")
    parser.add_argument(
        "--declared-noise", type=float, default=None,
        help="strategy.auto_label.label_noise (default: --label-noise, as a user who measured it)",
    )  # fmt: skip
    args = parser.parse_args()
    declared = args.label_noise if args.declared_noise is None else args.declared_noise
    settings = Settings(strategy={"auto_label": {"label_noise": declared}})
    target = settings.strategy.auto_label.target_precision
    options = Options(
        budget=0.1, rate=args.rate, seed=0, label_delay_s=args.label_delay,
        label_noise=args.label_noise,
    )  # fmt: skip
    streams = [(n, builtin) for n in args.streams.split(",") if n]
    streams += [(n, peer) for n in args.peers.split(",") if n]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in streams:
            stream = make(name, args.samples, seed=0)
            report = simulate(
                settings, stream, "default", settings.strategy.score, Path(tmp) / name, options
            )
            result = {key: report.get(key) for key in KEYS}
            standing = result["standing_precision"]
            result["meets_target"] = standing is None or standing >= target
            results[name] = result
            print(f"{name}: {result}", file=sys.stderr)
    held = [r["meets_target"] for r in results.values()]
    summary = {
        "target_precision": target,
        "label_delay_s": args.label_delay,
        "label_noise": args.label_noise,
        "declared_noise": declared,
        "streams_meeting_target": f"{sum(held)}/{len(held)}",
    }
    print(json.dumps({"summary": summary, "streams": results}, indent=2))


if __name__ == "__main__":
    main()

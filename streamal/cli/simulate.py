"""``streamal simulate`` and ``streamal demo``: the real serve and train on a replayed stream."""

from __future__ import annotations

import argparse
import sys

from streamal.cli.common import EXIT_OK, add_config_option, positive_float, positive_int

__all__ = ["add_parsers"]


def _simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamal.config import load_settings
    from streamal.simulation import report, streams
    from streamal.simulation.run import Options

    settings = load_settings(args.config)
    if args.stream in streams.BUILTIN:
        stream = streams.builtin(args.stream, args.samples, seed=settings.strategy.seed)
    else:
        stream = streams.from_jsonl(Path(args.stream))
    names = report.strategies_with_baselines(args.strategies.split(","), settings.strategy.score)
    options = Options(
        budget=args.budget, label_delay_s=args.label_delay, label_noise=args.label_noise,
        rate=args.rate, seed=settings.strategy.seed, progress=report.ProgressLine(),
    )  # fmt: skip
    out = Path(args.out)
    reports = report.compare(settings, stream, names, out, options, args.stream)
    report.print_summary(reports, out)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamal.config import load_settings
    from streamal.simulation import report, streams
    from streamal.simulation.run import Options

    settings = load_settings(args.config)
    rate = 1500.0
    samples = args.samples
    stream = streams.rotating(samples, noise=0.0, seed=settings.strategy.seed)
    print(
        f"streamal demo: {samples:,} samples on either side of a boundary (a hyperplane in 8 "
        "dimensions) that turns steadily, half a turn over the stream, so yesterday's labels "
        "grow wrong; serve + simulated annotator + train on the embedded transport, "
        f"the configured strategy ({settings.strategy.score}, {settings.strategy.gate.name} gate, "
        f"budget {settings.strategy.budget}) against random at the same budget",
        file=sys.stderr,
    )
    options = Options(
        budget=settings.strategy.budget, rate=rate, seed=settings.strategy.seed,
        progress=report.ProgressLine(), time_limit_s=args.seconds / 2,
    )  # fmt: skip
    out = Path(args.out)
    reports = report.compare(
        settings, stream, ["default", "random"], out, options, "rotating, noise-free"
    )
    report.print_summary(reports, out)
    return EXIT_OK


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 1 (got {text})")
    return value


def _share_or_zero(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 0 and < 1 (got {text})")
    return value


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal simulate`` and ``streamal demo``."""
    simulate = subparsers.add_parser(
        "simulate",
        help="replay a labeled stream through serve + train with a simulated annotator",
        description="Replay a labeled stream (built in, or a JSONL file of samples with a "
        "label) through the real serve and train code on the embedded transport, for each "
        "strategy and the random and margin baselines at the same budget (margin unless the "
        "configured score is margin already); writes report.json and PNG plots.",
    )
    add_config_option(simulate)
    simulate.add_argument(
        "--stream",
        default="abrupt",
        metavar="NAME|FILE",
        help="a built-in stream (stationary, abrupt, gradual, sea, sparse, pixels, many_classes, "
        "rare, relocated, relocated_gradual, rotating, short) or a .jsonl file (default: abrupt)",
    )
    simulate.add_argument(
        "--strategies",
        default="default",
        metavar="LIST",
        help="comma-separated utilities; 'default' is the configured one",
    )
    simulate.add_argument("--budget", type=_share, default=0.1, metavar="B")
    simulate.add_argument(
        "--label-delay",
        type=float,
        default=0.2,
        metavar="S",
        help="seconds (of the stream's clock) before the simulated annotator answers",
    )
    simulate.add_argument(
        "--label-noise",
        type=_share_or_zero,
        default=0.0,
        metavar="P",
        help="share of wrong answers",
    )
    simulate.add_argument(
        "--samples",
        type=positive_int,
        default=20_000,
        metavar="N",
        help="length of a built-in stream",
    )
    simulate.add_argument(
        "--rate",
        type=positive_float,
        default=1500.0,
        metavar="R",
        help="samples per second of the stream's clock (delays and the round interval run on it)",
    )
    simulate.add_argument("--out", default="streamal-simulation", metavar="DIR")
    simulate.set_defaults(run=_simulate)

    demo = subparsers.add_parser(
        "demo",
        help="see the whole loop work in about a minute: serve, annotate, train, hot-swap",
        description="Run serve + a simulated annotator + train on a generated drifting stream "
        "on the embedded transport, the configured strategy against random, with progress; "
        "prints a summary and writes report.json and PNG plots.",
    )
    add_config_option(demo)
    demo.add_argument(
        "--samples",
        type=positive_int,
        default=20_000,
        metavar="N",
        help="length of the stream (default: 20000)",
    )
    demo.add_argument(
        "--seconds",
        type=positive_float,
        default=90.0,
        metavar="S",
        help="wall-time cap, half for each of the two runs: a run that reaches it covers only "
        "the samples served by then (default: 90)",
    )
    demo.add_argument("--out", default="streamal-demo", metavar="DIR")
    demo.set_defaults(run=_demo)

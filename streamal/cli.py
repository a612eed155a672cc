"""The ``streamal`` command line.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from streamal import __version__
from streamal.errors import ConfigError, StreamalError

if TYPE_CHECKING:
    from streamal.config import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Command = Callable[[argparse.Namespace], int]


def _config_show(args: argparse.Namespace) -> int:
    from streamal.config import load_settings, show

    settings = load_settings(args.config)
    if args.format == "json":
        print(settings.model_dump_json(indent=2))
    else:
        print(show(settings), end="")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from streamal.messages import MESSAGES, json_schemas

    schemas = json_schemas()
    if args.name is None:
        print(json.dumps(schemas, indent=2))
        return EXIT_OK
    name = args.name.lower().replace("_", "-")
    if name not in MESSAGES:
        raise ConfigError(f"unknown message '{args.name}'; allowed: {', '.join(MESSAGES)}")
    print(json.dumps(schemas[name], indent=2))
    return EXIT_OK


class _Process(Protocol):
    def run(self) -> None: ...
    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None: ...


def _run_until_stopped(args: argparse.Namespace, make: Callable[[Settings], _Process]) -> int:
    """Load the settings, set up logging, run the process; SIGTERM/SIGINT stop it gently."""
    from streamal.config import load_settings
    from streamal.logs import configure

    settings = load_settings(args.config)
    configure(settings.log)
    process = make(settings)
    signal.signal(signal.SIGTERM, process.stop)
    signal.signal(signal.SIGINT, process.stop)
    process.run()
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from streamal.stream.daemon import Daemon

    return _run_until_stopped(
        args, lambda s: Daemon(s, max_samples=args.max_samples, idle_timeout_s=args.idle_timeout)
    )


def _train(args: argparse.Namespace) -> int:
    from streamal.training.trainer import Trainer

    return _run_until_stopped(
        args, lambda s: Trainer(s, max_rounds=args.max_rounds, idle_timeout_s=args.idle_timeout)
    )


def _pool_select(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamal.config import load_settings
    from streamal.pool import job
    from streamal.strategies import PoolConfig
    from streamal.training.labels import LabelStore

    settings = load_settings(args.config)
    config = PoolConfig(
        score=args.strategy, diversity=args.diversity, mc_passes=settings.strategy.mc_passes,
        seed=settings.strategy.seed,
    )  # fmt: skip
    pool = job.read_pool(Path(args.input), settings)
    predictor = job.load_model(settings, args.model)
    labeled = None
    if settings.train.label_store.exists():
        store = LabelStore(settings.train.label_store, settings.model.classes)
        labeled = store.labeled().features
        store.close()
    selection = job.select(
        settings, pool, args.budget, config, predictor, labeled, job.print_progress
    )
    job.write_selection(Path(args.output), pool, selection)
    print(
        f"selected {len(selection.indices):,} of {len(pool.ids):,} items "
        f"({args.strategy}, diversity {args.diversity}, model v{predictor.version}) "
        f"in {selection.seconds:.1f}s -> {args.output}",
        file=sys.stderr,
    )
    if args.to_topic:
        sent = job.send_to_annotators(settings, pool, selection, predictor)
        print(f"sent {sent:,} label requests to {settings.topics.label_requests}", file=sys.stderr)
    return EXIT_OK


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
    names = report.strategies_with_baselines(args.strategies.split(","))
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
    samples = max(2000, min(20_000, int(500 * args.seconds / 2)))  # 2 runs at ~1,000/s fit
    stream = streams.builtin("abrupt", samples, seed=settings.strategy.seed)
    print(
        f"streamal demo: {samples:,} samples of a 3-class stream whose classes swap places at "
        f"{stream.drifts[0]:,}; serve + simulated annotator + train on the embedded transport, "
        f"the configured strategy ({settings.strategy.score}, {settings.strategy.gate.name} gate, "
        f"budget {settings.strategy.budget}) against random at the same budget",
        file=sys.stderr,
    )
    options = Options(
        budget=settings.strategy.budget, rate=rate, seed=settings.strategy.seed,
        progress=report.ProgressLine(), time_limit_s=args.seconds / 2,
    )  # fmt: skip
    out = Path(args.out)
    reports = report.compare(settings, stream, ["default", "random"], out, options, "abrupt")
    report.print_summary(reports, out)
    return EXIT_OK


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {text})")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (seconds, rates)."""
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (got {text})")
    return value


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


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="YAML config file (default: $STREAMAL_CONFIG; STREAMAL_* variables override it)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="streamal",
        description="Stream-based active learning: ask humans about the uncertain samples of a "
        "Kafka stream, auto-label the confident ones, retrain continuously.",
        epilog="Run 'streamal COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"streamal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser(
        "show", help="print the effective configuration (file + environment), secrets masked"
    )
    add_config_option(show)
    show.add_argument("--format", choices=["yaml", "json"], default="yaml", help="output format")
    show.set_defaults(run=_config_show)

    serve = commands.add_parser(
        "serve",
        help="run the selective-sampling daemon: route samples to annotators, auto-labels or skip",
        description="Consume samples, predict with the current model, and route each sample to "
        "label-requests, auto-labels or nowhere, exactly once. Stops on SIGTERM/SIGINT after "
        "committing the batch in hand.",
    )
    add_config_option(serve)
    serve.add_argument("--max-samples", type=positive_int, metavar="N", help="stop after N samples")
    serve.add_argument(
        "--idle-timeout",
        type=positive_float,
        metavar="S",
        help="stop after S seconds without samples",
    )
    serve.set_defaults(run=_serve)

    train = commands.add_parser(
        "train",
        help="run the periodic trainer: keep the labels, train, publish better models",
        description="Join the annotators' labels with the label requests, train in rounds "
        "(every train.interval_s, every train.min_new_labels labels, or early after a drift), "
        "and publish a new version only if it does no worse than the current one.",
    )
    add_config_option(train)
    train.add_argument("--max-rounds", type=positive_int, metavar="N", help="stop after N rounds")
    train.add_argument(
        "--idle-timeout",
        type=positive_float,
        metavar="S",
        help="stop after S seconds without records",
    )
    train.set_defaults(run=_train)

    from streamal.strategies import DIVERSITIES, SCORES

    pool = commands.add_parser("pool", help="select items of a stored pool for labeling")
    pool_commands = pool.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    select = pool_commands.add_parser(
        "select",
        help="pick the K most informative pool items with the stream's strategy module",
        description="Score a pool (JSONL of samples, or .npz with ids and features) with the "
        "current model and a query strategy, pick K items (with batch diversity if asked) and "
        "write their ids, utilities and ranks.",
    )
    add_config_option(select)
    select.add_argument("-i", "--input", required=True, metavar="FILE", help=".jsonl or .npz pool")
    select.add_argument("-k", "--budget", required=True, type=positive_int, metavar="K")
    select.add_argument("--strategy", default="margin", choices=list(SCORES), metavar="NAME",
                        help=f"utility: {', '.join(SCORES)} (default: margin)")  # fmt: skip
    select.add_argument("--diversity", default="none", choices=list(DIVERSITIES),
                        help="batch diversity (default: none)")  # fmt: skip
    select.add_argument("--model", default="latest", metavar="latest|PATH",
                        help="the newest stored model (default) or a checkpoint file")  # fmt: skip
    select.add_argument("-o", "--output", required=True, metavar="FILE", help=".jsonl or .csv")
    select.add_argument("--to-topic", action="store_true",
                        help="also send the picks to annotators as label requests")  # fmt: skip
    select.set_defaults(run=_pool_select)

    simulate = commands.add_parser(
        "simulate",
        help="replay a labeled stream through serve + train with a simulated annotator",
        description="Replay a labeled stream (built in, or a JSONL file of samples with a "
        "label) through the real serve and train code on the embedded transport, for each "
        "strategy and the random and margin baselines at the same budget; writes report.json "
        "and PNG plots.",
    )
    add_config_option(simulate)
    simulate.add_argument(
        "--stream",
        default="abrupt",
        metavar="NAME|FILE",
        help="stationary, abrupt, gradual, or a .jsonl file (default: abrupt)",
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

    demo = commands.add_parser(
        "demo",
        help="see the whole loop work in about a minute: serve, annotate, train, hot-swap",
        description="Run serve + a simulated annotator + train on a generated drifting stream "
        "on the embedded transport, the configured strategy against random, with progress; "
        "prints a summary and writes report.json and PNG plots.",
    )
    add_config_option(demo)
    demo.add_argument(
        "--seconds",
        type=positive_float,
        default=90.0,
        metavar="S",
        help="time budget (default: 90)",
    )
    demo.add_argument("--out", default="streamal-demo", metavar="DIR")
    demo.set_defaults(run=_demo)

    from streamal.tools import annotate, feed, tail  # they import this module's helpers

    feed.add_parser(commands)
    tail.add_parser(commands)
    annotate.add_parser(commands)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the messages (all, or one by name)"
    )
    schema.add_argument(
        "name", nargs="?", metavar="NAME", help="sample, label-request, auto-label, "
        "oracle-label, model-announcement or dead-letter (default: all)",
    )  # fmt: skip
    schema.set_defaults(run=_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line to stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        return run(args)
    except ConfigError as error:
        print(
            error if str(error).startswith("config error") else f"error: {error}", file=sys.stderr
        )
        return EXIT_USAGE
    except StreamalError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

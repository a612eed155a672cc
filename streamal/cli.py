"""The ``streamal`` command line.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
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
    serve.add_argument(
        "--max-samples", type=_positive_int, metavar="N", help="stop after N samples"
    )
    serve.add_argument(
        "--idle-timeout",
        type=_positive_float,
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
    train.add_argument("--max-rounds", type=_positive_int, metavar="N", help="stop after N rounds")
    train.add_argument(
        "--idle-timeout",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds without records",
    )
    train.set_defaults(run=_train)

    from streamal.tools import feed, tail  # they import this module's helpers

    feed.add_parser(commands)
    tail.add_parser(commands)

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

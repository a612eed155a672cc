"""The ``streamal`` command line: one module per command, shared pieces in ``common``.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamal import __version__
from streamal.cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, Command
from streamal.errors import ConfigError, StreamalError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    # The commands and tools import streamal.cli.common, which importing this package runs
    # first: imported here, not at the top, so importing common never imports a command.
    from streamal.cli import bridge, config, pool, schema, serve, simulate, train
    from streamal.tools import annotate, feed, tail

    parser = argparse.ArgumentParser(
        prog="streamal",
        description="Stream-based active learning: ask humans about the uncertain samples of a "
        "Kafka stream, auto-label the confident ones, retrain continuously.",
        epilog="Run 'streamal COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"streamal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    config.add_parser(commands)
    serve.add_parser(commands)
    train.add_parser(commands)
    pool.add_parser(commands)
    simulate.add_parsers(commands)
    feed.add_parser(commands)
    tail.add_parser(commands)
    annotate.add_parser(commands)
    bridge.add_parser(commands)
    schema.add_parser(commands)
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

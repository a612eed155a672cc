"""What every ``streamal`` command shares: exit codes, argument types, ``--config``, the run loop.

Commands (``streamal.cli.*``) and the operator tools (``streamal.tools.*``) import this module;
it imports none of them, so the command line has no import cycle.
"""

from __future__ import annotations

import argparse
import math
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from streamal.config import Settings

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Command",
    "add_config_option",
    "positive_float",
    "positive_int",
    "run_until_stopped",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Command = Callable[[argparse.Namespace], int]


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


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``-c/--config FILE`` to a command's parser."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="YAML config file (default: $STREAMAL_CONFIG; STREAMAL_* variables override it)",
    )


class Process(Protocol):
    """A long-running process: ``run`` until ``stop`` (a signal handler) is called."""

    def run(self) -> None: ...
    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None: ...


def run_until_stopped(args: argparse.Namespace, make: Callable[[Settings], Process]) -> int:
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

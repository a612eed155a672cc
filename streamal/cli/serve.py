"""``streamal serve``: the selective-sampling daemon."""

from __future__ import annotations

import argparse

from streamal.cli.common import add_config_option, positive_float, positive_int, run_until_stopped

__all__ = ["add_parser"]


def _serve(args: argparse.Namespace) -> int:
    from streamal.stream.daemon import Daemon

    return run_until_stopped(
        args, lambda s: Daemon(s, max_samples=args.max_samples, idle_timeout_s=args.idle_timeout)
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal serve``."""
    serve = subparsers.add_parser(
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

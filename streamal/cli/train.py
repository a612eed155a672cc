"""``streamal train``: the periodic trainer."""

from __future__ import annotations

import argparse

from streamal.cli.common import add_config_option, positive_float, positive_int, run_until_stopped

__all__ = ["add_parser"]


def _train(args: argparse.Namespace) -> int:
    from streamal.training.trainer import Trainer

    return run_until_stopped(
        args, lambda s: Trainer(s, max_rounds=args.max_rounds, idle_timeout_s=args.idle_timeout)
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal train``."""
    train = subparsers.add_parser(
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

"""``streamal pool select``: pick the most informative items of a stored pool."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from streamal.cli.common import EXIT_OK, add_config_option, positive_int
from streamal.strategies import DIVERSITIES, SCORES

if TYPE_CHECKING:
    from streamal.config import Settings
    from streamal.strategies import PoolConfig

__all__ = ["add_parser"]


def _select(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamal.config import load_settings
    from streamal.pool import job
    from streamal.training.labels import LabelStore

    settings = load_settings(args.config)
    config = _pool_config(args, settings)
    predictor = job.load_model(settings, args.model)
    selector = job.selector_for(config, predictor)
    pool = job.read_pool(Path(args.input))
    labeled = None
    if settings.train.label_store.exists():
        store = LabelStore(settings.train.label_store, settings.model.classes)
        labeled = store.labeled().samples
        store.close()
    selection = job.select(
        settings, pool, args.budget, selector, predictor, labeled, job.print_progress
    )
    job.write_selection(Path(args.output), pool, selection)
    print(
        f"selected {len(selection.indices):,} of {len(pool.ids):,} items "
        f"({args.strategy}, diversity {args.diversity}, model v{predictor.version}) "
        f"in {selection.seconds:.1f}s -> {args.output}",
        file=sys.stderr,
    )
    print(job.stopping(settings, pool, len(labeled or [])).summary(), file=sys.stderr)
    if args.to_topic:
        sent = job.send_to_annotators(settings, pool, selection, predictor)
        print(f"sent {sent:,} label requests to {settings.topics.label_requests}", file=sys.stderr)
    return EXIT_OK


def _pool_config(args: argparse.Namespace, settings: Settings) -> PoolConfig:
    """``--strategy`` and ``--diversity`` with the strategy's passes and seed; a bad name is a
    one-line `ConfigError` naming its flag."""
    from pydantic import ValidationError

    from streamal.errors import ConfigError
    from streamal.strategies import PoolConfig
    from streamal.validation import one_line

    try:
        return PoolConfig(
            score=args.strategy, diversity=args.diversity, mc_passes=settings.strategy.mc_passes,
            seed=settings.strategy.seed,
        )  # fmt: skip
    except ValidationError as error:
        field, _, problem = one_line(error, PoolConfig).partition(": ")
        flag = {"score": "--strategy", "diversity": "--diversity"}.get(field, field)
        raise ConfigError(f"config error: {flag}: {problem}") from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal pool`` and its actions."""
    pool = subparsers.add_parser("pool", help="select items of a stored pool for labeling")
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
    select.add_argument("--strategy", default="margin", metavar="NAME|package.module:object",
                        help=f"utility: {', '.join(SCORES)}, or a score of yours by import path "
                        "(default: margin)")  # fmt: skip
    select.add_argument("--diversity", default="none", metavar="NAME|package.module:object",
                        help=f"batch diversity: {', '.join(DIVERSITIES)}, or a selector of yours "
                        "by import path (default: none)")  # fmt: skip
    select.add_argument("--model", default="latest", metavar="latest|PATH",
                        help="the newest stored model (default) or a checkpoint file")  # fmt: skip
    select.add_argument("-o", "--output", required=True, metavar="FILE", help=".jsonl or .csv")
    select.add_argument("--to-topic", action="store_true",
                        help="also send the picks to annotators as label requests")  # fmt: skip
    select.set_defaults(run=_select)

"""``streamal pool select``: pick the most informative items of a stored pool."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from streamal.cli.common import EXIT_OK, add_config_option, positive_int
from streamal.strategies import DIVERSITIES, SCORES

if TYPE_CHECKING:
    from streamal.config import Settings
    from streamal.messages import Sample
    from streamal.strategies import PoolConfig

__all__ = ["add_parser"]


def _select(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamal.config import load_settings
    from streamal.pool import job, proxy

    settings = load_settings(args.config)
    config = _pool_config(args, settings)
    labeled = _labeled(settings)
    if args.proxy:
        targets = (
            None if labeled is None else proxy.labeled_targets(*labeled, settings.model.classes)
        )
        predictor = proxy.load_proxy(settings, args.proxy, targets)
        chosen_by = f"proxy {args.proxy}"
    else:
        predictor = job.load_model(settings, args.model)
        chosen_by = f"model v{predictor.version}"
    selector = job.selector_for(config, predictor)
    pool = job.read_pool(Path(args.input))
    selection = job.select(
        settings, pool, args.budget, selector, predictor,
        None if labeled is None else labeled[0], job.print_progress,
    )  # fmt: skip
    job.write_selection(Path(args.output), pool, selection)
    print(
        f"selected {len(selection.indices):,} of {len(pool.ids):,} items "
        f"({args.strategy}, diversity {args.diversity}, {chosen_by}) "
        f"in {selection.seconds:.1f}s -> {args.output}",
        file=sys.stderr,
    )
    print(job.stopping(settings, pool, len(labeled or [])).summary(), file=sys.stderr)
    if args.to_topic:
        sent = job.send_to_annotators(settings, pool, selection, predictor)
        print(f"sent {sent:,} label requests to {settings.topics.label_requests}", file=sys.stderr)
    return EXIT_OK


def _labeled(settings: Settings) -> tuple[list[Sample], list[str]] | None:
    """The label store's labeled samples and their labels, if it exists."""
    from streamal.training.labels import LabelStore

    if not settings.train.label_store.exists():
        return None
    store = LabelStore(settings.train.label_store, settings.model.classes)
    try:
        labeled = store.labeled()
    finally:
        store.close()
    return labeled.samples, labeled.labels


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
    select.add_argument("--proxy", metavar="fit|latest|PATH",
                        help="select with the small proxy model of pool.proxy instead (selection "
                        "via proxy): trained now on the label store's labels (fit), its newest "
                        "stored version, or a checkpoint file")  # fmt: skip
    select.add_argument("-o", "--output", required=True, metavar="FILE", help=".jsonl or .csv")
    select.add_argument("--to-topic", action="store_true",
                        help="also send the picks to annotators as label requests")  # fmt: skip
    select.set_defaults(run=_select)

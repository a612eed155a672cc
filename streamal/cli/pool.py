"""``streamal pool select``: pick the most informative items of a stored pool."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, get_args

from streamal.cli.common import EXIT_OK, add_config_option, positive_int
from streamal.strategies import DIVERSITIES, SCORES, ColdStart

if TYPE_CHECKING:
    from streamal.config import Settings
    from streamal.messages import Sample
    from streamal.strategies import PoolConfig

__all__ = ["add_parser"]


def _select(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamal.config import load_settings
    from streamal.model import ModelLoader
    from streamal.pool import coldstart, job, proxy

    settings = load_settings(args.config)
    config = _pool_config(args, settings)
    labeled = _labeled(settings)
    samples, labels = labeled or ([], [])
    trained = True
    try:
        if args.proxy:
            targets = proxy.labeled_targets(samples, labels, settings.model.classes)
            predictor = proxy.load_proxy(settings, args.proxy, targets)
            chosen_by = f"proxy {args.proxy}"
        else:
            predictor = job.load_model(settings, args.model)
            chosen_by = f"model v{predictor.version}"
    except job.NoModel:
        if config.cold_start == "off":
            raise
        predictor, trained = ModelLoader(settings.model, settings.strategy.seed).untrained(), False
        chosen_by = "no model"
    selector = job.selector_for(config, predictor)
    pool = job.read_pool(Path(args.input))
    cold = None
    if config.cold_start != "off":
        cold = coldstart.cold_reason(trained, labels, settings.model.classes)
    if cold:
        selection = coldstart.select_cold(pool, args.budget, config, predictor, samples)
        chosen_by = f"cold start {config.cold_start}: {cold}"
    else:
        chosen_by = f"{args.strategy}, diversity {args.diversity}, {chosen_by}"
        selection = job.select(
            settings, pool, args.budget, selector, predictor, samples, job.print_progress
        )
    job.write_selection(Path(args.output), pool, selection)
    print(
        f"selected {len(selection.indices):,} of {len(pool.ids):,} items ({chosen_by}) "
        f"in {selection.seconds:.1f}s -> {args.output}",
        file=sys.stderr,
    )
    print(job.stopping(settings, pool, len(samples)).summary(), file=sys.stderr)
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
            score=args.strategy, diversity=args.diversity, subsample=args.subsample,
            cold_start=args.cold_start, mc_passes=settings.strategy.mc_passes,
            seed=settings.strategy.seed,
        )  # fmt: skip
    except ValidationError as error:
        field, _, problem = one_line(error, PoolConfig).partition(": ")
        flag = {"score": "--strategy", "diversity": "--diversity"}.get(field, f"--{field}")
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
    select.add_argument("--subsample", type=positive_int, metavar="N",
                        help="score only N pool items drawn at random (seeded by strategy.seed): "
                        "a huge pool costs what N cost, and its outliers stay few")  # fmt: skip
    select.add_argument("--cold-start", default="kcenter", choices=get_args(ColdStart),
                        help="while there is no trained model, or a class has no label yet, pick "
                        "items that cover the pool: greedy k-center (default) or k-means++ draws "
                        "over the model's standardized inputs; off: select as usual (and stop "
                        "without a model)")  # fmt: skip
    select.add_argument("-o", "--output", required=True, metavar="FILE", help=".jsonl or .csv")
    select.add_argument("--to-topic", action="store_true",
                        help="also send the picks to annotators as label requests")  # fmt: skip
    select.set_defaults(run=_select)

"""``streamal config show``: print the effective configuration, secrets masked."""

from __future__ import annotations

import argparse

from streamal.cli.common import EXIT_OK, add_config_option

__all__ = ["add_parser"]


def _show(args: argparse.Namespace) -> int:
    from streamal.config import load_settings, show

    settings = load_settings(args.config)
    if args.format == "json":
        print(settings.model_dump_json(indent=2))
    else:
        print(show(settings), end="")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal config`` and its actions."""
    config = subparsers.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser(
        "show", help="print the effective configuration (file + environment), secrets masked"
    )
    add_config_option(show)
    show.add_argument("--format", choices=["yaml", "json"], default="yaml", help="output format")
    show.set_defaults(run=_show)

"""``streamal schema``: print the JSON Schema of the messages, all or one by name."""

from __future__ import annotations

import argparse
import json

from streamal.cli.common import EXIT_OK
from streamal.errors import ConfigError

__all__ = ["add_parser"]


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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal schema``."""
    schema = subparsers.add_parser(
        "schema", help="print the JSON Schema of the messages (all, or one by name)"
    )
    schema.add_argument(
        "name", nargs="?", metavar="NAME", help="sample, label-request, auto-label, "
        "oracle-label, model-announcement or dead-letter (default: all)",
    )  # fmt: skip
    schema.set_defaults(run=_schema)

"""``streamal bridge label-studio``: Label Studio as the annotators' tool."""

from __future__ import annotations

import argparse

from streamal.cli.common import add_config_option, run_until_stopped

__all__ = ["add_parser"]


def _label_studio(args: argparse.Namespace) -> int:
    from streamal.bridge.label_studio import LabelStudioBridge

    return run_until_stopped(args, LabelStudioBridge)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal bridge label-studio``."""
    bridge = subparsers.add_parser(
        "bridge",
        help="connect an annotation tool to the loop (label-studio)",
        description="Bridges between streamal's topics and annotation tools.",
    )
    tools = bridge.add_subparsers(dest="tool", metavar="TOOL", required=True)
    label_studio = tools.add_parser(
        "label-studio",
        help="annotators label in Label Studio: requests become tasks, answers become labels",
        description="Import label requests as tasks of a Label Studio project (with the "
        "model's prediction), turn its annotations into labels (webhooks, and a reconciliation "
        "pass for those they miss), and serve the current model as the project's ML backend. "
        "Settings: the bridge.label_studio section.",
    )
    add_config_option(label_studio)
    label_studio.set_defaults(run=_label_studio)

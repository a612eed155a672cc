"""Operator tools on either transport: ``feed`` samples in from JSONL, ``tail`` a topic as JSON.

Each tool module has the function that does the work (``feed``, ``tail``) and an ``add_parser``
that registers its subcommand on ``streamal``'s subparsers.
"""

from __future__ import annotations

import re

from streamal.errors import ConfigError

__all__ = ["check_topic_name"]

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # as config.TopicName


def check_topic_name(name: str) -> str:
    """``name`` if Kafka and the local log both accept it as a topic name.

    >>> check_topic_name("label-requests")
    'label-requests'
    >>> check_topic_name("a b")
    Traceback (most recent call last):
    ...
    streamal.errors.ConfigError: invalid topic name 'a b': use 1-249 of A-Z a-z 0-9 . _ -
    """
    if not _TOPIC_NAME.match(name):
        raise ConfigError(f"invalid topic name {name!r}: use 1-249 of A-Z a-z 0-9 . _ -")
    return name

"""Load a user's function from an import path ``package.module:function``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from streamal.errors import ConfigError


def load_function(path: str, field: str) -> Callable[..., Any]:
    """The callable at ``path``; a ``ConfigError`` naming ``field`` if it cannot be loaded.

    >>> load_function("math:sqrt", "model.module")(9.0)
    3.0
    >>> load_function("math:nope", "model.module")
    Traceback (most recent call last):
    ...
    streamal.errors.ConfigError: config error: model.module: module 'math' has no attribute 'nope'
    """
    module_name, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"config error: {field}: {error}") from None
    if not callable(found):
        raise ConfigError(f"config error: {field}: {path} is not callable")
    return found

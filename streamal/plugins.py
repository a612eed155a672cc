"""Load a user's object from an import path ``package.module:object``, and accept a built-in
name or an import path in a config field."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

from streamal.errors import ConfigError

IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
ImportPath = Annotated[str, StringConstraints(pattern=IMPORT_PATH)]
"""A config value naming a user's object, ``package.module:object``."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` names a user's object rather than a built-in one.

    >>> is_import_path("mypkg.scores:mine"), is_import_path("margin")
    (True, False)
    """
    return ":" in name


def named_or_import_path(names: Iterable[str]) -> AfterValidator:
    """A validator of a string field: one of ``names``, or a well-formed import path.

    >>> from pydantic import TypeAdapter
    >>> field = TypeAdapter(Annotated[str, named_or_import_path(["a", "b"])])
    >>> field.validate_python("a"), field.validate_python("mypkg.mod:thing")
    ('a', 'mypkg.mod:thing')
    >>> from pydantic import ValidationError
    >>> try:
    ...     field.validate_python("c")
    ... except ValidationError as error:
    ...     print(error.errors()[0]["msg"])
    must be one of: a, b or package.module:object
    """
    known = tuple(names)
    allowed = {"allowed": ", ".join(known)}

    def check(value: str) -> str:
        if value in known or re.fullmatch(IMPORT_PATH, value):
            return value
        raise PydanticCustomError(
            "unknown_name", "must be one of: {allowed} or package.module:object", allowed
        )

    return AfterValidator(check)


def load_function(path: str, field: str, *, or_a: type | None = None) -> Callable[..., Any]:
    """The callable (or instance of ``or_a``) at ``path``; a ``ConfigError`` naming ``field`` if
    it cannot be loaded or is neither.

    >>> load_function("math:sqrt", "model.module")(9.0)
    3.0
    >>> load_function("math:nope", "model.module")
    Traceback (most recent call last):
    ...
    streamal.errors.ConfigError: config error: model.module: module 'math' has no attribute 'nope'
    >>> load_function("math:pi", "strategy.score")
    Traceback (most recent call last):
    ...
    streamal.errors.ConfigError: config error: strategy.score: math:pi is not callable
    """
    module_name, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"config error: {field}: {error}") from None
    except Exception as error:  # the user's module failed while it was imported
        why = str(error).splitlines()[0] if str(error) else ""
        raise ConfigError(
            f"config error: {field}: importing {module_name} failed: {type(error).__name__}: {why}"
        ) from None
    if not callable(found) and not (or_a and isinstance(found, or_a)):
        raise ConfigError(f"config error: {field}: {path} is not callable")
    return found

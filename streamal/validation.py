"""Turn a pydantic ``ValidationError`` into one line a person can act on, and show text from
records to a person safely.

Config errors and malformed records share this wording, e.g.
``strategy.budget: must be > 0 and <= 1 (got 1.5)``.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr, Tag, ValidationError
from pydantic.fields import FieldInfo

_KINDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "datetime": "a timestamp (ISO 8601 or epoch seconds)",
    "literal": "one of the allowed values",
}
_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def printable(text: str) -> str:
    """``text`` with every character that is not printable (controls, line breaks, invisible
    formatting) escaped as JSON escapes it, so that text from a record stays on its line and
    cannot steer a terminal.

    >>> print(printable("s1\\n\\x1b[2J\\u202eok"))
    s1\\n\\u001b[2J\\u202eok
    >>> printable("café 😀")
    'café 😀'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def one_line(error: ValidationError, model: type[BaseModel]) -> str:
    """Describe the first problem in ``error`` as ``path: what is wrong (got value)``.

    Parameters
    ----------
    error
        The error pydantic raised while validating ``model``.
    model
        The model that was validated; its fields give bounds and allowed values.

    Examples
    --------
    >>> from pydantic import Field
    >>> class Strategy(BaseModel):
    ...     budget: float = Field(0.1, gt=0, le=1)
    >>> try:
    ...     Strategy(budget=1.5)
    ... except ValidationError as e:
    ...     print(one_line(e, Strategy))
    budget: must be > 0 and <= 1 (got 1.5)
    """
    first = error.errors(include_url=False)[0]
    path, field, parent = _resolve(model, first["loc"])
    text = f"{path}: {_explain(first, field, parent)}" if path else _explain(first, field, parent)
    more = error.error_count() - 1
    return f"{text} (+{more} more)" if more else text


def _explain(err: Any, field: FieldInfo | None, parent: type[BaseModel] | None) -> str:
    kind: str = err["type"]
    got = _show(err.get("input"), field)
    if kind == "extra_forbidden":
        allowed = ", ".join(parent.model_fields) if parent else ""
        return f"unknown field; allowed: {allowed}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("json_invalid", "json_type"):
        return err["msg"].replace("Invalid JSON", "invalid JSON")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"must be {_bounds(field, err.get('ctx', {}))} (got {got})"
    if kind == "literal_error":
        return f"must be one of: {_choices(field, err)} (got {got})"
    if kind == "unknown_name":  # neither a built-in name nor an import path (streamal.plugins)
        value = err.get("input")
        name = value.get("name") if isinstance(value, dict) else value
        return f"{err['msg']} (got {_show(name, field)})"
    if kind == "union_tag_invalid":
        tags = err["ctx"]["expected_tags"].replace("'", "")
        return f"must be one of: {tags} (got {err['ctx']['tag']!r})"
    if kind == "finite_number":
        return f"must be a finite number (got {got})"
    if kind.startswith(("dict", "model")):  # a section's text may hold secrets: name its kind
        return f"must be a mapping (got {_kind_of(err.get('input'))})"
    if kind in ("string_too_short", "string_too_long"):
        return f"must be {_lengths(field, err.get('ctx', {}))} (got {len(err['input'])})"
    if kind == "string_pattern_mismatch":
        return f"must match {err['ctx']['pattern']} (got {got})"
    if kind == "value_error":  # a validator's own words; a whole section is not echoed
        said = str(err.get("ctx", {}).get("error", err["msg"]))
        return said if isinstance(err.get("input"), dict) else f"{said} (got {got})"
    for prefix, wanted in _KINDS.items():
        if kind.startswith(prefix):
            return f"must be {wanted} (got {got})"
    return f"{err['msg'][0].lower()}{err['msg'][1:]} (got {got})"


def _resolve(
    model: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[str, FieldInfo | None, type[BaseModel] | None]:
    """Walk ``loc`` through nested models; return the dotted path, the field and its parent."""
    shown: list[str] = []
    current: Any = model
    field: FieldInfo | None = None
    parent: type[BaseModel] | None = None
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent, field = current, current.model_fields.get(str(part))
            shown.append(str(part))
            current = field.annotation if field else None
            continue
        tagged = [m for m, tag in map(_tagged, _union_members(current)) if tag == part]
        if tagged:  # a discriminated union names the variant in loc; hide it from the path
            current = tagged[0]
            continue
        shown.append(str(part))
        current = _item_type(current)
    return ".".join(shown), field, parent


def _union_members(annotation: Any) -> tuple[Any, ...]:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _item_type(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[-1] if args else None


def _tagged(member: Any) -> tuple[Any, Any]:
    """A union member's model and its tag: its ``Tag``, else its ``name`` literal."""
    tags = []
    while get_origin(member) is typing.Annotated:
        tags += [meta.tag for meta in member.__metadata__ if isinstance(meta, Tag)]
        member = get_args(member)[0]
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return member, None
    name = member.model_fields.get("name")
    if not tags and name and get_origin(name.annotation) is Literal:
        tags.append(get_args(name.annotation)[0])
    return member, tags[0] if tags else None


def _bounds(field: FieldInfo | None, ctx: dict[str, Any]) -> str:
    found = []
    for meta in field.metadata if field else []:
        for cls, attr, sign in _BOUNDS:
            if isinstance(meta, cls):
                found.append(f"{sign} {getattr(meta, attr)}")
    if not found:
        found = [f"{sign} {ctx[attr]}" for _, attr, sign in _BOUNDS if attr in ctx]
    return " and ".join(found)


def _lengths(field: FieldInfo | None, ctx: dict[str, Any]) -> str:
    """The allowed length of a string field, e.g. ``1 to 512 characters``."""
    bounds = {"min_length": None, "max_length": None, **ctx}
    for meta in field.metadata if field else []:
        for name in ("min_length", "max_length"):
            if getattr(meta, name, None) is not None:
                bounds[name] = getattr(meta, name)
    low, high = bounds["min_length"], bounds["max_length"]
    if low is not None and high is not None:
        return f"{low} to {high} characters"
    if low is not None:
        return f"at least {low} character{'s' * (low != 1)}"
    return f"at most {high} characters"


def _choices(field: FieldInfo | None, err: Any) -> str:
    for member in _union_members(field.annotation if field else None):
        if get_origin(member) is Literal:
            return ", ".join(str(v) for v in get_args(member))
    return str(err.get("ctx", {}).get("expected", "")).replace("'", "")


def _kind_of(value: Any) -> str:
    """What ``value`` is, in words, without its content.

    >>> _kind_of("password: hunter2"), _kind_of([1, 2]), _kind_of(None)
    ('a string', 'a list', 'null')
    """
    kinds = {str: "a string", list: "a list", bool: "true or false", int: "a number"}
    kinds |= {float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _show(value: Any, field: FieldInfo | None) -> str:
    if field is not None and any(m is SecretStr for m in _union_members(field.annotation)):
        return "***"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

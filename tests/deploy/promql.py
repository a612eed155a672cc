"""What the deployment tests need to know about PromQL and Prometheus rule files, offline.

- ``selectors(expr)``: the metric names an expression reads, with the label names it matches on;
- ``exposed(metrics)``: every series name streamal's registry exposes, as Prometheus names them;
- ``rule_file_errors(data)``: the structural check of a rule file used when promtool is missing
  (promtool itself does the full parse when it is installed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from streamal.metrics import Metrics

# Grafana's variables, replaced by a PromQL value of the same kind before checking.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")  # numbers and durations (5m, 1h30m, 0.5)
_IDENTIFIER = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)\s*(\(|\{)?")
_MATCHER = re.compile(r"([A-Za-z_][\w]*)\s*(=~|!~|!=|=)\s*\"((?:[^\"\\]|\\.)*)\"")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


@dataclass(frozen=True)
class Selector:
    """A metric read by an expression, and its label matchers as (label, operator, value)."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced; any other ``$variable`` is an error.

    >>> substitute("rate(x[$__rate_interval])")
    'rate(x[5m])'
    """
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def selectors(expr: str) -> list[Selector]:
    """The metrics ``expr`` reads (with their matchers), functions and keywords left out.

    >>> [s.metric for s in selectors('sum by (job) (rate(a_total{x="1"}[5m])) / b offset 1h')]
    ['a_total', 'b']
    >>> selectors('up{job=~"a|b"} == 0 and on () absent(c)')[0]
    Selector(metric='up', matchers=(('job', '=~', 'a|b'),))
    """
    expr = substitute(expr)
    found: list[Selector] = []
    # Matchers first, while the strings are still there; then blank what is not a metric name.
    matchers_at: dict[int, tuple[tuple[str, str, str], ...]] = {}
    for match in re.finditer(r"\{([^{}]*)\}", expr):
        matchers_at[match.start()] = tuple(_MATCHER.findall(match.group(1)))
    blanked = _blank(expr, _STRING)
    blanked = _blank(blanked, re.compile(r"\{[^{}]*\}"), keep_first=True)
    blanked = _blank(blanked, re.compile(r"\[[^\[\]]*\]"))
    blanked = _blank(blanked, _GROUPING)
    blanked = _blank(blanked, _NUMBER)
    for match in _IDENTIFIER.finditer(blanked):
        name, after = match.group(1), match.group(2)
        if after == "(" or name in KEYWORDS:
            continue
        brace = match.end() - 1 if after == "{" else None
        found.append(Selector(name, matchers_at.get(brace, ()) if brace is not None else ()))
    return found


def _blank(text: str, pattern: re.Pattern[str], *, keep_first: bool = False) -> str:
    """``text`` with every match of ``pattern`` replaced by spaces (positions are kept)."""

    def spaces(match: re.Match[str]) -> str:
        body = match.group(0)
        return body[0] + " " * (len(body) - 1) if keep_first else " " * len(body)

    return pattern.sub(spaces, text)


@dataclass(frozen=True)
class Exposed:
    """A series name streamal exposes, the metric it belongs to and that metric's labels."""

    name: str
    family: str
    labels: frozenset[str]


def exposed(metrics: Metrics | None = None) -> dict[str, Exposed]:
    """Every series name of streamal's metrics as Prometheus scrapes them.

    Counters add ``_total`` (and ``_created``), histograms ``_bucket``, ``_sum``, ``_count``;
    a labeled metric without children yet still counts (it has no samples to collect).
    """
    metrics = metrics or Metrics()
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names: dict[str, Exposed] = {}
    for metric in _metric_objects(metrics):
        family, kind = metric._name, metric._type
        labels = frozenset(metric._labelnames) | ({"le"} if kind == "histogram" else set())
        for suffix in suffixes[kind]:
            names[family + suffix] = Exposed(family + suffix, family, labels)
    return names


def _metric_objects(metrics: Metrics) -> Iterator[MetricWrapperBase]:
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            yield value


def rule_file_errors(data: Any) -> list[str]:
    """What is wrong with a parsed Prometheus rule file, checked without promtool.

    Groups with unique names and rules; each rule an ``alert`` or a ``record`` (alert names
    unique) with a non-empty ``expr`` whose brackets and quotes balance, durations that parse,
    string labels and annotations whose templates close; no unknown keys.
    """
    errors: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        return ["the file must be a mapping with a list of groups"]
    if set(data) != {"groups"}:
        errors.append(f"unknown top-level keys {sorted(set(data) - {'groups'})}")
    group_names: set[str] = set()
    alerts: set[str] = set()
    for g, group in enumerate(data["groups"]):
        where = f"group {g}"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            errors.append(f"{where}: needs a name")
            continue
        if group["name"] in group_names:
            errors.append(f"{where}: duplicate group name {group['name']}")
        group_names.add(group["name"])
        if "interval" in group and not _DURATION.match(str(group["interval"])):
            errors.append(f"{where}: bad interval {group['interval']!r}")
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            errors.append(f"{where}: needs rules")
            continue
        for r, rule in enumerate(rules):
            errors += [f"{where} rule {r}: {e}" for e in _rule_errors(rule, alerts)]
    return errors


def _rule_errors(rule: Any, alerts: set[str]) -> list[str]:
    if not isinstance(rule, dict):
        return ["not a mapping"]
    errors = []
    if unknown := set(rule) - RULE_KEYS:
        errors.append(f"unknown keys {sorted(unknown)}")
    if ("alert" in rule) == ("record" in rule):
        errors.append("needs exactly one of alert and record")
    name = rule.get("alert")
    if name is not None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            errors.append(f"bad alert name {name!r}")
        elif name in alerts:
            errors.append(f"duplicate alert {name}")
        alerts.add(str(name))
    expr = rule.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        errors.append("expr must be a non-empty string")
    else:
        errors += expr_errors(expr)
    for key in ("for", "keep_firing_for"):
        if key in rule and not _DURATION.match(str(rule[key])):
            errors.append(f"bad {key} {rule[key]!r}")
    for key in ("labels", "annotations"):
        value = rule.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            errors.append(f"{key} must map strings to strings")
            continue
        for text in value.values():
            if text.count("{{") != text.count("}}"):
                errors.append(f"unbalanced template in {key}: {text!r}")
    return errors


def expr_errors(expr: str) -> list[str]:
    """Unclosed quotes or unbalanced brackets in a PromQL expression; metric names must parse.

    >>> expr_errors('sum(rate(x{a="b"}[5m]))'), expr_errors('sum(x[5m]'), expr_errors('x{a="b}')
    ([], ['unbalanced brackets'], ['unclosed quote'])
    """
    stripped = _STRING.sub('""', expr)
    if any(q in stripped.replace('""', "") for q in "\"'`"):
        return ["unclosed quote"]
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in stripped:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return ["unbalanced brackets"]
    if stack:
        return ["unbalanced brackets"]
    try:
        selectors(expr)
    except ValueError as error:
        return [str(error)]
    return []

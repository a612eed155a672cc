"""From label requests to Label Studio tasks and from annotations back to labels: the pure part.

A task's data holds the sample: ``sample_id``, ``features``, ``payload``, ``meta`` and ``view``
(the request as the terminal annotator shows it, for a generated labeling config to show); an
object payload's own fields are also copied to the top level (``$text`` shows a payload's
``text``) unless they would hide one of those five. A prediction carries the model's top label
as a choice, its ``model_version`` (``<model name>-v<version>``) and a ``score``: one minus the
margin between the model's two top probabilities, in [0, 1]. Sorted by prediction score,
descending, the tasks the model is least sure of come first, whichever query strategy chose
them, and tasks imported by hand (scored by the ML backend) sort among them on the same scale.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from pydantic import JsonValue

from streamal.errors import ConfigError
from streamal.messages import LabelRequest, Sample
from streamal.strategies import margin
from streamal.tools.annotate import render

__all__ = [
    "RESERVED",
    "Choices",
    "label_of",
    "labeling_config",
    "parse_time",
    "prediction",
    "sample_of",
    "score",
    "task_of",
]

RESERVED = ("sample_id", "features", "payload", "meta", "view")
FIELD = "bridge.label_studio.label_config"


@dataclass(frozen=True, slots=True)
class Choices:
    """The ``Choices`` tag of a labeling config: its ``name`` and the object it labels."""

    name: str
    to_name: str
    values: tuple[str, ...]

    @classmethod
    def of(cls, label_config: str) -> Choices:
        """The one ``Choices`` tag of ``label_config``.

        >>> Choices.of(labeling_config(["cat", "dog"], "view"))
        Choices(name='label', to_name='item', values=('cat', 'dog'))
        >>> Choices.of("<View><Text name='t' value='$text'/></View>")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        streamal.errors.ConfigError: config error: ...: needs one Choices tag (found 0)
        """
        try:
            root = ElementTree.fromstring(label_config)
        except ElementTree.ParseError as error:
            raise ConfigError(f"config error: {FIELD}: not XML ({error})") from None
        tags = [tag for tag in root.iter() if tag.tag == "Choices"]
        if len(tags) != 1 or not tags[0].get("name") or not tags[0].get("toName"):
            raise ConfigError(
                f"config error: {FIELD}: needs one Choices tag "
                f"(found {len(tags)})" + (" with name and toName" if len(tags) == 1 else "")
            )
        values = tuple(c.get("value", "") for c in tags[0].iter("Choice"))
        return cls(tags[0].get("name", ""), tags[0].get("toName", ""), values)


def labeling_config(classes: Sequence[str], show: str) -> str:
    """A labeling config that shows the task data field ``show`` as text and offers one choice
    per class.

    >>> print(labeling_config(["cat", "d&g"], "view"))
    <View>
      <Text name="item" value="$view"/>
      <Choices name="label" toName="item" choice="single" showInline="true">
        <Choice value="cat"/>
        <Choice value="d&amp;g"/>
      </Choices>
    </View>
    """
    choices = "\n".join(f'    <Choice value="{html.escape(c)}"/>' for c in classes)
    return (
        f'<View>\n  <Text name="item" value="${show}"/>\n'
        f'  <Choices name="label" toName="item" choice="single" showInline="true">\n'
        f"{choices}\n  </Choices>\n</View>"
    )


def score(top_two: Sequence[float]) -> float:
    """The prediction score: one minus the gap between the two top probabilities (one given:
    the other is taken as 0); higher means less sure, so more worth asking.

    >>> score([0.55, 0.4]), score([0.9, 0.05]), score([1.0])
    (0.85, 0.15, 0.0)
    """
    two = [*sorted(top_two, reverse=True)[:2], 0.0][:2]
    return round(float(margin(np.array([two]))[0]), 6)


def prediction(label: str, value: float, version: str, choices: Choices) -> dict[str, Any]:
    """A Label Studio prediction choosing ``label``, scored ``value``, of model ``version``.

    >>> prediction("cat", 0.3, "m-v2", Choices("label", "item", ()))["result"][0]["value"]
    {'choices': ['cat']}
    """
    result = {
        "from_name": choices.name, "to_name": choices.to_name, "type": "choices",
        "value": {"choices": [label]},
    }  # fmt: skip
    return {"result": [result], "score": value, "model_version": version}


def task_of(
    request: LabelRequest, classes: Sequence[str], version: str, choices: Choices
) -> dict[str, Any]:
    """The task that shows ``request`` in Label Studio, with the model's prediction.

    >>> request = LabelRequest(
    ...     id="s1", payload={"text": "hi", "view": "hidden"}, utility=0.5, reason="uncertain",
    ...     prediction=[{"label": "cat", "p": 0.6}, {"label": "dog", "p": 0.4}],
    ...     model_version=2, requested_at=0)
    >>> task = task_of(request, ["cat", "dog"], "m-v2", Choices("label", "item", ()))
    >>> task["data"]["sample_id"], task["data"]["text"], task["data"]["view"].splitlines()[0]
    ('s1', 'hi', 'id        s1')
    >>> task["predictions"][0]["score"], task["predictions"][0]["model_version"]
    (0.8, 'm-v2')
    """
    data: dict[str, JsonValue] = {}
    if isinstance(request.payload, dict):
        data.update({k: v for k, v in request.payload.items() if k not in RESERVED})
    data.update(
        sample_id=request.id,
        features=cast(JsonValue, request.features),
        payload=request.payload,
        meta=request.meta,
        view="\n".join(render(request, classes, at=request.requested_at)),
    )
    top = request.prediction[0]
    value = score([p.p for p in request.prediction])
    return {"data": data, "predictions": [prediction(top.label, value, version, choices)]}


def sample_of(task: dict[str, Any]) -> Sample:
    """The sample a task shows: its ``features`` and ``payload`` fields; a task with neither (one
    imported by hand) is read as a payload of its whole data.

    >>> sample_of({"id": 4, "data": {"sample_id": "s1", "features": [1.0, 2.0]}}).features
    [1.0, 2.0]
    >>> sample_of({"id": 5, "data": {"text": "hi"}}).payload
    {'text': 'hi'}
    """
    data = task.get("data") or {}
    features, payload = data.get("features"), data.get("payload")
    if features is None and payload is None:
        payload = data
    sample_id = str(data.get("sample_id") or f"label-studio-task-{task.get('id')}")
    return Sample(id=sample_id, features=features, payload=payload)


@dataclass(frozen=True, slots=True)
class Answer:
    """An annotation read as a label: ``label`` None when it gives none (cancelled, skipped,
    empty), ``problem`` when it cannot be a label (the reason)."""

    annotation_id: int
    task_id: int
    label: str | None
    user_id: int | None
    labeled_at: datetime | None
    problem: str | None = None


def parse_time(stamp: str) -> datetime:
    """A timestamp of Label Studio's.

    >>> parse_time("2026-01-02T03:10:00.5Z") < parse_time("2026-01-02T03:10:01Z")
    True
    """
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def label_of(annotation: dict[str, Any], choices: Choices) -> Answer:
    """Read an annotation (as Label Studio's API returns it) as an answer.

    >>> base = {"id": 3, "task": 7, "completed_by": 1, "updated_at": "2026-01-02T03:04:05Z"}
    >>> choice = {"from_name": "label", "type": "choices", "value": {"choices": ["dog"]}}
    >>> label_of({**base, "result": [choice]}, Choices("label", "item", ())).label
    'dog'
    >>> label_of({**base, "was_cancelled": True, "result": []}, Choices("label", "item", ())).label
    >>> two = {**choice, "value": {"choices": ["cat", "dog"]}}
    >>> label_of({**base, "result": [two]}, Choices("label", "item", ())).problem
    "label: several choices ['cat', 'dog'], one expected"
    """
    user = annotation.get("completed_by")
    if isinstance(user, dict):
        user = user.get("id")
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    when = parse_time(stamp) if stamp else None
    answer = Answer(int(annotation["id"]), int(annotation["task"]), None, user, when)
    if annotation.get("was_cancelled"):
        return answer
    picked = [
        choice
        for item in annotation.get("result") or []
        if item.get("type") == "choices" and item.get("from_name") == choices.name
        for choice in (item.get("value") or {}).get("choices") or []
    ]
    if not picked:
        return answer
    if len(picked) > 1:
        problem = f"{choices.name}: several choices {picked}, one expected"
        return Answer(answer.annotation_id, answer.task_id, None, user, when, problem)
    return Answer(answer.annotation_id, answer.task_id, str(picked[0]), user, when)

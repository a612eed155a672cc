"""Generated bad records through serve's router and the trainer's label store.

Random bytes, JSON of the wrong shape, huge and tiny numbers, odd unicode, null values, deep
nesting and near-valid messages with a field broken, mixed with valid ones. Whatever comes, no
batch raises; a record made bad becomes exactly one dead letter with a one-line reason; a valid
one is routed (serve) or stored (trainer) exactly once; a near-valid one gets exactly one of the
two. Each test first runs one batch with every known bad change of its messages (random draws
would meet some of them rarely), then the generated batches.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamal.config import Settings
from streamal.messages import FLOAT32_MAX, DeadLetter, LabelRequest, decode
from streamal.model import FeatureModel, Predictor
from streamal.stream.router import Router
from streamal.training.trainer import Trainer
from streamal.transport import Envelope, Record, Transport, open_transport, topic_specs
from tests.conftest import settings_for
from tests.helpers import with_fresh_topics

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLASSES = ["c0", "c1", "c2"]
NOW = time.time()  # fixed, so that every run draws from the same strategies
REMOVED = object()  # a field value that means: leave the field out


@dataclass(frozen=True)
class Raw:
    """A record value: ``good`` valid, ``False`` invalid, ``None`` either (near-valid); ``id``
    is the id it is routed or stored under if it is valid."""

    value: bytes | None
    good: bool | None
    id: str | None = None


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


json_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
odd_text = st.text(max_size=30)  # controls, combining marks, astral planes, right-to-left...
numbers = (
    st.floats(-FLOAT32_MAX, FLOAT32_MAX, width=32)
    | st.integers(-(2**60), 2**60)
    | st.sampled_from([5e-324, -0.0, 1e-45, FLOAT32_MAX])  # tiny, and the largest
)
BAD_IDS = ["", "x" * 600, "a\nb", "\x1b[2J", "a\u202eb", "\x00", 5, None, ["x"], True]
BAD_FEATURES = [
    [1e308, 0, 0], ["1", 0, 0], [True, 0, 0], [-3.5e38, 0, 0], [None, 0, 0], [[1], 2, 3],
    "0,0,0", {"0": 1}, 7, REMOVED,
]  # fmt: skip
BAD_TIMES = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", 1e20, "soon", [0]]


def broken(**values: list[Any]) -> list[dict[str, Any]]:
    """One change per bad value: ``broken(id=["", 5])`` is ``[{"id": ""}, {"id": 5}]``."""
    return [{name: value} for name, some in values.items() for value in some]


def junk_in(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    """Random JSON in one of the fields ``names``."""
    return st.sampled_from(names).flatmap(lambda name: json_junk.map(lambda v: {name: v}))


def junk() -> st.SearchStrategy[Raw]:
    """Values no topic accepts: bytes, null, JSON that is no message, deep nesting."""
    deep = st.integers(1, 400).map(lambda n: b"[" * n + b"]" * n)
    not_objects = json_junk.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: json.dumps(v).encode()
    )
    no_id = st.dictionaries(odd_text.filter(lambda k: k != "id"), json_junk, max_size=5).map(
        lambda v: json.dumps(v).encode()
    )
    huge = st.sampled_from([b"1" + b"0" * 400, b"[1e400]", b"NaN", b'{"id": "a", "v": 1e999}'])
    invalid_utf8 = odd_text.map(lambda t: b"\xff" + t.encode("utf-8"))
    return st.one_of(
        st.binary(max_size=64), st.none(), deep, not_objects, no_id, huge, invalid_utf8
    ).map(lambda value: Raw(value, good=False))


@dataclass(frozen=True)
class Kind:
    """A message kind: a valid example for an id, valid fields drawn at random for an id, the
    changes that make it invalid, and changes that may or may not."""

    example: Callable[[str], dict[str, Any]]
    fields: Callable[[st.DrawFn, str], dict[str, Any]]
    bad: list[dict[str, Any]]
    maybe: st.SearchStrategy[dict[str, Any]]

    def records(self, sample_id: str) -> st.SearchStrategy[Raw]:
        """One record in four is junk, the others of this kind: valid, bad or maybe bad."""

        @st.composite
        def build(draw: st.DrawFn) -> Raw:
            if draw(st.integers(0, 3)) == 0:
                return draw(junk())
            good = draw(st.sampled_from([True, False, None]))
            change = draw(st.sampled_from(self.bad) if good is False else self.maybe)
            return _raw(self.fields(draw, sample_id), {} if good else change, good)

        return build()

    def corpus(self, ids: Iterator[str]) -> list[Raw]:
        """The example with every bad change, and once as it is."""
        changes = [({}, True), *((change, False) for change in self.bad)]
        return [_raw(self.example(next(ids)), change, good) for change, good in changes]


def _raw(fields: dict[str, Any], change: dict[str, Any], good: bool | None) -> Raw:
    value = {k: v for k, v in {**fields, **change}.items() if v is not REMOVED}
    sample_id = value.get("id") if isinstance(value.get("id"), str) else None
    return Raw(json.dumps(value).encode(), good, sample_id)


def _sample_fields(draw: st.DrawFn, sample_id: str) -> dict[str, Any]:
    fields = {"id": sample_id, "features": draw(st.lists(numbers, min_size=3, max_size=3))}
    if draw(st.booleans()):
        fields["meta"] = draw(st.dictionaries(odd_text, json_junk, max_size=3))
    if draw(st.booleans()):
        fields["payload"] = draw(json_junk)
    if draw(st.booleans()):
        fields["ts"] = draw(st.integers(0, 4_000_000_000))
    return fields


SAMPLES = Kind(
    example=lambda sample_id: {"id": sample_id, "features": [0.5, -1, 3]},
    fields=_sample_fields,
    bad=[
        *broken(id=BAD_IDS, features=BAD_FEATURES, ts=BAD_TIMES),
        *broken(meta=[_deep(300), [1]], v=[2], colour=["red"]),
    ],
    maybe=st.one_of(
        st.lists(numbers, max_size=5).map(lambda v: {"features": v}),
        st.integers(1, 190).map(lambda n: {"payload": _deep(n)}),
        junk_in("id", "features", "payload", "meta", "ts", "v"),
    ),
)


def _request_fields(draw: st.DrawFn, sample_id: str) -> dict[str, Any]:
    fields = {
        "id": sample_id, "features": draw(st.lists(numbers, min_size=10, max_size=10)),
        "prediction": [{"label": draw(st.sampled_from(CLASSES)), "p": 0.5}], "utility": 0.5,
        "reason": draw(st.sampled_from(["uncertain", "audit", "explore"])), "model_version": 0,
        "requested_at": NOW,
    }  # fmt: skip
    if draw(st.booleans()):
        fields["meta"] = draw(st.dictionaries(odd_text, json_junk, max_size=3))
    return fields


REQUESTS = Kind(
    example=lambda sample_id: {
        "id": sample_id,
        "features": [0.5] * 10,
        "prediction": [{"label": "c1", "p": 0.5}],
        "utility": 0.5,
        "reason": "explore",
        "model_version": 0,
        "requested_at": NOW,
    },
    fields=_request_fields,
    bad=[
        *broken(id=BAD_IDS, features=BAD_FEATURES, requested_at=BAD_TIMES),
        *broken(prediction=[[{"label": "c0", "p": 2}], {"c0": 1}], reason=["whim", None]),
        *broken(utility=["high", 1e309], model_version=[-1, 10**20]),
    ],
    maybe=st.one_of(
        st.lists(numbers, min_size=1, max_size=12).map(lambda v: {"features": v}),
        junk_in("id", "features", "payload", "meta", "prediction", "utility", "model_version"),
    ),
)


def _answer_fields(draw: st.DrawFn, sample_id: str) -> dict[str, Any]:
    return {
        "id": sample_id, "label": draw(st.sampled_from(CLASSES)), "annotator": draw(odd_text),
        "labeled_at": draw(st.floats(0, NOW)),
    }  # fmt: skip


ANSWERS = Kind(
    example=lambda sample_id: {"id": sample_id, "label": "c2", "labeled_at": NOW},
    fields=_answer_fields,
    bad=[
        *broken(id=BAD_IDS, labeled_at=BAD_TIMES),
        *broken(label=["zebra", "", 3], labeled_at=["9999-12-31", NOW + 86_400, REMOVED]),
    ],
    maybe=junk_in("id", "label", "annotator", "labeled_at"),
)


def dead_letters(values: list[bytes | None]) -> dict[tuple[str, int, int], str]:
    """The reason of each dead letter by position; each a non-empty line, one per position."""
    letters = [decode(DeadLetter, value) for value in values]
    for letter in letters:
        assert letter.error.strip() and "\n" not in letter.error
    positions = Counter((letter.topic, letter.partition, letter.offset) for letter in letters)
    assert set(positions.values()) <= {1}, positions
    return {(letter.topic, letter.partition, letter.offset): letter.error for letter in letters}


def check(raw: Raw, dead: int, done: int, reason: str | None) -> None:
    """``raw`` became exactly one dead letter or was routed or stored once, as it should."""
    outcome = ("dead",) * dead + ("done",) * done
    assert outcome in (("dead",), ("done",)), (raw, outcome)
    expected = {True: ("done",), False: ("dead",), None: outcome}[raw.good]
    assert outcome == expected, (raw, reason)


def test_serve_routes_every_valid_sample_once_and_dead_letters_the_rest() -> None:
    configured = Settings(
        model={"n_features": 3, "classes": CLASSES, "module": "tests.stream.test_router:identity"},
        strategy={"score": "least_confidence", "budget": 1.0, "explore": 0.0,
                  "gate": {"name": "fixed", "threshold": 0.0}},  # every valid sample is asked
        serve={"max_record_bytes": 4096},
    )  # fmt: skip
    router = Router(configured, Predictor(FeatureModel(configured.model), version=1))
    ids = (f"s{n}" for n in count())

    def route(raws: list[Raw]) -> None:
        batch = [Envelope("samples", 0, i, None, raw.value, (), 0) for i, raw in enumerate(raws)]
        plan = router.plan(batch)  # never raises
        router.commit(plan)
        dead = dead_letters([r.value for r in plan.records if r.topic == "dead-letter"])
        asked = Counter(
            decode(LabelRequest, r.value).id for r in plan.records if r.topic == "label-requests"
        )
        assert sum(plan.routes.values()) == len(batch) and plan.routes["skip"] == 0
        assert len(dead) == plan.routes["dead_letter"]
        for offset, raw in enumerate(raws):
            position = ("samples", 0, offset)
            check(raw, position in dead, asked[raw.id], dead.get(position))

    route(SAMPLES.corpus(ids))

    @FUZZ
    @given(st.data())
    def generated(data: st.DataObject) -> None:
        size = data.draw(st.integers(1, 12))
        route([data.draw(SAMPLES.records(next(ids))) for _ in range(size)])

    generated()


def test_the_trainer_stores_every_valid_record_once_and_dead_letters_the_rest(
    tmp_path: Path,
) -> None:
    configured = Settings(
        **with_fresh_topics(settings_for("local", tmp_path=tmp_path)).model_dump(mode="json")
        | {
            "model": {"n_features": 10, "classes": CLASSES, "store": str(tmp_path / "m")},
            "train": {"label_store": str(tmp_path / "labels.sqlite"),
                      "min_new_labels": 10**9, "interval_s": 10**9,  # ingestion only
                      "metrics_address": "127.0.0.1:0"},
        }
    )  # fmt: skip
    topics = configured.topics
    trainer = Trainer(configured)
    store = sqlite3.connect(configured.train.label_store)
    ids = (f"s{n}" for n in count())
    keys = (f"k{n}".encode() for n in count())

    def ingest(transport: Transport, peer: Transport, records: list[tuple[str, Raw]]) -> None:
        made: dict[bytes, Raw] = {}
        for topic, raw in records:
            made[key := next(keys)] = raw
            peer.produce(Record(topic, raw.value, key=key))
        peer.flush()
        read, deadline = 0, time.monotonic() + 30
        while read < len(made):  # never raises
            assert time.monotonic() < deadline, f"the trainer read {read} of {len(made)}"
            read += trainer.step(transport, timeout_s=0.2)
        letters = []
        while batch := peer.poll(1000, 0.05):
            letters += batch
        reasons = dead_letters([e.value for e in letters])
        dead = Counter(e.key for e in letters)
        stored = Counter(
            row[0]
            for row in store.execute("SELECT id FROM requests UNION ALL SELECT id FROM votes")
        )
        for key, raw in made.items():
            check(raw, dead[key], stored[raw.id], str(reasons))

    with trainer.connected() as transport, open_transport(configured) as peer:
        peer.ensure_topics(topic_specs(topics))
        peer.subscribe([topics.dead_letter])
        ingest(
            transport, peer,
            [(topics.label_requests, raw) for raw in REQUESTS.corpus(ids)]
            + [(topics.labels, raw) for raw in ANSWERS.corpus(ids)],
        )  # fmt: skip

        @FUZZ
        @given(st.data())
        def generated(data: st.DataObject) -> None:
            records = []
            for _ in range(data.draw(st.integers(1, 10))):
                topic = data.draw(st.sampled_from([topics.labels, topics.label_requests]))
                kind = ANSWERS if topic == topics.labels else REQUESTS
                records.append((topic, data.draw(kind.records(next(ids)))))
            ingest(transport, peer, records)

        generated()
    store.close()
    trainer.labels.close()

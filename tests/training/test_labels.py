"""The label store: joins by id whatever the order, duplicates, replays, TTL, refusals."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamal.messages import LabelRequest, OracleLabel
from streamal.training.labels import LabelStore, LabelStoreError

CLASSES = ["cat", "dog"]


def request(
    sample_id: str,
    predicted: str = "cat",
    p: float = 0.7,
    reason: str = "uncertain",
    features: tuple[float, ...] = (1.0, 2.0),
) -> LabelRequest:
    other = "dog" if predicted == "cat" else "cat"
    return LabelRequest(
        id=sample_id, features=list(features), utility=0.5, reason=reason, model_version=1,
        prediction=[{"label": predicted, "p": p}, {"label": other, "p": 1 - p}],
        requested_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def answer(sample_id: str, label: str, at: float = 1_767_225_660.0) -> OracleLabel:
    return OracleLabel(id=sample_id, label=label, labeled_at=at)


def store(tmp_path: Path, duplicates: str = "latest") -> LabelStore:
    return LabelStore(tmp_path / "labels.sqlite", CLASSES, duplicates)  # type: ignore[arg-type]


def test_a_label_joins_its_request_whichever_comes_first(tmp_path: Path) -> None:
    labels = store(tmp_path)
    assert labels.add_request(request("a")) is None
    joined = labels.add_label(answer("a", "dog"), "labels:0:0")
    assert joined is not None
    assert (joined.label, joined.predicted, joined.confidence) == ("dog", "cat", 0.7)
    assert joined.delay_s == pytest.approx(60.0)
    assert labels.add_label(answer("b", "cat"), "labels:0:1") is None  # request not seen yet
    assert labels.counts()["pending"] == 1
    late = labels.add_request(request("b"))
    assert late is not None and late.label == "cat"
    data = labels.labeled()
    assert [s.id for s in data.samples] == ["a", "b"] and data.labels == ["dog", "cat"]
    assert [s.features for s in data.samples] == [[1.0, 2.0], [1.0, 2.0]]


def test_replayed_records_are_not_counted_twice(tmp_path: Path) -> None:
    labels = store(tmp_path, "majority")
    labels.add_request(request("a"))
    labels.add_label(answer("a", "dog"), "labels:0:5")
    for _ in range(3):  # the same topic position again, as after a crash before the commit
        assert labels.add_label(answer("a", "cat"), "labels:0:6") is None
        labels.add_request(request("a"))
    assert labels.counts() == {"requests": 1, "labeled": 1, "votes": 2, "pending": 0}


@pytest.mark.parametrize(("policy", "expected"), [("latest", "cat"), ("majority", "dog")])
def test_duplicate_answers_follow_the_policy(tmp_path: Path, policy: str, expected: str) -> None:
    labels = store(tmp_path, policy)
    labels.add_request(request("a"))
    labels.add_label(answer("a", "dog", at=100), "labels:0:1")
    labels.add_label(answer("a", "dog", at=200), "labels:0:2")
    labels.add_label(answer("a", "cat", at=300), "labels:0:3")
    assert labels.label_of("a") == expected
    assert labels.labeled().labels == [expected]


def test_labels_whose_request_never_comes_expire(tmp_path: Path) -> None:
    labels = store(tmp_path)
    labels.add_label(answer("ghost", "cat"), "labels:0:0")
    assert labels.drop_expired(ttl_s=3600) == 0
    assert labels.drop_expired(ttl_s=-1) == 1
    assert labels.counts()["votes"] == 0


def test_labels_survive_a_restart(tmp_path: Path) -> None:
    first = store(tmp_path)
    first.add_request(request("a"))
    first.add_label(answer("a", "dog"), "labels:0:0")
    first.close()
    again = store(tmp_path)
    assert again.labeled().labels == ["dog"]
    assert again.add_label(answer("a", "dog"), "labels:0:0") is None


def test_a_store_keeps_its_identity_and_a_fresh_one_has_its_own(tmp_path: Path) -> None:
    first = store(tmp_path)
    identity = first.identity
    first.close()
    again = store(tmp_path)
    assert again.identity == identity
    again.close()
    (tmp_path / "fresh").mkdir()
    other = store(tmp_path / "fresh")
    assert other.identity != identity
    other.close()


def test_a_foreign_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE payroll(x)")
    with pytest.raises(LabelStoreError, match="not a streamal-labels file"):
        store(tmp_path)
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["payroll"]


def test_a_store_for_other_classes_is_refused(tmp_path: Path) -> None:
    store(tmp_path).close()
    with pytest.raises(LabelStoreError, match="made for classes"):
        LabelStore(tmp_path / "labels.sqlite", ["cat", "dog", "bird"])


def test_payloads_are_kept_so_that_payload_samples_train(tmp_path: Path) -> None:
    labels = store(tmp_path)
    text = request("t", reason="explore").model_copy(update={"features": None, "payload": "hi"})
    image = request("i", reason="explore").model_copy(
        update={"features": None, "payload": {"image": "AAEC", "shape": [1, 3]}}
    )
    for sample_id, message in (("t", text), ("i", image), ("f", request("f", reason="explore"))):
        labels.add_request(message)
        labels.add_label(answer(sample_id, "dog"), f"labels:0:{sample_id}")
    data = labels.labeled()
    assert [(s.id, s.features, s.payload) for s in data.samples] == [
        ("t", None, "hi"),
        ("i", None, {"image": "AAEC", "shape": [1, 3]}),
        ("f", [1.0, 2.0], None),
    ]
    assert [s.payload for s in labels.recent_samples(2, "explore")] == [
        None,
        {"image": "AAEC", "shape": [1, 3]},
    ]


OLD_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('format', 'streamal-labels'), ('version', '1'),
    ('classes', '["cat", "dog"]');
CREATE TABLE requests(id TEXT PRIMARY KEY, features TEXT, predicted TEXT NOT NULL,
    confidence REAL NOT NULL, reason TEXT NOT NULL, model_version INTEGER NOT NULL,
    requested_at REAL NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE votes(source TEXT PRIMARY KEY, id TEXT NOT NULL, label TEXT NOT NULL,
    annotator TEXT, labeled_at REAL NOT NULL, received_at REAL NOT NULL, seq INTEGER NOT NULL);
INSERT INTO requests VALUES ('old', '[5.0, 6.0]', 'cat', 0.9, 'uncertain', 1, 0, 1);
INSERT INTO votes VALUES ('labels:0:0', 'old', 'dog', NULL, 0, 0, 2);
"""


def test_a_store_made_before_payloads_were_kept_keeps_its_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    labels = LabelStore(path, CLASSES)
    labels.add_request(request("new").model_copy(update={"features": None, "payload": "x"}))
    labels.add_label(answer("new", "cat"), "labels:0:1")
    data = labels.labeled()
    assert [(s.id, s.features, s.payload) for s in data.samples] == [
        ("old", [5.0, 6.0], None),
        ("new", None, "x"),
    ]
    assert data.labels == ["dog", "cat"]
    labels.close()
    assert [s.id for s in LabelStore(path, CLASSES).labeled().samples] == ["old", "new"]


def test_a_full_store_fails_a_write_with_one_line(tmp_path: Path) -> None:
    labels = store(tmp_path)
    labels.add_request(request("a"))
    full = labels._db.execute("PRAGMA page_count").fetchone()[0]
    labels._db.execute(f"PRAGMA max_page_count={full}")  # SQLite's own "disk is full"
    with pytest.raises(LabelStoreError, match=r"cannot write \(database or disk is full\)$"):
        for i in range(1000):
            labels.add_request(request(f"big{i}", features=(1.0,) * 2, reason="audit"))
    assert labels.counts()["requests"] >= 1  # what was written before stays


def test_a_concept_is_dated_by_when_its_first_answers_were_asked(tmp_path: Path) -> None:
    labels = store(tmp_path)
    for i in range(30):  # asked a minute apart; answered in order, a few out of order
        at = datetime.fromtimestamp(60.0 * i, UTC)
        asked = request(f"s{i}").model_copy(update={"requested_at": at})
        labels.add_request(asked)
    order = [*range(12), 14, 12, 13, *range(15, 30)]
    points = {i: labels.add_label(answer(f"s{i}", "dog"), f"labels:0:{i}") for i in order}
    start = points[13]  # a concept that starts after the answer to s13 (the 15th answer)
    assert start is not None
    assert labels.asked_after(start.seq) == 60.0 * 15  # s15..s24: the earliest asked
    assert labels.asked_after(points[11].seq, answers=3) == 60.0 * 12  # s14, s12, s13
    assert labels.asked_after(start.seq, reach_back=4) == 60.0 * 11  # and s11, s14, s12, s13
    assert labels.asked_after(points[29].seq) is None  # nothing answered since


def test_a_straggler_answered_after_the_change_does_not_date_it(tmp_path: Path) -> None:
    """s2's answer comes after s20's (a slow annotator, a labels partition read late): the
    concept that starts after s19's answer is dated at s20, or at the answers just before the
    point that it reaches back to, not at s2."""
    labels = store(tmp_path)
    for i in range(30):  # asked a minute apart
        at = datetime.fromtimestamp(60.0 * i, UTC)
        labels.add_request(request(f"s{i}").model_copy(update={"requested_at": at}))
    order = [0, 1, *range(3, 21), 2, *range(21, 30)]
    points = {i: labels.add_label(answer(f"s{i}", "dog"), f"labels:0:{i}") for i in order}
    start = points[19]
    assert start is not None
    # s2 was asked before most of the last 10 answered up to the point (s10..s19)
    assert labels.asked_after(start.seq) == 60.0 * 20
    assert labels.asked_after(start.seq, reach_back=3) == 60.0 * 17  # s17, s18, s19 too

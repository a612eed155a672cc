"""``streamal annotate``: answers become OracleLabels; skip, undo, quit and resume, bad input."""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

import pytest

from streamal.config import Settings
from streamal.errors import TransportError
from streamal.messages import DeadLetter, LabelRequest, OracleLabel, decode, encode, now
from streamal.tools.annotate import (
    DEFAULT_GROUP,
    AnnotateReport,
    add_parser,
    annotate,
    parse_answer,
    render,
)
from streamal.transport import Record, TopicSpec, open_transport
from streamal.transport.local import LocalTransport
from tests.conftest import settings_for
from tests.helpers import read_back, with_fresh_topics, write_config

ROOT = Path(__file__).parent.parent.parent
CLASSES = ["cat", "dog", "bird"]
INTERRUPT = object()  # typed as Ctrl-C


class Terminal:
    """A person at a terminal: types the next scripted line only once a prompt is shown.

    Both the tool's input and output. After the script, the input ends (Ctrl-D) or, without
    ``ends``, nothing more is typed. With ``at_waiting`` a line is also typed when the tool says
    it waits for requests.
    """

    def __init__(self, *lines: object, at_waiting: bool = False, ends: bool = True) -> None:
        self._lines = deque(lines)
        self._ends = ends
        self._at_waiting = at_waiting
        self._prompts = 0
        self._typed = 0
        self._changed = threading.Condition()
        self._main = threading.main_thread().ident
        self.shown: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.shown)

    def write(self, text: str) -> int:
        with self._changed:
            self.shown.append(text)
            self._prompts += text.count("label> ")
            if self._at_waiting:
                self._prompts += text.count("waiting for label requests")
                self._prompts += text.count("nothing to label yet")
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def readline(self) -> str:
        with self._changed:
            if not self._lines and self._ends:
                return ""
            if not self._lines:  # a person who never types
                self._changed.wait(60)
                return ""
            if not self._changed.wait_for(lambda: self._prompts > self._typed, timeout=30):
                return ""  # the prompt never came: end the input, the test's asserts tell why
            self._typed += 1
            line = self._lines.popleft()
        if line is INTERRUPT:
            assert self._main is not None
            signal.pthread_kill(self._main, signal.SIGINT)  # Ctrl-C reaches the main thread
            threading.Event().wait(60)  # the read the session left blocked
            return ""
        assert isinstance(line, str)
        return line + "\n"


def with_classes(settings: Settings) -> Settings:
    model = settings.model.model_copy(update={"classes": CLASSES})
    return settings.model_copy(update={"model": model})


def prepared(settings: Settings) -> Settings:
    """Fresh topics, three classes, and label requests on one partition (a known order)."""
    settings = with_classes(with_fresh_topics(settings))
    with open_transport(settings) as admin:
        admin.ensure_topics({settings.topics.label_requests: TopicSpec(partitions=1)})
    return settings


@pytest.fixture
def settings(cluster: Settings) -> Settings:
    return prepared(cluster)


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    return prepared(settings_for("local", tmp_path=tmp_path))


def request(n: int, **changes: object) -> LabelRequest:
    fields: dict[str, object] = {
        "id": f"r{n}",
        "features": [n, 0.5, -1.25],
        "meta": {"source": "web", "n": n},
        "prediction": [{"label": "dog", "p": 0.55}, {"label": "cat", "p": 0.4}],
        "utility": 0.45,
        "reason": "uncertain",
        "model_version": 2,
        "requested_at": now(),
    }
    return LabelRequest.model_validate({**fields, **changes})


def ask(settings: Settings, *values: bytes | LabelRequest | None) -> None:
    """Produce label requests (or raw record values, ``None`` a null one) in this order."""
    with open_transport(settings) as producer:
        for value in values:
            if isinstance(value, LabelRequest):
                producer.produce(
                    Record(settings.topics.label_requests, encode(value), key=value.id.encode())
                )
            else:
                producer.produce(Record(settings.topics.label_requests, value, key=b"raw"))
        producer.flush()


def labels(settings: Settings, count: int) -> list[tuple[str, str, str | None]]:
    """(id, label, annotator) of every answer on the labels topic by id, once ``count`` came."""
    got = read_back(settings, settings.topics.labels, count)
    answers = [decode(OracleLabel, e.value) for e in got]
    assert all(e.key == a.id.encode() for e, a in zip(got, answers, strict=True))
    return sorted((a.id, a.label, a.annotator) for a in answers)


def run(settings: Settings, terminal: Terminal, **options: object) -> AnnotateReport:
    options.setdefault("annotator", "ada")
    options.setdefault("idle_timeout_s", 30)  # a test never hangs
    return annotate(settings, input=terminal, output=terminal, **options)  # type: ignore[arg-type]


def test_answers_by_name_number_or_case_become_oracle_labels_with_the_annotator(
    settings: Settings,
) -> None:
    ask(settings, request(0), request(1, payload={"text": "a bird?"}, reason="audit"), request(2))
    terminal = Terminal("dog", "3", "CAT")  # then the input ends (Ctrl-D)

    report = run(settings, terminal)

    assert report == AnnotateReport("ada", answered=3, skipped=0)
    assert labels(settings, 3) == [
        ("r0", "dog", "ada"),
        ("r1", "bird", "ada"),
        ("r2", "cat", "ada"),
    ]
    shown = terminal.text
    assert "id        r0" in shown and "features  [0, 0.5, -1.25] (3 values)" in shown
    assert "uncertain: the model is unsure (utility 0.45), model v2" in shown
    assert "model     dog 55% · cat 40%" in shown
    assert "labels    [1] cat  [2] dog  [3] bird" in shown
    assert 'payload   {\n            "text": "a bird?"\n          }' in shown
    assert "audit: spot check of a confident prediction" in shown
    assert 'meta      source: "web"\n          n: 1' in shown
    assert shown.rstrip().endswith("saved 3 labels as ada; skipped 0")


def test_undo_takes_back_the_last_answer_or_skip_and_only_that_one(settings: Settings) -> None:
    ask(settings, request(0), request(1), request(2))
    terminal = Terminal("1", "u", "2", "s", "u", "3", "u", "u", "cat", "q")
    #                    r0   r0   r0   r1   r1   r1   r1   (none) r1

    report = run(settings, terminal)

    assert report == AnnotateReport("ada", answered=2, skipped=0)
    assert labels(settings, 2) == [("r0", "dog", "ada"), ("r1", "cat", "ada")]
    shown = terminal.text
    assert shown.count("id        r0") == 2 and shown.count("id        r1") == 4
    assert "undone: label 'cat' for r0" in shown and "undone: skip for r1" in shown
    assert "nothing to undo (earlier answers are already saved)" in shown
    assert "id        r2" in shown  # shown after the last answer, left unanswered by q


def test_quit_then_restart_resumes_at_the_next_unanswered_request(settings: Settings) -> None:
    ask(settings, *(request(n) for n in range(5)))

    first = run(settings, Terminal("1", "2", "q"))  # r2 is shown, then q
    terminal = Terminal("3", "s", "2")  # then the input ends (Ctrl-D)
    second = run(settings, terminal, annotator="bob")

    assert (first.answered, second.answered, second.skipped) == (2, 2, 1)
    assert terminal.text.index("id        r2") < terminal.text.index("id        r3")
    assert "id        r0" not in terminal.text and "id        r1" not in terminal.text
    assert labels(settings, 4) == [
        ("r0", "cat", "ada"), ("r1", "dog", "ada"), ("r2", "bird", "bob"), ("r4", "dog", "bob"),
    ]  # fmt: skip
    third = Terminal(ends=False)  # nothing left: not even the skipped r3 is asked again
    assert run(settings, third, idle_timeout_s=1) == AnnotateReport("ada")
    assert "id        r" not in third.text


def test_bad_input_is_explained_and_asked_again_and_unreadable_requests_are_dead_lettered(
    settings: Settings,
) -> None:
    ask(settings, request(0), b'{"id": "broken"', request(1))
    terminal = Terminal("7", "zebra", "", "0", "2", "bird")

    report = run(settings, terminal)

    assert report.answered == 2
    assert labels(settings, 2) == [("r0", "dog", "ada"), ("r1", "bird", "ada")]
    shown = terminal.text
    for typed in ("7", "zebra", "0"):
        assert f"'{typed}' is not a label: type 1-3 or one of cat, dog, bird (? for help)" in shown
    assert shown.count("id        r0") == 1  # asked again without showing the request again
    assert "skipped an unreadable request" in shown
    [letter] = read_back(settings, settings.topics.dead_letter, 1)
    assert decode(DeadLetter, letter.value).error.startswith("invalid JSON")


def test_a_null_value_is_dead_lettered_and_text_from_requests_cannot_forge_lines(
    settings: Settings,
) -> None:
    forged = request(
        1, payload="hello\rforged \x1b[2J", meta={"k\x1b[31m": "\u009b\u202e"},
        prediction=[{"label": "dog\nlabels    [1] cat", "p": 0.6}],
    )  # fmt: skip
    ask(settings, None, forged)
    terminal = Terminal("1")

    assert run(settings, terminal).answered == 1

    assert labels(settings, 1) == [("r1", "cat", "ada")]
    assert "skipped an unreadable request" in terminal.text
    assert all(line.isprintable() for line in terminal.text.split("\n"))
    assert "payload   hello" in terminal.text and "\\u001b[2J" in terminal.text
    [letter] = read_back(settings, settings.topics.dead_letter, 1)
    dead = decode(DeadLetter, letter.value)
    assert (dead.error, dead.original) == ("null value (tombstone): not a label request", "")


def test_ctrl_c_saves_the_held_answer(local: Settings) -> None:
    ask(local, request(0), request(1))

    report = run(local, Terminal("2", INTERRUPT))

    assert report.answered == 1
    assert labels(local, 1) == [("r0", "dog", "ada")]
    assert run(local, Terminal("1")).answered == 1  # r1 is next
    assert labels(local, 2)[1] == ("r1", "cat", "ada")


def test_while_waiting_undo_shows_the_last_request_again_and_q_quits(local: Settings) -> None:
    ask(local, request(0))
    terminal = Terminal("1", "u", "3", "hello", "q", at_waiting=True)

    assert run(local, terminal).answered == 1

    assert labels(local, 1) == [("r0", "bird", "ada")]
    assert terminal.text.count("id        r0") == 2
    assert "nothing to label yet; u undoes the last answer, q quits" in terminal.text


def test_idle_timeout_stops_a_session_with_nothing_to_label(local: Settings) -> None:
    terminal = Terminal(ends=False)

    assert run(local, terminal, idle_timeout_s=0.3, annotator=None) == AnnotateReport(None)

    assert "waiting for label requests" in terminal.text
    assert "no label request for 0.3 s, stopping" in terminal.text
    assert terminal.text.rstrip().endswith("saved 0 labels; skipped 0")


def test_numbers_are_off_when_classes_are_numbers() -> None:
    assert parse_answer("1", ["0", "1"]).name == "1"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="type one of 0, 1 "):
        parse_answer("2", ["0", "1"])
    lines = render(request(0), ["0", "1"])
    assert lines[-1] == "labels    0, 1"
    long = render(request(0, features=list(range(20)), payload="x\n" * 40, meta=None), CLASSES)
    assert "features  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...] (20 values)" in long
    assert "... (10 more lines)" in "\n".join(long)


def test_the_parser_takes_config_annotator_group_and_idle_timeout(
    local: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "grace")
    parser = argparse.ArgumentParser(prog="streamal")
    add_parser(parser.add_subparsers(dest="command"))

    defaults = parser.parse_args(["annotate"])
    assert (defaults.annotator, defaults.group, defaults.idle_timeout) == (
        "grace",
        DEFAULT_GROUP,
        None,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["annotate", "--idle-timeout", "0"])

    ask(local, request(0))
    config = write_config(local, tmp_path / "c.yaml")
    args = parser.parse_args(["annotate", "-c", config, "--group", "team-b", "--idle-timeout", "5"])
    terminal = Terminal("bird")
    monkeypatch.setattr("sys.stdin", terminal)
    monkeypatch.setattr("sys.stdout", terminal)

    assert args.run(args) == 0

    assert labels(local, 1) == [("r0", "bird", "grace")]
    with open_transport(local, group="team-b") as transport:
        committed = transport.committed(transport.partitions_for(local.topics.label_requests))
    assert list(committed.values()) == [1]


RUN_CLI = """
import argparse, sys
from streamal.tools.annotate import add_parser
parser = argparse.ArgumentParser(prog="streamal")
add_parser(parser.add_subparsers(dest="command"))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.run(args))
"""


def test_sigterm_saves_the_held_answer_and_exits_0(local: Settings, tmp_path: Path) -> None:
    ask(local, request(0), request(1))
    config = write_config(local, tmp_path / "c.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "annotate", "-c", config, "--annotator", "eve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None

    def shown_until(text: bytes) -> bytes:
        seen = b""
        while text not in seen:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, f"never showed {text!r}: {seen!r}"
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"ended before {text!r}: {seen!r}"
            seen += chunk
        return seen

    shown_until(b"label> ")
    proc.stdin.write(b"bird\n")
    proc.stdin.flush()
    assert b"id        r1" in shown_until(b"label> ")  # r0's answer is held back
    proc.send_signal(signal.SIGTERM)

    assert proc.wait(timeout=30) == 0
    assert labels(local, 1) == [("r0", "bird", "eve")]


def test_a_failing_poll_is_reported_once_and_retried(
    local: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask(local, request(0), request(1))
    real_poll = LocalTransport.poll
    calls = 0

    def flaky_poll(self: LocalTransport, max_records: int, timeout_s: float) -> list:
        nonlocal calls
        if self._group == DEFAULT_GROUP:  # the annotator's polls only
            calls += 1
            if calls <= 3:
                raise TransportError("database is locked")
        return real_poll(self, max_records, timeout_s)

    monkeypatch.setattr(LocalTransport, "poll", flaky_poll)
    terminal = Terminal("1", "2")

    assert run(local, terminal).answered == 2

    assert calls > 3
    assert terminal.text.count("cannot read label requests now, retrying: database is locked") == 1
    assert labels(local, 2) == [("r0", "cat", "ada"), ("r1", "dog", "ada")]

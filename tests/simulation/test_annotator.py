"""The simulated annotator rides out a failed commit: every request answered exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from streamal.config import Settings
from streamal.errors import FencedError
from streamal.messages import OracleLabel, decode, encode
from streamal.simulation.annotator import SimulatedAnnotator
from streamal.transport import Record, Transport, open_transport, topic_specs
from tests.conftest import unique
from tests.helpers import read_all, transport_class, wait_for, with_fresh_topics
from tests.training.test_labels import request

REQUESTS = 60


def test_a_failed_commit_rewinds_and_every_request_is_answered_once(
    cluster: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_fresh_topics(cluster)
    truth = {f"s{i}": "cat" if i % 3 else "dog" for i in range(REQUESTS)}
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for sample_id in truth:
            record = Record(settings.topics.label_requests, encode(request(sample_id)))
            producer.produce(record)
    kind = transport_class(settings)
    commit, fenced = kind._commit_transaction, []

    def fenced_once(transport: Transport) -> None:
        if not fenced:  # the group moved on while the answers were in hand: nothing lands
            fenced.append(True)
            raise FencedError("the group no longer knows this member (fault injected)")
        commit(transport)

    monkeypatch.setattr(kind, "_commit_transaction", fenced_once)
    annotator = SimulatedAnnotator(settings, truth, delay_s=0.2, group=unique("ann"))
    thread = threading.Thread(target=annotator.run)
    thread.start()
    try:
        wait_for(lambda: annotator.answered >= REQUESTS)
    finally:
        annotator.stop()
        thread.join(timeout=60)
    assert fenced and not thread.is_alive()
    answers = [decode(OracleLabel, e.value) for e in read_all(settings, settings.topics.labels)]
    assert Counter(a.id for a in answers) == Counter(truth.keys())  # each once, none lost
    assert all(a.label == truth[a.id] for a in answers)
    assert annotator.answered == REQUESTS

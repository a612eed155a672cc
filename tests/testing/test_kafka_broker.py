"""The test harness itself: a real broker starts, serves, and leaves no process behind."""

from __future__ import annotations

import os

import pytest
from kafka import KafkaAdminClient

from streamal.testing.kafka_broker import KafkaBroker, fetch_jars


@pytest.mark.kafka
@pytest.mark.skipif("STREAMAL_TEST_KAFKA" in os.environ, reason="an external broker was named")
def test_broker_starts_and_stops_without_leftovers() -> None:
    fetch_jars()
    broker = KafkaBroker().start()
    assert broker._process is not None
    pgid = broker._process.pid
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics({"probe": {"num_partitions": 2}}, wait_for_metadata=True)
    assert "probe" in admin.list_topics()
    admin.close()
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)

"""What only the Kafka transport has to prove: settings pass-through, topic creation, errors,
rejoining a group that forgot the member."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource
from kafka.coordinator.base import Generation

from streamal.config import KafkaTransportConfig, Settings
from streamal.errors import FencedError, TransportError
from streamal.testing.kafka_broker import free_port
from streamal.transport import (
    Record,
    TopicPartition,
    TopicSpec,
    next_offsets,
    open_transport,
    topic_specs,
)
from streamal.transport.kafka import KafkaTransport, client_settings
from tests.helpers import drain


def test_security_settings_pass_through_and_api_version_is_left_to_negotiation() -> None:
    config = KafkaTransportConfig(
        bootstrap_servers=["b1:9093"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="streamal",
        sasl_password="hunter2",
        ssl_cafile="/etc/ca.pem",
        ssl_password="keypass",
    )
    settings = client_settings(config)
    assert settings["sasl_plain_password"] == "hunter2"
    assert settings["ssl_password"] == "keypass"
    assert settings["ssl_cafile"] == "/etc/ca.pem"
    assert settings["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "api_version" not in settings
    assert "hunter2" not in repr(config)


def test_unreachable_broker_is_a_clear_transport_error() -> None:
    port = free_port()
    config = KafkaTransportConfig(bootstrap_servers=[f"127.0.0.1:{port}"], connect_timeout_ms=1500)
    transport = KafkaTransport(config, group="g")
    with pytest.raises(TransportError, match=rf"cannot reach a broker at 127\.0\.0\.1:{port}"):
        transport.subscribe(["samples"])
    transport.close()


@pytest.mark.kafka
def test_creates_streamals_topics_with_models_compacted(kafka_bootstrap: str) -> None:
    prefix = f"x{free_port()}"
    settings = Settings(
        transport={"kind": "kafka", "kafka": {"bootstrap_servers": [kafka_bootstrap]}},
        topics={name: f"{prefix}-{name}" for name in ("samples", "models")},
    )
    with open_transport(settings) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
        transport.ensure_topics(topic_specs(settings.topics))  # a second time changes nothing
        assert len(transport.partitions_for(f"{prefix}-samples")) == 6
        assert len(transport.partitions_for(f"{prefix}-models")) == 1
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    described = admin.describe_configs([ConfigResource("TOPIC", f"{prefix}-models")])
    admin.close()
    assert described["topic"][f"{prefix}-models"]["cleanup.policy"]["value"] == "compact"


@pytest.mark.kafka
def test_a_member_the_group_forgot_joins_again_and_its_next_batch_commits(
    kafka_bootstrap: str,
) -> None:
    prefix = f"m{free_port()}"
    settings = Settings(
        transport={
            "kind": "kafka",
            "kafka": {"bootstrap_servers": [kafka_bootstrap], "session_timeout_ms": 6000},
        },
        topics={"samples": f"{prefix}-in"},
    )
    with open_transport(settings) as producer:
        producer.ensure_topics({f"{prefix}-in": TopicSpec(partitions=1)})
        for i in range(4):
            producer.produce(Record(f"{prefix}-in", f"v{i}".encode(), key=b"k"))
    with open_transport(settings, group=f"{prefix}-g", transactional=True) as transport:
        transport.subscribe([f"{prefix}-in"])
        first = drain(transport, 4)
        transport.produce_and_commit([], next_offsets(first[:2]))
        # the state stalled heartbeats leave: a membership the broker has forgotten
        coordinator = transport._consumer._coordinator  # type: ignore[attr-defined]
        generation = coordinator._generation.generation_id
        coordinator._generation = Generation(generation, "gone", "range")
        with pytest.raises(FencedError):
            transport.produce_and_commit([], next_offsets(first[2:]))
        again = drain(transport, 2, timeout_s=60)  # the forged member's session ends
        assert [e.value for e in again] == [b"v2", b"v3"]  # from the committed offset
        transport.produce_and_commit([], next_offsets(again))
        assert transport.committed([TopicPartition(f"{prefix}-in", 0)]) == {
            TopicPartition(f"{prefix}-in", 0): 4
        }

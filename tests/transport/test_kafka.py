"""What only the Kafka transport has to prove: settings pass-through, topic creation, errors."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from streamal.config import KafkaTransportConfig, Settings
from streamal.errors import TransportError
from streamal.testing.kafka_broker import free_port
from streamal.transport import open_transport, topic_specs
from streamal.transport.kafka import KafkaTransport, client_settings


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

"""The ops endpoint answers /metrics, /healthz and /readyz from live state."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from streamal.errors import ConfigError
from streamal.http import OpsServer, parse_address
from streamal.metrics import Metrics


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_endpoints_follow_the_state() -> None:
    metrics = Metrics()
    state = {"ready": False}
    server = OpsServer("127.0.0.1:0", metrics.registry, lambda: True, lambda: state["ready"])
    server.start()
    try:
        metrics.samples.labels("oracle").inc(3)
        status, body = get(server.port, "/metrics")
        assert status == 200
        assert 'streamal_samples_total{route="oracle"} 3.0' in body
        assert 'streamal_samples_total{route="dead_letter"} 0.0' in body
        assert get(server.port, "/healthz")[0] == 200
        assert get(server.port, "/readyz")[0] == 503
        state["ready"] = True
        assert get(server.port, "/readyz")[0] == 200
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_every_design_metric_is_registered() -> None:
    names = {m.name for m in Metrics().registry.collect()}
    expected = {
        "streamal_samples", "streamal_batch_size", "streamal_predict_seconds",
        "streamal_end_to_end_seconds", "streamal_threshold", "streamal_label_rate",
        "streamal_label_budget", "streamal_model_version", "streamal_model_swaps",
        "streamal_labels_received", "streamal_label_delay_seconds",
        "streamal_answered_accuracy", "streamal_auto_label_precision_lower_bound",
        "streamal_drift_detected", "streamal_training_runs", "streamal_training_seconds",
    }  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("bad", ["9400", "host:", "host:99999", "host:http"])
def test_bad_address_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_address(bad)

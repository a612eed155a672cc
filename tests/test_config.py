"""Configuration: YAML + environment, one-line errors naming the field, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamal.config import Settings, load_settings, show
from streamal.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMAL_CONFIG", "STREAMAL_TRANSPORT__KIND"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["local.yaml", "kafka.yaml"])
def test_shipped_configs_load(name: str) -> None:
    settings = load_settings(CONFIGS / name)
    assert settings.transport.kind == name.removesuffix(".yaml")


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.transport.kind == "local"
    assert settings.topics.label_requests == "label-requests"


def test_environment_beats_the_file_and_nests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path, "transport:\n  kind: kafka\n  kafka:\n    partitions: 12\n    linger_ms: 7\n"
    )
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__PARTITIONS", "24")
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__BOOTSTRAP_SERVERS", "b1:9092, b2:9092")
    settings = load_settings(path)
    assert settings.transport.kafka.partitions == 24  # env
    assert settings.transport.kafka.linger_ms == 7  # file, untouched by the env override
    assert settings.transport.kafka.bootstrap_servers == ["b1:9092", "b2:9092"]
    assert settings.transport.kind == "kafka"


def test_config_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAL_CONFIG", str(write(tmp_path, "topics:\n  samples: raw\n")))
    assert load_settings().topics.samples == "raw"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(Exception, match="frozen"):
        settings.transport.local.partitions = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strategy:\n  budget: 1.5\n", "strategy.budget: must be > 0 and <= 1 (got 1.5)"),
        ("strategy:\n  gate: {name: coin}\n", "strategy.gate: must be one of: fixed, variable_unc"),
        ("strategy:\n  gate: {name: split, explore: 2}\n", "strategy.gate.explore: must be >= 0"),
        ("model:\n  classes: [a]\n", "model.classes: "),
        (
            "transport:\n  local:\n    partitions: 0\n",
            "transport.local.partitions: must be >= 1 and <= 1024 (got 0)",
        ),
        (
            "transport:\n  kind: rabbit\n",
            "transport.kind: must be one of: local, kafka (got 'rabbit')",
        ),
        (
            "transport:\n  kafka:\n    linger_ms: soon\n",
            "transport.kafka.linger_ms: must be an integer (got 'soon')",
        ),
        ("topics:\n  samples: 'no spaces'\n", "topics.samples: "),
        ("transprt: {}\n", "transprt: unknown field; allowed: transport, topics"),
        (
            "transport:\n  auto_offset_reset: middle\n",
            "transport.auto_offset_reset: must be one of: earliest, latest (got 'middle')",
        ),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("a: [\n", "invalid YAML at line 2"),
        (
            "serve:\n  max_record_bytes: 1048576\n",
            "serve.max_record_bytes: must leave 16384 bytes of transport.max_record_bytes"
            " (1048576) for the rest of a label request (got 1048576)",
        ),
        (
            "transport:\n  max_record_bytes: 100000\nserve:\n  max_record_bytes: 90000\n",
            "serve.max_record_bytes: must leave 16384 bytes of transport.max_record_bytes"
            " (100000) for the rest of a label request (got 90000)",
        ),
    ],
)
def test_invalid_config_is_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert str(caught.value).startswith("config error: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_serve_takes_samples_up_to_what_the_record_limit_leaves(tmp_path: Path) -> None:
    raised = load_settings(write(tmp_path, "transport:\n  max_record_bytes: 4194304\n"))
    assert raised.serve.sample_limit(raised.transport.max_record_bytes) == 4194304 - 16384
    kept = load_settings(write(tmp_path, "serve:\n  max_record_bytes: 65536\n"))
    assert kept.serve.sample_limit(kept.transport.max_record_bytes) == 65536


def test_invalid_environment_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAL_TRANSPORT__LOCAL__SESSION_TIMEOUT_S", "-1")
    with pytest.raises(
        ConfigError, match=r"transport.local.session_timeout_s: must be > 0 \(got '-1'\)"
    ):
        load_settings(None)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: No such file"):
        load_settings(tmp_path / "nope.yaml")


def test_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__SSL_PASSWORD", "s3cret")
    settings = load_settings(CONFIGS / "kafka.yaml")
    text = show(settings)
    assert "hunter2" not in text and "s3cret" not in text
    assert "sasl_password: '**********'" in text
    assert settings.transport.kafka.sasl_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


def test_secret_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("STREAMAL_TRANSPORT__KAFKA__PARTITIONS", "-3")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert "hunter2" not in str(caught.value)


def test_choosing_another_gate_takes_that_gates_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write(tmp_path, "strategy:\n  gate: {name: fixed}\n"))
    assert settings.strategy.gate.name == "fixed"
    monkeypatch.setenv("STREAMAL_STRATEGY__GATE__NAME", "quantile")
    assert load_settings(None).strategy.gate.name == "quantile"

"""The command line as a user meets it: help, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def streamal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAL_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "streamal", *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("args", [[], ["config"], ["config", "show"], ["schema"]])
def test_help_everywhere(args: list[str]) -> None:
    result = streamal(*args, "--help")
    assert result.returncode == 0
    assert "usage: streamal" in result.stdout


def test_no_command_is_a_usage_error() -> None:
    result = streamal()
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr


def test_config_show_prints_the_effective_config_with_secrets_masked() -> None:
    result = streamal(
        "config", "show", "--config", "configs/kafka.yaml",
        env={
            "STREAMAL_TRANSPORT__KAFKA__SASL_PASSWORD": "hunter2",
            "STREAMAL_TOPICS__SAMPLES": "raw",
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "sasl_password: '**********'" in result.stdout
    assert "samples: raw" in result.stdout


def test_config_show_as_json() -> None:
    result = streamal("config", "show", "--format", "json")
    assert json.loads(result.stdout)["transport"]["kind"] == "local"


def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("transport:\n  local:\n    partitions: -1\n")
    result = streamal("config", "show", "--config", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == "config error: transport.local.partitions: must be >= 1 and <= 1024 (got -1)\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('strategy: "password: hunter2"\n', "strategy: must be a mapping (got a string)"),
        ("transport: [kafka, hunter2]\n", "transport: must be a mapping (got a list)"),
        ("transport:\n  kafka: sasl_password=hunter2\n", "transport.kafka: must be a mapping"),
    ],
)
def test_a_section_that_is_no_mapping_is_named_and_its_text_not_echoed(
    tmp_path: Path, text: str, message: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = streamal("config", "show", "--config", str(bad))
    assert result.returncode == 2
    assert "hunter2" not in result.stdout + result.stderr
    assert result.stderr.startswith(f"config error: {message}")
    assert result.stderr.count("\n") == 1


def test_bad_environment_override_exits_2() -> None:
    result = streamal("config", "show", env={"STREAMAL_TRANSPORT__KIND": "zmq"})
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "config error: transport.kind: must be one of: local, kafka (got 'zmq')"
    )


def test_schema_prints_every_message_or_one() -> None:
    everything = json.loads(streamal("schema").stdout)
    assert "label-request" in everything
    one = streamal("schema", "oracle-label")
    assert one.returncode == 0
    assert json.loads(one.stdout)["title"] == "OracleLabel"


def test_unknown_schema_lists_the_allowed_names() -> None:
    result = streamal("schema", "invoice")
    assert result.returncode == 2
    assert "unknown message 'invoice'; allowed: sample, label-request" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("score: tests.plugins_for_tests:nope",
         "strategy.score: module 'tests.plugins_for_tests' has no attribute 'nope'"),
        ("gate: {name: no_such_package.gates:Mine}",
         "strategy.gate.name: No module named 'no_such_package'"),
        ("gate: {name: tests.plugins_for_tests:AtLeast, options: {level: 0.4, x: 1}}",
         "strategy.gate.options: tests.plugins_for_tests:AtLeast: AtLeast.__init__() got an "
         "unexpected keyword argument 'x'"),
    ],
)  # fmt: skip
def test_serve_with_a_user_object_that_does_not_load_exits_2_at_start(
    tmp_path: Path, strategy: str, message: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"transport: {{local: {{path: {tmp_path / 'log.sqlite'}}}}}\n"
        f"model: {{store: {tmp_path / 'models'}}}\n"
        "serve: {metrics_address: '127.0.0.1:0'}\n"
        f"strategy:\n  {strategy}\n"
    )
    result = streamal("serve", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == f"config error: {message}"
    assert "Traceback" not in result.stderr

"""docker-compose.yml: valid against the Compose Specification's JSON Schema, and coherent.

The schema is the one check-jsonschema vendors (``vendor.compose-spec``); no Docker engine is
needed. Beyond the schema: the services the README promises, files that exist, a Kafka address
the containers can reach, a configuration that loads, Prometheus loading the rules and scraping
every streamal process, Grafana provisioned with the dashboard.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from streamal.config import TopicsConfig, load_settings
from streamal.stream.config import ServeConfig
from streamal.training.config import TrainConfig
from tests.deploy import DEPLOY, ROOT

COMPOSE = ROOT / "docker-compose.yml"
STREAMAL_SERVICES = ("serve", "train", "producer", "annotate")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendored / "compose-spec.json").read_text(encoding="utf-8"))


def schema_errors(data: Any) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = validator.iter_errors(data)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def port(address: str) -> int:
    return int(address.rpartition(":")[2])


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume of a service (short syntax)."""
    found = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found.append((source, target))
    return found


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_catches_mistakes() -> None:
    data = compose()
    data["services"]["serve"]["replicas"] = 2  # belongs under deploy:
    data["services"]["train"]["depends_on"] = {"topics": {"condition": "service_finished"}}
    errors = schema_errors(data)
    assert any("replicas" in e for e in errors) and any("depends_on" in e for e in errors)


def test_check_jsonschema_accepts_it_from_the_command_line_too() -> None:
    done = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=60,
        env={"PATH": str(Path(sys.executable).parent)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_services_the_readme_promises_are_there() -> None:
    services = compose()["services"]
    assert {"kafka", "topics", "serve", "train", "producer", "prometheus", "grafana"} <= set(
        services
    )
    assert re.fullmatch(r"apache/kafka:4\.3\.\d+", services["kafka"]["image"])
    assert services["serve"]["deploy"]["replicas"] == 2
    assert "replicas" not in services["train"].get("deploy", {})  # the trainer is a singleton
    assert services["serve"]["command"] == ["serve"] and services["train"]["command"] == ["train"]
    assert services["annotate"]["entrypoint"] == ["streamal", "annotate"]
    assert services["annotate"]["profiles"] == ["tools"]  # run on demand, not by `up`
    assert services["annotate"]["stdin_open"] and services["annotate"]["tty"]


def test_kafka_runs_kraft_and_every_client_reaches_an_advertised_listener() -> None:
    services = compose()["services"]
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env)
    advertised = {a.split("://")[1] for a in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert "localhost:9092" in advertised  # configs/kafka.yaml from the host
    for name in STREAMAL_SERVICES:
        bootstrap = services[name]["environment"]["STREAMAL_TRANSPORT__KAFKA__BOOTSTRAP_SERVERS"]
        assert set(bootstrap.split(",")) <= advertised, name
    for name in ("topics", "kafka-exporter"):
        assert "kafka:29092" in json.dumps(services[name]), name
    for name in ("topics", "kafka-exporter"):
        condition = services[name]["depends_on"]["kafka"]["condition"]
        assert condition == "service_healthy"


def test_the_topic_job_creates_every_topic_with_models_compacted() -> None:
    services = compose()["services"]
    script = services["topics"]["command"][0]
    created = set(re.findall(r"for topic in ([^;]+);", script)[0].split()) | {"models"}
    assert created == set(TopicsConfig().model_dump().values())
    assert re.search(r"--topic models .*cleanup\.policy=compact", script.replace("\\\n", " "))
    for name in STREAMAL_SERVICES:
        assert services[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )


def test_the_streamal_containers_load_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    for name in STREAMAL_SERVICES:
        env = services[name]["environment"]
        assert env["STREAMAL_CONFIG"] == "/etc/streamal/kafka.yaml"  # configs/ in the image
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        settings = load_settings(ROOT / "configs" / "kafka.yaml")
        assert settings.transport.kind == "kafka"
        assert "replica_id" not in json.dumps(env).lower()  # the hostname differs per replica
    assert str(settings.model.store) == "/var/lib/streamal/models"


def test_trainer_and_replicas_share_the_model_store_at_the_same_path() -> None:
    services = compose()["services"]
    env = services["serve"]["environment"]
    store = env["STREAMAL_MODEL__STORE"]
    for name in ("serve", "train"):
        assert ("models", store) in mounts(services[name]), name
    label_store = PurePosixPath(services["train"]["environment"]["STREAMAL_TRAIN__LABEL_STORE"])
    assert ("labels", str(label_store.parent)) in mounts(services["train"])
    assert {"models", "labels"} <= set(compose()["volumes"])


def test_every_bind_mounted_file_exists() -> None:
    for name, service in compose()["services"].items():
        for source, _ in mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_the_demo_producer_is_the_script_in_deploy() -> None:
    producer = compose()["services"]["producer"]
    script = PurePosixPath(producer["entrypoint"][-1])
    [(source, target)] = [m for m in mounts(producer) if m[0].startswith("./")]
    assert PurePosixPath(target) == script.parent
    assert (ROOT / source / script.name).is_file()


def test_prometheus_loads_the_rules_and_scrapes_every_streamal_process() -> None:
    services = compose()["services"]
    volumes = dict((target, source) for source, target in mounts(services["prometheus"]))
    flags = dict(a.split("=", 1) for a in services["prometheus"]["command"] if "=" in a)
    config_path = flags["--config.file"]
    assert (ROOT / volumes[config_path]).resolve() == DEPLOY / "prometheus" / "prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    rule_targets = [t for t in volumes if any(fnmatch.fnmatch(t, g) for g in config["rule_files"])]
    assert [(ROOT / volumes[t]).resolve() for t in rule_targets] == [
        DEPLOY / "prometheus" / "alerts.yml"
    ]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    serve = jobs["streamal-serve"]["dns_sd_configs"][0]
    assert serve["names"] == ["serve"] and serve["port"] == port(ServeConfig().metrics_address)
    train = jobs["streamal-train"]["static_configs"][0]["targets"]
    assert train == [f"train:{port(TrainConfig().metrics_address)}"]
    assert jobs["kafka-exporter"]["static_configs"][0]["targets"] == ["kafka-exporter:9308"]


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    volumes = dict((target, source) for source, target in mounts(grafana))
    provisioning = ROOT / volumes["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "streamal.yml").read_text())[
        "providers"
    ]
    dashboards = provider["options"]["path"]
    assert (ROOT / volumes[dashboards] / "streamal.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/streamal.json"


def test_healthchecks_use_the_metrics_ports() -> None:
    services = compose()["services"]
    for name, config in (("serve", ServeConfig()), ("train", TrainConfig())):
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"localhost:{port(config.metrics_address)}/readyz" in check, name

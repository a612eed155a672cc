"""deploy/: the kustomize base, validated offline.

The base is built the way kustomize builds it (resources, the ConfigMap and Secret generators,
common labels, the image), by a small re-implementation here, and also by ``kubectl kustomize``
when kubectl is installed. Core kinds are validated strictly (unknown fields are errors) against
the Kubernetes JSON schemas kubernetes-validate bundles. ServiceMonitor and PrometheusRule are
CRDs it has no schema for: they are validated against the small structural schemas below, and
the rule groups by the rule tests. Then the pieces must fit: names referenced exist, selectors
select, ports and probes match, the configuration loads.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streamal.config import load_settings
from tests.deploy import DEPLOY, ROOT

# The oldest Kubernetes the manifests target, while kubernetes-validate bundles it; else its newest.
TARGET_VERSION = "1.30.0"
KUBERNETES_VERSION = (
    TARGET_VERSION
    if TARGET_VERSION in kubernetes_validate.utils.all_versions()
    else kubernetes_validate.latest_version()
)
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
DEPLOYMENTS = ("streamal-serve", "streamal-train", "streamal-label-studio-bridge")
KUBECTL = shutil.which("kubectl")

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": _LABELS, "namespace": {"type": "string"}},
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _LABELS},
    "required": ["matchLabels"],
    "additionalProperties": False,
}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": _SELECTOR,
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "interval": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": {"type": "string"},
                                            "labels": _LABELS,
                                            "annotations": _LABELS,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


# -- building the base --------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def build() -> list[dict[str, Any]]:
    """The base's objects, as ``kustomize build`` makes them (without the name hashes)."""
    k = kustomization()
    objects: list[dict[str, Any]] = []
    for resource in k["resources"]:
        path = DEPLOY / resource
        objects += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    for generator in k.get("configMapGenerator", []):
        data = {Path(f).name: (DEPLOY / f).read_text(encoding="utf-8") for f in generator["files"]}
        labels = generator.get("options", {}).get("labels", {})
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
             "metadata": {"name": generator["name"], **({"labels": labels} if labels else {})}}
        )  # fmt: skip
    for generator in k.get("secretGenerator", []):
        pairs: dict[str, str] = {}
        for f in generator.get("envs", []):
            pairs |= env_file(DEPLOY / f)
        data = {key: base64.b64encode(v.encode()).decode() for key, v in pairs.items()}
        objects.append(
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": generator["name"]}, **({"data": data} if data else {})}
        )  # fmt: skip
    for entry in k.get("labels", []):
        assert entry.get("includeSelectors") is False  # selectors stay as written
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in k["images"]}
    for obj in objects:
        for container in containers(obj):
            container["image"] = images.get(container["image"], container["image"])
    return objects


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] != "Deployment":
        return []
    return list(obj["spec"]["template"]["spec"]["containers"])


def kubectl_build() -> list[dict[str, Any]]:
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return build()


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def validation_errors(obj: dict[str, Any]) -> list[str]:
    if obj["kind"] in CRD_KINDS:
        validator = jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["kind"]])
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{list(error.absolute_path)}: {error.message}"]
    return []


# -- validity -----------------------------------------------------------------------------


def test_every_object_is_valid_core_kinds_strictly_and_crds_structurally(
    objects: list[dict[str, Any]],
) -> None:
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Deployment",
         "PersistentVolumeClaim", "PersistentVolumeClaim", "PersistentVolumeClaim",
         "PodDisruptionBudget", "PrometheusRule", "Secret", "Secret", "Service", "Service",
         "Service", "ServiceMonitor"]
    )  # fmt: skip
    for obj in objects:
        assert validation_errors(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"


def test_the_validators_reject_unknown_fields_and_wrong_types(
    objects: list[dict[str, Any]],
) -> None:
    serve = copy.deepcopy(one(objects, "Deployment", "streamal-serve"))
    serve["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    assert validation_errors(serve)
    serve = copy.deepcopy(one(objects, "Deployment", "streamal-serve"))
    serve["spec"]["replicas"] = "two"
    assert validation_errors(serve)
    monitor = copy.deepcopy(one(objects, "ServiceMonitor", "streamal"))
    monitor["spec"]["endpoints"][0]["targetport"] = 9400
    assert validation_errors(monitor)


def test_kubectl_kustomize_builds_the_same_objects_when_kubectl_is_installed(
    objects: list[dict[str, Any]],
) -> None:
    if KUBECTL is None:  # the re-implementation above is what was validated
        return
    built = kubectl_build()
    suffix = re.compile(r"-[a-z0-9]{10}$")  # kustomize's content hash on generated names

    def names(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((o["kind"], suffix.sub("", o["metadata"]["name"])) for o in objs)

    assert names(built) == names(objects)
    for obj in built:
        assert validation_errors(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"
        for container in containers(obj):
            assert container["image"] == "streamal:0.1.0"


# -- the pieces fit -----------------------------------------------------------------------


def pod_spec(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def mount_paths(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """volume name -> mount path in the Deployment's container."""
    [container] = pod_spec(objects, name)["containers"]
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def claims(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """volume name -> claim name, of the Deployment's PVC volumes."""
    return {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec(objects, name)["volumes"]
        if "persistentVolumeClaim" in v
    }


def test_serve_has_replicas_resources_probes_and_a_disruption_budget(
    objects: list[dict[str, Any]],
) -> None:
    serve = one(objects, "Deployment", "streamal-serve")
    assert serve["spec"]["replicas"] == 2
    [container] = containers(serve)
    assert container["args"] == ["serve"]
    assert {"requests", "limits"} <= set(container["resources"])
    metrics_port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    address = env_of(container)["STREAMAL_SERVE__METRICS_ADDRESS"]
    assert int(address.rpartition(":")[2]) == metrics_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    pdb = one(objects, "PodDisruptionBudget", "streamal-serve")
    assert pdb["spec"]["selector"]["matchLabels"] == serve["spec"]["selector"]["matchLabels"]
    assert 0 < pdb["spec"]["minAvailable"] < serve["spec"]["replicas"]


def test_the_trainer_is_a_singleton_with_its_label_store_on_a_volume(
    objects: list[dict[str, Any]],
) -> None:
    train = one(objects, "Deployment", "streamal-train")
    assert train["spec"]["replicas"] == 1
    assert train["spec"]["strategy"] == {"type": "Recreate"}  # never two at once
    [container] = containers(train)
    assert container["args"] == ["train"]
    env = env_of(container)
    label_store = PurePosixPath(env["STREAMAL_TRAIN__LABEL_STORE"])
    mounted = mount_paths(objects, "streamal-train")
    volume = next(v for v, path in mounted.items() if PurePosixPath(path) == label_store.parent)
    claim_name = claims(objects, "streamal-train")[volume]
    claim = one(objects, "PersistentVolumeClaim", claim_name)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim_name not in claims(objects, "streamal-serve").values()


def test_the_model_store_is_one_read_write_many_volume_at_the_same_path_everywhere(
    objects: list[dict[str, Any]],
) -> None:
    paths = set()
    claim_names = set()
    for name in ("streamal-serve", "streamal-train"):
        [container] = pod_spec(objects, name)["containers"]
        store = env_of(container)["STREAMAL_MODEL__STORE"]
        volume = next(v for v, p in mount_paths(objects, name).items() if p == store)
        claim_names.add(claims(objects, name)[volume])
        paths.add(store)
    assert len(paths) == 1 and len(claim_names) == 1
    models = one(objects, "PersistentVolumeClaim", claim_names.pop())
    assert models["spec"]["accessModes"] == ["ReadWriteMany"]


def test_every_referenced_configmap_secret_and_claim_exists(
    objects: list[dict[str, Any]],
) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for deployment in DEPLOYMENTS:
        spec = pod_spec(objects, deployment)
        for volume in spec["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
        [container] = spec["containers"]
        for source in container.get("envFrom", []):
            assert ("Secret", source["secretRef"]["name"]) in names
        mounted = {m["name"] for m in container["volumeMounts"]}
        assert mounted == {v["name"] for v in spec["volumes"]}


def test_the_pods_run_unprivileged(objects: list[dict[str, Any]]) -> None:
    for deployment in DEPLOYMENTS:
        spec = pod_spec(objects, deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        [container] = spec["containers"]
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        if context.get("readOnlyRootFilesystem"):  # then /tmp must be writable
            assert mount_paths(objects, deployment).get("tmp") == "/tmp"


def test_each_replica_gets_its_pod_name_as_replica_id(objects: list[dict[str, Any]]) -> None:
    for deployment in DEPLOYMENTS:
        [container] = pod_spec(objects, deployment)["containers"]
        replica = env_of(container)["STREAMAL_TRANSPORT__KAFKA__REPLICA_ID"]
        assert replica == {"fieldRef": {"fieldPath": "metadata.name"}}
        # deploy/README.md's overlay example patches /spec/template/spec/containers/0/env/1
        assert container["env"][1]["name"] == "STREAMAL_TRANSPORT__KAFKA__BOOTSTRAP_SERVERS"


def test_the_configmap_is_configs_kafka_yaml_and_the_pods_load_it(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = DEPLOY / "kubernetes" / "kafka.yaml"
    assert copied.read_bytes() == (ROOT / "configs" / "kafka.yaml").read_bytes(), (
        "deploy/kubernetes/kafka.yaml must be a copy of configs/kafka.yaml: "
        "cp configs/kafka.yaml deploy/kubernetes/kafka.yaml"
    )
    config_map = one(objects, "ConfigMap", "streamal-config")
    for deployment in DEPLOYMENTS:
        [container] = pod_spec(objects, deployment)["containers"]
        env = env_of(container)
        config = PurePosixPath(env["STREAMAL_CONFIG"])
        assert mount_paths(objects, deployment)["config"] == str(config.parent)
        (tmp_path / config.name).write_text(config_map["data"][config.name])
        for key, value in env.items():
            if key.startswith("STREAMAL_") and isinstance(value, str) and key != "STREAMAL_CONFIG":
                monkeypatch.setenv(key, value)
        settings = load_settings(tmp_path / config.name)
        assert settings.transport.kind == "kafka"
        mounted = [PurePosixPath(p) for p in mount_paths(objects, deployment).values()]
        assert PurePosixPath(settings.model.store) in mounted


def test_services_select_the_pods_and_the_servicemonitor_the_services(
    objects: list[dict[str, Any]],
) -> None:
    monitor = one(objects, "ServiceMonitor", "streamal")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    [endpoint] = monitor["spec"]["endpoints"]
    for name in ("streamal-serve", "streamal-train"):
        service = one(objects, "Service", name)
        pod_labels = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        others = [d for d in objects if d["kind"] == "Deployment" and d["metadata"]["name"] != name]
        for other in others:  # a Service selects one Deployment's pods only
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not service["spec"]["selector"].items() <= labels.items()
        assert wanted.items() <= service["metadata"]["labels"].items()
        [service_port] = service["spec"]["ports"]
        assert service_port["name"] == endpoint["port"]
        [container] = containers(one(objects, "Deployment", name))
        assert service_port["targetPort"] in {p["name"] for p in container["ports"]}


def test_the_dashboard_configmap_is_the_dashboard_for_grafanas_sidecar(
    objects: list[dict[str, Any]],
) -> None:
    board = one(objects, "ConfigMap", "streamal-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = DEPLOY / "grafana" / "dashboards" / "streamal.json"
    assert board["data"] == {"streamal.json": dashboard.read_text(encoding="utf-8")}


def test_the_credentials_secret_is_empty_in_the_base() -> None:
    assert env_file(DEPLOY / "kubernetes" / "kafka-credentials.env") == {}
    assert "STREAMAL_TRANSPORT__KAFKA__SASL_PASSWORD" in (
        DEPLOY / "kubernetes" / "kafka-credentials.env"
    ).read_text(encoding="utf-8")
    assert (ROOT / "Dockerfile").is_file()


def test_the_label_studio_bridge_waits_for_its_settings_and_keeps_its_ledger(
    objects: list[dict[str, Any]],
) -> None:
    bridge = one(objects, "Deployment", "streamal-label-studio-bridge")
    assert bridge["spec"]["replicas"] == 0  # until an overlay gives Label Studio's URL and token
    assert bridge["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = bridge["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["bridge", "label-studio"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["STREAMAL_BRIDGE__LABEL_STUDIO__LISTEN"].endswith(f":{ports['label-studio']}")
    assert env["STREAMAL_BRIDGE__LABEL_STUDIO__METRICS_ADDRESS"].endswith(f":{ports['metrics']}")
    service = one(objects, "Service", "streamal-label-studio-bridge")
    public = env["STREAMAL_BRIDGE__LABEL_STUDIO__PUBLIC_URL"]
    assert public == f"http://{service['metadata']['name']}:{ports['label-studio']}"
    state = PurePosixPath(env["STREAMAL_BRIDGE__LABEL_STUDIO__STATE"])
    assert mount_paths(objects, "streamal-label-studio-bridge")["state"] == str(state.parent)
    secret = one(objects, "Secret", "streamal-label-studio")
    assert not secret.get("data")  # the token comes from an overlay

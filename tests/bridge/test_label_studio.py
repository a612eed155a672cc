"""The Label Studio bridge against a real Label Studio server (started once per session)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from streamal.bridge.label_studio import LabelStudioBridge
from streamal.bridge.tasks import score
from streamal.cli import main
from streamal.config import Settings
from streamal.messages import DeadLetter, LabelRequest, OracleLabel, Sample, decode, encode, now
from streamal.model import MLP, ModelStore
from streamal.model.announce import announcement_record
from streamal.model.store import Checkpoint
from streamal.testing.kafka_broker import free_port
from streamal.testing.label_studio import USERNAME, LabelStudio
from streamal.transport import Record, open_transport, topic_specs
from tests.conftest import settings_for
from tests.helpers import read_all, read_back, wait_for, with_fresh_topics, write_config

CLASSES = ["cat", "dog"]


def bridge_settings(base: Settings, tmp_path: Path, server: LabelStudio, **extra: Any) -> Settings:
    """Settings of a bridge to a fresh project of ``server`` on fresh topics of ``base``."""
    port = free_port()
    label_studio = {
        "url": server.url, "token": server.token, "project": f"p-{uuid.uuid4().hex[:8]}",
        "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
        "metrics_address": "127.0.0.1:0", "state": str(tmp_path / "bridge.sqlite"),
        "reconcile_interval_s": 3600, **extra,
    }  # fmt: skip
    model = {"n_features": 4, "classes": CLASSES, "hidden": [8], "store": str(tmp_path / "models")}
    return Settings(
        transport=base.transport,
        topics=with_fresh_topics(base).topics,
        model=model,
        bridge={"label_studio": label_studio},
    )


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[LabelStudioBridge]:
    """A bridge running in a thread until the block ends."""
    bridge = LabelStudioBridge(settings)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            bridge.run()
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: bridge.ready() or failed, timeout_s=60)
    assert not failed, failed
    try:
        yield bridge
    finally:
        bridge.stop()
        thread.join(timeout=30)
    assert not failed, failed


def request(sample_id: str, p_cat: float, version: int = 0) -> LabelRequest:
    return LabelRequest(
        id=sample_id, features=[p_cat, 1.0, -1.0, 0.5], payload={"text": f"sample {sample_id}"},
        prediction=[{"label": "cat", "p": p_cat}, {"label": "dog", "p": round(1 - p_cat, 6)}],
        utility=1 - abs(2 * p_cat - 1), reason="uncertain", model_version=version,
        requested_at=now(),
    )  # fmt: skip


def produce(settings: Settings, requests: list[LabelRequest]) -> None:
    with open_transport(settings) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
        for r in requests:
            transport.produce(Record(settings.topics.label_requests, encode(r), r.id.encode()))
        transport.flush()


def tasks(server: LabelStudio, project: int) -> list[dict[str, Any]]:
    answer = server.api("GET", f"/api/tasks/?project={project}&page_size=1000&fields=all")
    return list(answer["tasks"])


def annotate(server: LabelStudio, bridge: LabelStudioBridge, task: int, label: str) -> int:
    """Annotate ``task`` through the API, as the labeling UI does for a person."""
    result = [{"from_name": "label", "to_name": "item", "type": "choices",
               "value": {"choices": [label]}}]  # fmt: skip
    path = f"/api/tasks/{task}/annotations/?project={bridge.project_id}"
    return int(server.api("POST", path, {"result": result, "lead_time": 2.5})["id"])


def labels(settings: Settings) -> list[OracleLabel]:
    return [decode(OracleLabel, e.value) for e in read_all(settings, settings.topics.labels, 0.5)]


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    return settings_for("local", tmp_path=tmp_path)


def test_label_requests_become_tasks_with_the_models_prediction(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio)
    produce(settings, [request("s1", 0.55), request("s2", 0.9), request("s3", 0.2, version=3)])
    with running(settings) as bridge:
        wait_for(lambda: len(bridge.known) == 3, timeout_s=30)
        value = bridge.metrics.registry.get_sample_value
        assert value("streamal_bridge_tasks_created_total") == 3
        assert bridge.ops is not None
        ops = f"http://127.0.0.1:{bridge.ops.port}"
        for probe in ("/healthz", "/readyz"):
            with urllib.request.urlopen(ops + probe, timeout=5) as answer:
                assert answer.status == 200
        with urllib.request.urlopen(ops + "/metrics", timeout=5) as answer:
            assert b"streamal_bridge_tasks_created_total 3.0" in answer.read()
    found = {t["data"]["sample_id"]: t for t in tasks(label_studio, bridge.project_id)}
    assert sorted(found) == ["s1", "s2", "s3"]
    assert found["s1"]["data"]["text"] == "sample s1"  # the payload's fields, shown as $text
    assert found["s1"]["data"]["features"] == [0.55, 1.0, -1.0, 0.5]
    assert found["s1"]["data"]["view"].startswith("id        s1")
    predicted = {sid: t["predictions"] for sid, t in found.items()}
    assert [len(p) for p in predicted.values()] == [1, 1, 1]
    # asked by the model the bridge has (v0): the request's own prediction
    assert predicted["s1"][0]["result"][0]["value"] == {"choices": ["cat"]}
    assert predicted["s1"][0]["model_version"] == "default-v0"
    assert predicted["s1"][0]["score"] == pytest.approx(score([0.55, 0.45]))
    # the least sure first when sorted by prediction score, descending
    assert predicted["s1"][0]["score"] > predicted["s2"][0]["score"]
    # asked by a version the bridge does not have: the bridge's model predicts instead, as
    # Label Studio shows (and sorts by) the predictions of the project's model version only
    assert predicted["s3"][0]["model_version"] == "default-v0"
    probabilities = probabilities_of(bridge, [0.2, 1.0, -1.0, 0.5])
    top = CLASSES[probabilities.index(max(probabilities))]
    assert predicted["s3"][0]["result"][0]["value"] == {"choices": [top]}
    assert predicted["s3"][0]["score"] == pytest.approx(score(probabilities), abs=1e-5)
    project = label_studio.api("GET", f"/api/projects/{bridge.project_id}/")
    assert project["model_version"] == "default-v0"
    ordered = label_studio.api(
        "GET", f"/api/tasks/?project={bridge.project_id}&fields=task_only&query="
        + urllib.parse.quote(json.dumps({"ordering": ["-tasks:predictions_score"]})),
    )  # fmt: skip
    scores = {sid: p[0]["score"] for sid, p in predicted.items()}
    expected = sorted(scores, key=scores.__getitem__, reverse=True)
    assert [t["data"]["sample_id"] for t in ordered["tasks"]] == expected


def probabilities_of(bridge: LabelStudioBridge, features: list[float]) -> list[float]:
    """The bridge's current model's class probabilities of a sample with ``features``."""
    encoded = bridge.predictor.encode([Sample(id="probe", features=features)])
    return [float(p) for p in bridge.predictor.probabilities(encoded.inputs)[0]]


def test_a_restart_or_a_replay_creates_no_second_task(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio)
    produce(settings, [request(f"s{i}", 0.6) for i in range(5)])
    with running(settings) as bridge:
        wait_for(lambda: len(bridge.known) == 5, timeout_s=30)
    produce(settings, [request("s2", 0.6), request("s5", 0.6)])  # s2 again, s5 new
    with running(settings) as bridge:  # a restart: same group, same project
        wait_for(lambda: len(bridge.known) == 6, timeout_s=30)
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_requests_known_total") == 1, timeout_s=30)
    replay = settings.bridge.label_studio.model_copy(
        update={"group": "replay", "state": tmp_path / "r.sqlite"}
    )
    replayed = settings.model_copy(
        update={"bridge": settings.bridge.model_copy(update={"label_studio": replay})}
    )
    with running(replayed) as bridge:  # another group reads all 7 requests again
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_requests_known_total") == 7, timeout_s=30)
        assert value("streamal_bridge_tasks_created_total") == 0
    ids = [t["data"]["sample_id"] for t in tasks(label_studio, bridge.project_id)]
    assert sorted(ids) == [f"s{i}" for i in range(6)]


def test_an_annotation_becomes_exactly_one_label_and_an_update_a_new_one(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio)
    produce(settings, [request("a", 0.5), request("b", 0.5)])
    with running(settings) as bridge:
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: len(bridge.known) == 2 and value("streamal_bridge_reconciliations_total"))
        annotation = annotate(label_studio, bridge, bridge.known["a"], "dog")  # after the pass
        wait_for(lambda: value("streamal_bridge_answers_total", {"path": "webhook"}) == 1)
        # a person skips b: nothing comes of it
        path = f"/api/tasks/{bridge.known['b']}/annotations/?project={bridge.project_id}"
        label_studio.api("POST", path, {"result": [], "was_cancelled": True})
        bridge._next_reconcile = 0.0  # a reconciliation pass now: it finds nothing new
        wait_for(lambda: value("streamal_bridge_reconciliations_total") == 2)
        assert value("streamal_bridge_answers_total", {"path": "reconciliation"}) == 0
    (label,) = labels(settings)
    stored = label_studio.api("GET", f"/api/annotations/{annotation}/")
    assert (label.id, label.label, label.annotator) == ("a", "dog", USERNAME)
    assert label.labeled_at.isoformat().replace("+00:00", "Z") == stored["updated_at"]

    with running(settings) as bridge:  # restarted: the reconciliation at start adds nothing
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_reconciliations_total") == 1)
        result = [{"from_name": "label", "to_name": "item", "type": "choices",
                   "value": {"choices": ["cat"]}}]  # fmt: skip
        label_studio.api("PATCH", f"/api/annotations/{annotation}/", {"result": result})
        wait_for(lambda: value("streamal_bridge_answers_total", {"path": "webhook"}) == 1)
        label_studio.api("DELETE", f"/api/annotations/{annotation}/")
        wait_for(lambda: value("streamal_bridge_annotations_deleted_total") == 1)
    assert [(x.id, x.label) for x in labels(settings)] == [("a", "dog"), ("a", "cat")]


def test_answers_given_while_the_bridge_is_down_arrive_after_it_restarts(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio)
    produce(settings, [request(f"s{i}", 0.5) for i in range(3)])
    with running(settings) as bridge:
        wait_for(lambda: len(bridge.known) == 3, timeout_s=30)
    for i, label in enumerate(["cat", "dog", "cat"]):  # the webhooks find nobody
        annotate(label_studio, bridge, bridge.known[f"s{i}"], label)
    assert labels(settings) == []
    with running(settings) as bridge:
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_answers_total", {"path": "reconciliation"}) == 3)
    assert sorted((x.id, x.label) for x in labels(settings)) == [
        ("s0", "cat"), ("s1", "dog"), ("s2", "cat"),
    ]  # fmt: skip


def test_a_later_pass_reads_the_changed_tasks_and_finds_an_answer_whose_webhook_was_lost(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio)
    produce(settings, [request("a", 0.5), request("b", 0.5)])
    with running(settings) as bridge:
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: len(bridge.known) == 2 and value("streamal_bridge_reconciliations_total"))
        annotate(label_studio, bridge, bridge.known["a"], "cat")
        wait_for(lambda: value("streamal_bridge_answers_total", {"path": "webhook"}) == 1)
        bridge._next_reconcile = 0.0  # a pass that sees a's change: later ones start near it
        wait_for(lambda: value("streamal_bridge_reconciliations_total") == 2)
        assert bridge._newest_change is not None
        project = bridge.project_id
        for hook in label_studio.api("GET", f"/api/webhooks/?project={project}"):
            label_studio.api("DELETE", f"/api/webhooks/{hook['id']}/")
        for backend in label_studio.api("GET", f"/api/ml/?project={project}"):
            label_studio.api("DELETE", f"/api/ml/{backend['id']}")  # its webhook goes too
        annotate(label_studio, bridge, bridge.known["b"], "dog")  # no webhook reaches the bridge
        bridge._next_reconcile = 0.0
        wait_for(lambda: value("streamal_bridge_reconciliations_total") == 3)
        assert value("streamal_bridge_answers_total", {"path": "reconciliation"}) == 1
        assert value("streamal_bridge_answers_total", {"path": "webhook"}) == 1
    assert sorted((x.id, x.label) for x in labels(settings)) == [("a", "cat"), ("b", "dog")]


def test_a_label_of_no_model_class_goes_to_dead_letter(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    config = """<View><Text name="item" value="$text"/>
      <Choices name="label" toName="item"><Choice value="cat"/><Choice value="dog"/>
      <Choice value="bird"/></Choices></View>"""
    settings = bridge_settings(local, tmp_path, label_studio, label_config=config)
    produce(settings, [request("x", 0.5)])
    with running(settings) as bridge:
        wait_for(lambda: len(bridge.known) == 1, timeout_s=30)
        annotate(label_studio, bridge, bridge.known["x"], "bird")
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_dead_letters_total") == 1)
    (letter,) = [
        decode(DeadLetter, e.value) for e in read_back(settings, settings.topics.dead_letter, 1)
    ]
    assert letter.error == "label: unknown class 'bird'"
    assert letter.topic == "label-studio" and letter.partition == bridge.project_id
    assert labels(settings) == []


def test_a_request_label_studio_refuses_goes_to_dead_letter_and_holds_back_no_other(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    config = """<View><Text name="item" value="$text"/>
      <Choices name="label" toName="item"><Choice value="cat"/><Choice value="dog"/></Choices>
      </View>"""
    settings = bridge_settings(local, tmp_path, label_studio, label_config=config)
    no_text = request("plain", 0.5).model_copy(update={"payload": None})  # nothing for $text
    produce(settings, [request("a", 0.5), no_text, request("b", 0.5)])
    with running(settings) as bridge:
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_dead_letters_total") == 1, timeout_s=30)
        assert sorted(bridge.known) == ["a", "b"]
    (letter,) = [
        decode(DeadLetter, e.value) for e in read_back(settings, settings.topics.dead_letter, 1)
    ]
    assert letter.error.startswith("Label Studio refused it: ")
    assert decode(LabelRequest, base64.b64decode(letter.original)).id == "plain"
    ids = [t["data"]["sample_id"] for t in tasks(label_studio, bridge.project_id)]
    assert sorted(ids) == ["a", "b"]


def store_model(settings: Settings, seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    store = ModelStore(settings.model.store, settings.model.name)
    return store.save(MLP(4, 2, [8], 0.0).state_dict(), CLASSES)


def test_the_ml_backend_connects_and_predicts_with_the_champion(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio)
    store_model(settings, seed=1)
    with running(settings) as bridge:
        (backend,) = label_studio.api("GET", f"/api/ml/?project={bridge.project_id}")
        assert (
            backend["state"] == "CO" and backend["url"] == settings.bridge.label_studio.public_url
        )
        path = f"/api/projects/{bridge.project_id}/import?return_task_ids=true"
        imported = label_studio.api(
            "POST", path, [{"data": {"features": [1.0, 2.0, 3.0, 4.0], "view": "by hand"}}]
        )
        (task_id,) = imported["task_ids"]
        # opening a task without predictions (what the labeling UI does) asks the ML backend
        task = label_studio.api("GET", f"/api/tasks/{task_id}/")
        assert bridge.predictor.version == 1
        probabilities = probabilities_of(bridge, [1.0, 2.0, 3.0, 4.0])
    (predicted,) = task["predictions"]
    assert predicted["model_version"] == "default-v1"
    top = CLASSES[int(probabilities.index(max(probabilities)))]
    assert predicted["result"][0]["value"] == {"choices": [top]}
    assert predicted["score"] == pytest.approx(score(probabilities), abs=1e-5)


def test_a_new_model_version_refreshes_the_predictions_of_open_tasks(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio, refresh_tasks=2)
    produce(settings, [request(f"s{i}", 0.5) for i in range(4)])
    with running(settings) as bridge:
        wait_for(lambda: len(bridge.known) == 4, timeout_s=30)
        annotate(label_studio, bridge, bridge.known["s0"], "cat")  # not open any more
        checkpoint = store_model(settings, seed=2)
        with open_transport(settings) as transport:
            transport.produce(announcement_record(settings.topics.models, checkpoint))
            transport.flush()
        value = bridge.metrics.registry.get_sample_value
        wait_for(lambda: value("streamal_bridge_predictions_total", {"kind": "refresh"}) == 2)
    versions = {
        t["data"]["sample_id"]: sorted(p["model_version"] for p in t["predictions"])
        for t in tasks(label_studio, bridge.project_id)
    }
    assert versions["s0"] == ["default-v0"]
    refreshed = [sid for sid, v in versions.items() if v == ["default-v0", "default-v1"]]
    assert len(refreshed) == 2 and "s0" not in refreshed
    # the project shows the new version's predictions: the refreshed tasks have a score
    project = label_studio.api("GET", f"/api/projects/{bridge.project_id}/")
    assert project["model_version"] == "default-v1"
    scored = {t["data"]["sample_id"] for t in tasks(label_studio, bridge.project_id)
              if t["predictions_score"] is not None}  # fmt: skip
    assert scored == set(refreshed)


def test_a_wrong_url_or_token_fails_with_one_line(
    label_studio: LabelStudio, local: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = bridge_settings(local, tmp_path, label_studio, token="not-the-token")
    data = settings.model_dump(mode="json")
    data["bridge"]["label_studio"]["token"] = "not-the-token"
    path = write_config(Settings(**data), tmp_path / "bad-token.yaml")
    assert main(["bridge", "label-studio", "-c", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("config error: bridge.label_studio.token: ") and "401" in err
    assert "\n" not in err

    data["bridge"]["label_studio"]["url"] = f"http://127.0.0.1:{free_port()}"
    path = write_config(Settings(**data), tmp_path / "bad-url.yaml")
    assert main(["bridge", "label-studio", "-c", path]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach Label Studio at http://127.0.0.1:")
    assert err.endswith("(check bridge.label_studio.url)") and "\n" not in err


class LossyProxy:
    """An HTTP proxy to ``target`` that forwards the first import to Label Studio, then breaks
    the connection instead of answering: an import whose outcome the bridge cannot know."""

    def __init__(self, target: str) -> None:
        self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = urllib.request.Request(
                    target + self.path, data=body or None, method=self.command,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, answer = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, answer = error.code, error.read()
                if "/import" in self.path and not proxy.dropped:
                    proxy.dropped += 1
                    self.close_connection = True
                    return  # Label Studio did it; the bridge never hears
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PATCH = _forward

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_an_import_whose_answer_is_lost_is_checked_not_repeated(
    label_studio: LabelStudio, local: Settings, tmp_path: Path
) -> None:
    proxy = LossyProxy(label_studio.url)
    settings = bridge_settings(local, tmp_path, label_studio, url=proxy.url)
    produce(settings, [request(f"s{i}", 0.6) for i in range(3)])
    try:
        with running(settings) as bridge:
            value = bridge.metrics.registry.get_sample_value
            wait_for(lambda: value("streamal_bridge_requests_known_total") == 3, timeout_s=30)
            assert proxy.dropped == 1 and value("streamal_bridge_failures_total") == 1
            assert value("streamal_bridge_tasks_created_total") == 0  # found, not created again
    finally:
        proxy.close()
    ids = [t["data"]["sample_id"] for t in tasks(label_studio, bridge.project_id)]
    assert sorted(ids) == ["s0", "s1", "s2"]

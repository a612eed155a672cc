"""The whole loop through Label Studio: serve -> bridge -> a person annotating in Label Studio ->
train -> a new model version, which the bridge then predicts with; on both transports."""

from __future__ import annotations

import threading
from pathlib import Path

from streamal.config import Settings
from streamal.messages import OracleLabel, decode, encode
from streamal.metrics import Metrics
from streamal.model import ModelStore
from streamal.simulation.streams import gaussian_classes
from streamal.stream.daemon import Daemon
from streamal.testing.label_studio import LabelStudio
from streamal.training.trainer import Trainer
from streamal.transport import Record, open_transport, topic_specs
from tests.bridge.test_label_studio import bridge_settings, running
from tests.conftest import unique
from tests.helpers import read_all, wait_for
from tests.training.test_loop import running as running_parts

SAMPLES = 200


def loop_settings(
    cluster: Settings, tmp_path: Path, server: LabelStudio, classes: list[str]
) -> Settings:
    data = bridge_settings(cluster, tmp_path, server).model_dump(mode="json")
    data["bridge"]["label_studio"]["token"] = server.token
    data["bridge"]["label_studio"]["group"] = unique("bridge")
    data |= {
        "strategy": {"budget": 0.1},
        "serve": {"group": unique("serve"), "max_batch": 32, "metrics_address": "127.0.0.1:0"},
        "train": {
            "group": unique("train"), "label_store": str(tmp_path / "labels.sqlite"),
            "interval_s": 5, "metrics_address": "127.0.0.1:0",
        },
    }  # fmt: skip
    data["model"]["classes"] = classes
    if data["transport"]["kind"] == "kafka":
        data["transport"]["kafka"] |= {"session_timeout_ms": 6000, "replica_id": unique("r")}
    return Settings(**data)


class Person:
    """Someone labeling every open task of the project in Label Studio, truthfully."""

    def __init__(self, server: LabelStudio, project: int, truth: dict[str, str]) -> None:
        self.server, self.project, self.truth = server, project, truth
        self.answered: dict[str, str] = {}
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.2):  # a person's pace
            answer = self.server.api("GET", f"/api/tasks/?project={self.project}&fields=all")
            for task in answer["tasks"]:
                sample = task["data"]["sample_id"]
                if task["total_annotations"] or sample in self.answered:
                    continue
                label = self.truth[sample]
                result = [{"from_name": "label", "to_name": "item", "type": "choices",
                           "value": {"choices": [label]}}]  # fmt: skip
                path = f"/api/tasks/{task['id']}/annotations/?project={self.project}"
                self.server.api("POST", path, {"result": result, "lead_time": 1.0})
                self.answered[sample] = label

    def stop(self) -> None:
        self._stop.set()


def test_the_loop_learns_from_answers_given_in_label_studio(
    label_studio: LabelStudio, cluster: Settings, tmp_path: Path
) -> None:
    stream = gaussian_classes(SAMPLES, n_features=4, n_classes=2, seed=3)
    settings = loop_settings(cluster, tmp_path, label_studio, list(stream.classes))
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for sample in stream.samples(range(SAMPLES)):
            producer.produce(Record(settings.topics.samples, encode(sample), sample.id.encode()))
        producer.flush()
    metrics = Metrics()
    daemon = Daemon(settings, metrics=metrics)
    trainer = Trainer(settings, metrics=metrics)
    store = ModelStore(settings.model.store, settings.model.name)
    with running(settings) as bridge:
        person = Person(label_studio, bridge.project_id, stream.truth())
        parts = ((daemon.run, daemon.stop), (person.run, person.stop), (trainer.run, trainer.stop))
        with running_parts(*parts):
            wait_for(lambda: store.versions() and bridge.predictor.version >= 1, timeout_s=240)
        answers = bridge.metrics.registry.get_sample_value
        wait_for(  # the answers given last reached the bridge too
            lambda: sum(answers("streamal_bridge_answers_total", {"path": p}) or 0
                        for p in ("webhook", "reconciliation")) == len(person.answered)
        )  # fmt: skip
        asked = metrics.registry.get_sample_value("streamal_samples_total", {"route": "oracle"})
        assert bridge.metrics.registry.get_sample_value("streamal_bridge_tasks_created_total") == (
            asked
        )
        assert bridge.model_version() == f"default-v{bridge.predictor.version}"
    labels = [decode(OracleLabel, e.value) for e in read_all(settings, settings.topics.labels, 1.0)]
    assert {x.id: x.label for x in labels} == person.answered
    assert len(labels) == len(person.answered)  # each answer once
    assert metrics.registry.get_sample_value("streamal_labels_received_total") >= 4

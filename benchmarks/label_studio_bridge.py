"""Benchmark the Label Studio bridge against a real Label Studio; prints one JSON object.

In one run, on the same label requests (the embedded transport, one Label Studio started by the
test harness):

- ``direct``: the same tasks imported straight through Label Studio's API in batches of
  ``bridge.label_studio.batch``: the ceiling of any importer on this machine.
- ``bridge``: ``streamal bridge label-studio`` turning the requests on ``label-requests`` into
  tasks (decode, predict where needed, import, commit) with that batch size, and with batches
  of one request (what an importer without batching would do); ``bridge_connected``: the same
  with the bridge connected as webhook and ML backend (Label Studio then posts each import's
  tasks to the ML backend inside the import call).
- ``ratio``: the bridge's tasks/s over the direct import's (best of ``--rounds`` alternating
  runs of each), and the batched bridge's over the one-by-one bridge's.
- ``answers``: annotations made through the API as a person's, one after another: the mean
  time from an annotation's save to its label on ``labels`` by webhook, and the requests a
  person's annotation waits on the webhook (Label Studio sends it inside that request).

Usage: ``python benchmarks/label_studio_bridge.py [--quick] [--requests N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from streamal.bridge.client import LabelStudioClient
from streamal.bridge.label_studio import LabelStudioBridge
from streamal.bridge.tasks import Choices, labeling_config, task_of
from streamal.config import Settings
from streamal.messages import LabelRequest, encode, now
from streamal.testing.kafka_broker import free_port
from streamal.testing.label_studio import LabelStudio, fetch
from streamal.transport import Record, open_transport, topic_specs

CLASSES = ["cat", "dog"]
BATCH = 100


def request(i: int) -> LabelRequest:
    return LabelRequest(
        id=f"s{i}", features=[i % 7 / 7, 1.0, -1.0, 0.5], payload={"text": f"sample {i}"},
        prediction=[{"label": "cat", "p": 0.6}, {"label": "dog", "p": 0.4}], utility=0.8,
        reason="uncertain", model_version=0, requested_at=now(),
    )  # fmt: skip


def requests(n: int) -> list[LabelRequest]:
    return [request(i) for i in range(n)]


def settings_for(server: LabelStudio, folder: Path, batch: int, connect: bool) -> Settings:
    port = free_port()
    return Settings(
        transport={"kind": "local", "local": {"path": str(folder / "log.sqlite")}},
        model={"n_features": 4, "classes": CLASSES, "hidden": [8], "store": str(folder / "m")},
        bridge={"label_studio": {
            "url": server.url, "token": server.token, "project": f"b-{uuid.uuid4().hex[:8]}",
            "listen": f"127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}" if connect else None,
            "metrics_address": "127.0.0.1:0", "state": str(folder / "state.sqlite"),
            "batch": batch, "reconcile_interval_s": 3600,
        }},
    )  # fmt: skip


def direct(server: LabelStudio, batch: list[LabelRequest]) -> float:
    """Tasks/s importing the bridge's tasks straight through the API."""
    client = LabelStudioClient(server.url, server.token)
    project = client.create_project(f"d-{uuid.uuid4().hex[:8]}", labeling_config(CLASSES, "view"))
    choices = Choices.of(project["label_config"])
    tasks = [task_of(r, CLASSES, "default-v0", choices) for r in batch]
    started = time.perf_counter()
    for i in range(0, len(tasks), BATCH):
        client.import_tasks(int(project["id"]), tasks[i : i + BATCH])
    return len(tasks) / (time.perf_counter() - started)


def through_bridge(
    server: LabelStudio, batch: list[LabelRequest], size: int, answers: int = 0
) -> dict[str, Any]:
    """Tasks/s of the bridge importing ``batch``; with ``answers``, connected as webhook and ML
    backend (Label Studio then posts every import's tasks to it, inside the import), and the
    label lag of that many annotations."""
    folder = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    settings = settings_for(server, folder, size, connect=answers > 0)
    with open_transport(settings) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
        for r in batch:
            transport.produce(Record(settings.topics.label_requests, encode(r), r.id.encode()))
        transport.flush()
    bridge = LabelStudioBridge(settings)
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    while not bridge.ready():  # connected, project created: the imports alone are timed
        time.sleep(0.001)
    started = time.perf_counter()
    value = bridge.metrics.registry.get_sample_value
    while (value("streamal_bridge_tasks_created_total") or 0) < len(batch):
        time.sleep(0.02)
    out: dict[str, Any] = {"tasks_per_s": round(len(batch) / (time.perf_counter() - started), 1)}
    if answers:
        result = [{"from_name": "label", "to_name": "item", "type": "choices",
                   "value": {"choices": ["dog"]}}]  # fmt: skip
        waits = []
        for sample in list(bridge.known)[:answers]:
            path = f"/api/tasks/{bridge.known[sample]}/annotations/?project={bridge.project_id}"
            began = time.perf_counter()
            server.api("POST", path, {"result": result, "lead_time": 1.0})
            waits.append(time.perf_counter() - began)
        while (value("streamal_bridge_answers_total", {"path": "webhook"}) or 0) < answers:
            time.sleep(0.02)
        lag_sum = value("streamal_bridge_answer_lag_seconds_sum") or 0.0
        lag_count = value("streamal_bridge_answer_lag_seconds_count") or 1.0
        out["answer_to_label_mean_s"] = round(lag_sum / lag_count, 3)
        out["annotation_request_mean_s"] = round(sum(waits) / len(waits), 3)
    bridge.stop()
    thread.join(timeout=30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 requests, 20 answers")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs; best kept")
    args = parser.parse_args()
    n = 200 if args.quick else args.requests
    fetch()
    with LabelStudio() as server:
        batch = requests(n)
        ceilings, runs = [], []
        for _ in range(args.rounds):  # alternating, so load on the machine hits both alike
            ceilings.append(direct(server, batch))
            runs.append(through_bridge(server, batch, BATCH))
        ceiling = max(ceilings)
        batched = max(runs, key=lambda run: run["tasks_per_s"])
        connected = through_bridge(server, batch, BATCH, answers=20 if args.quick else 50)
        single = through_bridge(server, batch[: max(20, n // 10)], 1)
    report = {
        "requests": n,
        "batch": BATCH,
        "direct_tasks_per_s": round(ceiling, 1),
        "bridge": batched,
        "bridge_connected": connected,
        "bridge_batch_1": single,
        "ratio": {
            "bridge_over_direct": round(batched["tasks_per_s"] / ceiling, 3),
            "batched_over_one_by_one": round(batched["tasks_per_s"] / single["tasks_per_s"], 2),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

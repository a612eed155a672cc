"""``streamal bridge label-studio``: annotators label in Label Studio, streamal's loop around them.

One process per Label Studio project does four things:

1. **Requests -> tasks.** It consumes ``label-requests`` in its own group and imports each
   request as a task with the model's prediction (see `streamal.bridge.tasks`). Exactly once:
   at start it lists the project's tasks by ``sample_id``, a request whose sample already has a
   task is not imported again (a replay, a restart), and the offsets commit only after Label
   Studio confirmed the import. An import whose outcome is unknown (the connection broke) has
   the bridge list the project again before it retries.
2. **Answers -> labels.** Each annotation becomes an ``OracleLabel`` on ``labels`` (annotator: the
   Label Studio user's email, ``labeled_at``: when the annotation was last saved). Webhooks bring
   answers at once; as Label Studio sends them once, inside the annotator's request, with a 1 s
   timeout and no retry, a pass over the annotations of the project (all at start, then every
   ``reconcile_interval_s`` those of the tasks changed since) brings whatever they missed. A ledger
   (`streamal.bridge.ledger`) makes each saved version of an annotation one label: an updated
   annotation is a new label, which the trainer's duplicate policy resolves. Cancelled (skipped)
   tasks and empty annotations give nothing. A label that is not a model class, or several choices,
   goes to ``dead-letter``. Deleting an annotation takes nothing back: the label already sent stays
   (an oracle label has no retraction); it is logged and counted.
3. **ML backend.** Label Studio's ML backend protocol, served from the current model: tasks
   imported by hand get predictions too.
4. **Stays current.** Label Studio shows, and sorts by, the predictions of the project's model
   version only: the bridge keeps that at the version it serves. It follows the ``models``
   topic; on a new version (or at start, when the project shows another) it gives up to
   ``refresh_tasks`` open tasks a prediction of the new model, a few per turn of its loop, and a
   request asked by another version is imported with the prediction of the bridge's.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from streamal.bridge.client import CallError, LabelStudioClient
from streamal.bridge.endpoints import Endpoints, Event
from streamal.bridge.ledger import Ledger
from streamal.bridge.tasks import (
    Choices,
    label_of,
    labeling_config,
    parse_time,
    prediction,
    sample_of,
    score,
    task_of,
)
from streamal.config import Settings
from streamal.deadletters import dead_letter
from streamal.errors import BridgeError, ConfigError, MessageError, TransportError
from streamal.http import OpsServer
from streamal.messages import LabelRequest, OracleLabel, Sample, decode, encode, now
from streamal.metrics import Metrics
from streamal.model import ModelLoader, Predictor
from streamal.stream.models import ModelWatcher, initial_model
from streamal.transport import (
    Envelope,
    Record,
    Transport,
    next_offsets,
    open_transport,
    topic_specs,
)

__all__ = ["LabelStudioBridge"]

log = logging.getLogger(__name__)

POLL_S = 0.2
RETRY_S = 1.0
REFRESH_PER_TURN = 20  # open tasks given a new prediction per turn of the loop
ANSWERS_PER_SEND = 500
STALE_S = 60.0  # /healthz fails when the loop has not turned for this long
SOURCE = "label-studio"  # the dead letters' topic for annotations (they come from no topic)
OVERLAP_S = 300.0  # a pass rereads the changes of this long before the last one it saw


def overlap(moment: datetime) -> str:
    """``OVERLAP_S`` before ``moment``, as Label Studio writes time: a save that committed after
    a pass read past its time is read by the next pass.

    >>> overlap(parse_time("2026-01-02T03:10:00Z"))
    '2026-01-02T03:05:00.000000Z'
    """
    earlier = moment - timedelta(seconds=OVERLAP_S)
    return earlier.isoformat(timespec="microseconds").replace("+00:00", "Z")


class LabelStudioBridge:
    """The bridge between streamal's topics and one Label Studio project: `run` until `stop`.

    Parameters
    ----------
    registry
        Where the metrics go (a fresh registry when not given).
    """

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        config = settings.bridge.label_studio
        if config.token is None:
            raise ConfigError(
                "config error: bridge.label_studio.token: required (an API token of Label Studio)"
            )
        self.settings = settings
        self.config = config
        self.classes = list(settings.model.classes)
        self.metrics = Metrics(registry)
        token = config.token.get_secret_value()
        self.client = LabelStudioClient(config.url, token, config.timeout_s)
        self.loader = ModelLoader(settings.model, metrics=self.metrics)
        self.predictor: Predictor = self.loader.untrained()
        self.project_id = 0
        self.choices = Choices("label", "item", ())
        self.known: dict[str, int] = {}  # sample id -> task id
        self.samples: dict[int, str] = {}  # task id -> sample id
        self._users: dict[int, str] = {}
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._pending: list[Envelope] = []
        self._refresh: list[dict[str, Any]] = []  # open tasks to give the new model's prediction
        self._next_reconcile = 0.0
        self._newest_change: datetime | None = None  # the newest task change a pass saw
        self._project_version: str | None = None  # the project's model version (None: unsure)
        self._stale = False  # the open tasks' predictions are of another model version
        self._stop = threading.Event()
        self._turned = time.monotonic()
        self._ready = False
        self.endpoints: Endpoints | None = None
        self.ops: OpsServer | None = None

    # -- the process ----------------------------------------------------------------------

    def run(self) -> None:
        """Connect, then import requests, turn answers into labels and serve predictions until
        `stop`. A wrong URL or token fails at once with one line; Label Studio or the transport
        failing later is retried."""
        self._connect()
        ledger = Ledger(self.config.state, f"{self.client.url}#{self.project_id}")
        self.predictor, _ = initial_model(self.loader)
        self._stale = self._project_version not in (None, self.model_version())
        watcher = ModelWatcher(self.settings, self.loader, self.predictor.version, {}, self.metrics)
        self.endpoints = Endpoints(
            self.config.listen, self._events.put, self.predict, self.model_version
        )
        self.endpoints.start()
        self.ops = OpsServer(
            self.config.metrics_address, self.metrics.registry, self.healthy, self.ready
        )
        self.ops.start()
        try:
            if self.config.public_url:
                self._register(self.config.public_url.rstrip("/"))
            watcher.start()
            with open_transport(self.settings, group=self.config.group, transactional=True) as t:
                t.ensure_topics(topic_specs(self.settings.topics))
                t.subscribe([self.settings.topics.label_requests])
                self._ready = True
                log.info(
                    "bridging %s project %d (%d tasks) with model v%d",
                    self.client.url,
                    self.project_id,
                    len(self.known),
                    self.predictor.version,
                )
                while not self._stop.is_set():
                    self._turn(t, ledger, watcher)
        finally:
            self._ready = False
            watcher.stop()
            self.endpoints.stop()
            self.ops.stop()
            ledger.close()

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Finish the current step and return from `run` (a signal handler)."""
        self._stop.set()

    def healthy(self) -> bool:
        """The loop turned recently."""
        return time.monotonic() - self._turned < STALE_S

    def ready(self) -> bool:
        """Connected to Label Studio and the transport, and its last calls succeeded."""
        return self._ready

    def _turn(self, transport: Transport, ledger: Ledger, watcher: ModelWatcher) -> None:
        """One turn: model, requests, answers, reconciliation, refresh; failures retried."""
        self._turned = time.monotonic()
        try:
            if (loaded := watcher.take()) is not None and loaded.predictor is not None:
                self.predictor = loaded.predictor
                self._stale = True
            if self._stale:  # a new model, or a project last shown another one
                self._refresh = self._open_tasks() if self.config.refresh_tasks else []
                self._stale = False
            if not self._pending:
                self._pending = transport.poll(self.config.batch, POLL_S)
            if self._pending:
                self._import(transport)
            self._answers(transport, ledger)
            if time.monotonic() >= self._next_reconcile:
                self._reconcile(transport, ledger)
                self._next_reconcile = time.monotonic() + self.config.reconcile_interval_s
            if self._refresh:
                self._refresh_some()
            self._ready = True
        except TransportError as error:
            # an aborted transaction rewound consumption: the batch comes again
            self._pending = []
            self._failed(f"transport: {error}")
        except BridgeError as error:
            self._failed(str(error))

    def _failed(self, reason: str) -> None:
        self._ready = False
        self.metrics.bridge_failures.inc()
        log.warning("%s (retrying in %g s)", reason, RETRY_S)
        self._stop.wait(RETRY_S)

    # -- connecting -----------------------------------------------------------------------

    def _connect(self) -> None:
        """Check the URL and token, find or create the project, list its tasks."""
        try:
            self.client.whoami()
        except CallError as error:
            if error.status in (401, 403):
                raise ConfigError(f"config error: bridge.label_studio.token: {error}") from None
            raise BridgeError(f"{error} (check bridge.label_studio.url)") from None
        project = self._project()
        self.project_id = int(project["id"])
        self._project_version = project.get("model_version") or None
        self.choices = Choices.of(project["label_config"])
        if unknown := [v for v in self.choices.values if v not in self.classes]:
            log.warning(
                "project %d offers choices that are not model classes, their labels go to "
                "dead-letter: %s", self.project_id, unknown,
            )  # fmt: skip
        self._list_tasks()

    def _project(self) -> dict[str, Any]:
        wanted = self.config.project
        if isinstance(wanted, int):
            return self.client.project(wanted)
        for project in self.client.projects():
            if project.get("title") == wanted:
                return self.client.project(int(project["id"]))
        label_config = self.config.label_config or labeling_config(self.classes, self.config.show)
        Choices.of(label_config)  # refused before anything is created
        log.info("creating Label Studio project %r", wanted)
        return self.client.create_project(wanted, label_config)

    def _list_tasks(self) -> None:
        """Which samples have a task already (after a restart, or an import of unknown fate)."""
        for task in self.client.tasks(self.project_id, fields="task_only"):
            self._remember(task)

    def _remember(self, task: dict[str, Any]) -> str | None:
        sample_id = (task.get("data") or {}).get("sample_id")
        if isinstance(sample_id, str):
            self.known[sample_id] = int(task["id"])
            self.samples[int(task["id"])] = sample_id
            return sample_id
        return None

    def _register(self, public_url: str) -> None:
        """Have Label Studio post annotation events to the bridge and use it as ML backend."""
        hook = f"{public_url}/webhook"
        if not any(h.get("url") == hook for h in self.client.webhooks(self.project_id)):
            self.client.add_webhook(
                self.project_id, hook, ["ANNOTATION_CREATED", "ANNOTATION_UPDATED",
                                        "ANNOTATIONS_DELETED"]
            )  # fmt: skip
        if not any(
            m.get("url", "").rstrip("/") == public_url
            for m in self.client.ml_backends(self.project_id)
        ):
            self.client.add_ml_backend(self.project_id, public_url, "streamal")

    # -- requests -> tasks ----------------------------------------------------------------

    def _import(self, transport: Transport) -> None:
        """Import the pending requests whose samples have no task yet, then commit past them
        (with the unreadable ones, and those Label Studio refuses, on dead-letter) in one
        transaction."""
        batch, letters = self._pending, []
        fresh: dict[str, tuple[Envelope, LabelRequest]] = {}
        for envelope in batch:
            try:
                request = decode(LabelRequest, envelope.value)
            except MessageError as error:
                letters.append(self._letter(envelope, str(error)))
                continue
            if request.id in self.known or request.id in fresh:
                self.metrics.bridge_requests_known.inc()
                continue
            fresh[request.id] = (envelope, request)
        if fresh:
            tasks = self._tasks([request for _, request in fresh.values()])
            created = now()
            for (envelope, request), task_id in zip(
                fresh.values(), self._create(tasks), strict=True
            ):
                if isinstance(task_id, CallError):
                    letters.append(self._letter(envelope, f"Label Studio refused it: {task_id}"))
                    continue
                self.known[request.id], self.samples[task_id] = task_id, request.id
                lag = (created - request.requested_at).total_seconds()
                self.metrics.bridge_task_lag_seconds.observe(max(lag, 0.0))
                self.metrics.bridge_tasks_created.inc()
            versions = {p["model_version"] for task in tasks for p in task["predictions"]}
            if versions != {self.model_version()}:  # the import made another the project's
                self._project_version = None
            if self.model_version() in versions:
                self._follow_version()
        transport.produce_and_commit(letters, next_offsets(batch))
        self._pending = []

    def _create(self, tasks: list[dict[str, Any]]) -> list[int | CallError]:
        """Import ``tasks``; the id of each, or why Label Studio refused it (400: e.g. its data
        lacks a field the labeling config shows): one at a time when it refuses the batch."""
        try:
            try:
                return list(self.client.import_tasks(self.project_id, tasks))
            except CallError as error:
                if error.status != 400:
                    raise
            created: list[int | CallError] = []
            for task in tasks:
                try:
                    created += self.client.import_tasks(self.project_id, [task])
                except CallError as error:
                    if error.status != 400:
                        raise
                    created.append(error)
            return created
        except CallError as error:
            if error.ambiguous:  # it may have landed: see before importing again
                self._list_tasks()
            raise

    def _tasks(self, requests: list[LabelRequest]) -> list[dict[str, Any]]:
        """The tasks of ``requests``, with the current model's prediction: the request's own
        when that model asked it, else the current model's (the request's if it cannot read
        the sample): Label Studio shows and sorts by the project's model version only."""
        name, current = self.settings.model.name, self.predictor.version
        tasks = [
            task_of(r, self.classes, f"{name}-v{r.model_version}", self.choices) for r in requests
        ]
        stale = [i for i, r in enumerate(requests) if r.model_version != current]
        if stale:
            for i, predicted in zip(stale, self._predict([tasks[i] for i in stale]), strict=True):
                if predicted["result"]:
                    tasks[i]["predictions"] = [predicted]
        return tasks

    def _follow_version(self) -> None:
        """Make the current model's version the project's (once some task has a prediction of
        it: Label Studio refuses a version it has no prediction of)."""
        version = self.model_version()
        if self._project_version == version:
            return
        try:
            self.client.update_project(self.project_id, model_version=version)
        except CallError as error:
            if error.status != 400:
                raise
            log.warning("could not make %s the project's model version: %s", version, error)
        self._project_version = version

    def _letter(self, envelope: Envelope, reason: str) -> Record:
        log.warning("dead letter %s: %s", envelope, reason)
        self.metrics.bridge_dead_letters.inc()
        topics, limit = self.settings.topics, self.settings.transport.max_record_bytes
        return dead_letter(envelope, reason, topics.dead_letter, limit)

    # -- answers -> labels ----------------------------------------------------------------

    def _answers(self, transport: Transport, ledger: Ledger) -> None:
        """Read back the annotations the webhooks named, and send them as labels."""
        events: list[Event] = []
        while not self._events.empty():
            events.append(self._events.get())
        if not events:
            return
        annotations = []
        for action, ids in events:
            if action == "ANNOTATIONS_DELETED":
                self.metrics.bridge_annotations_deleted.inc(len(ids))
                log.info("annotations %s deleted in Label Studio; their labels stay", ids)
                continue
            for annotation_id in dict.fromkeys(ids):
                annotation = self.client.annotation(annotation_id)
                if annotation is not None:
                    annotations.append(annotation)
        self._send(transport, ledger, annotations, "webhook")

    def _reconcile(self, transport: Transport, ledger: Ledger) -> None:
        """Read the annotations of the project and send those not sent yet: every one at the
        first pass, then those of the tasks changed since shortly before the last pass's
        newest change (Label Studio's clock, so the bridge's does not matter)."""
        annotations: list[dict[str, Any]] = []
        newest = self._newest_change
        since = None if newest is None else overlap(newest)
        for task in self.client.tasks(self.project_id, annotated=True, updated_after=since):
            self._remember(task)
            annotations += task.get("annotations") or []
            if task.get("updated_at"):
                changed = parse_time(task["updated_at"])
                newest = changed if newest is None else max(newest, changed)
            if len(annotations) >= ANSWERS_PER_SEND:
                self._send(transport, ledger, annotations, "reconciliation")
                annotations = []
        self._send(transport, ledger, annotations, "reconciliation")
        self.metrics.bridge_reconciliations.inc()
        self._newest_change = newest

    def _send(
        self,
        transport: Transport,
        ledger: Ledger,
        annotations: Sequence[dict[str, Any]],
        path: str,
    ) -> None:
        """Produce the labels (and dead letters) of the annotations not sent yet, in one
        transaction, then enter them in the ledger."""
        records: list[Record] = []
        done: dict[int, str] = {}
        labels = 0
        for annotation in annotations:
            annotation_id, stamp = int(annotation["id"]), str(annotation.get("updated_at"))
            if annotation_id in done or ledger.sent(annotation_id, stamp):
                continue
            done[annotation_id] = stamp
            record = self._label(annotation)
            if record is not None:
                records.append(record)
                labels += record.topic == self.settings.topics.labels
        if not done:
            return
        with transport.transaction() as txn:
            for record in records:
                txn.produce(record)
        for annotation_id, stamp in done.items():
            ledger.record(annotation_id, stamp)
        self.metrics.bridge_answers.labels(path).inc(labels)

    def _label(self, annotation: dict[str, Any]) -> Record | None:
        """The label record of an annotation, its dead letter, or None when it gives none."""
        answer = label_of(annotation, self.choices)
        if answer.problem is None and answer.label is None:
            return None  # cancelled, skipped or empty
        sample_id = self._sample_of(answer.task_id)
        if sample_id is None:
            log.info("task %d has no sample_id (imported by hand?): no label", answer.task_id)
            return None
        problem = answer.problem
        if problem is None and answer.label not in self.classes:
            problem = f"label: unknown class {answer.label!r}"
        if problem is not None:
            envelope = Envelope(
                SOURCE, self.project_id, answer.annotation_id, sample_id.encode(),
                json.dumps(annotation).encode(), (), 0,
            )  # fmt: skip
            return self._letter(envelope, problem)
        assert answer.label is not None
        labeled_at = answer.labeled_at or now()
        label = OracleLabel(
            id=sample_id, label=answer.label, labeled_at=labeled_at,
            annotator=self._annotator(answer.user_id),
        )  # fmt: skip
        lag = (datetime.now(UTC) - labeled_at).total_seconds()
        self.metrics.bridge_answer_lag_seconds.observe(max(lag, 0.0))
        return Record(self.settings.topics.labels, encode(label), key=sample_id.encode())

    def _sample_of(self, task_id: int) -> str | None:
        if task_id not in self.samples:
            self._remember(self.client.task(task_id))
        return self.samples.get(task_id)

    def _annotator(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in self._users:
            user = self.client.user(user_id)
            self._users[user_id] = user.get("email") or user.get("username") or str(user_id)
        return self._users[user_id]

    # -- predictions ----------------------------------------------------------------------

    def model_version(self) -> str:
        """The current model's version name, as predictions carry it."""
        return f"{self.settings.model.name}-v{self.predictor.version}"

    def predict(self, tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The current model's predictions of ``tasks`` (one per task; a task the model cannot
        read gets an empty one), as the ML backend serves them."""
        results = self._predict(tasks)
        self.metrics.bridge_predictions.labels("ml_backend").inc(len(tasks))
        return results

    def _predict(self, tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        predictor, version = self.predictor, self.model_version()
        results = [{"result": [], "score": 0.0, "model_version": version} for _ in tasks]
        samples: list[Sample] = []
        for task in tasks:
            try:
                samples.append(sample_of(task))
            except ValueError:  # neither readable features nor a payload
                samples.append(Sample(id="unreadable", payload="unreadable"))
        if not samples:
            return results
        encoded = predictor.encode(samples)
        if encoded.kept:
            probabilities = predictor.probabilities(encoded.inputs).cpu().numpy()
            for row, index in zip(probabilities, encoded.kept, strict=True):
                top = row.argsort()[::-1][:2]
                value = score([float(row[i]) for i in top])
                label = predictor.classes[int(top[0])]
                results[index] = prediction(label, value, version, self.choices)
        return results

    def _open_tasks(self) -> list[dict[str, Any]]:
        tasks = []
        for task in self.client.tasks(self.project_id, fields="task_only", annotated=False):
            tasks.append(task)
            if len(tasks) >= self.config.refresh_tasks:
                break
        if tasks:
            log.info("model v%d: refreshing the predictions of %d open tasks",
                     self.predictor.version, len(tasks))  # fmt: skip
        return tasks

    def _refresh_some(self) -> None:
        """Give a few open tasks a prediction of the current model."""
        tasks, self._refresh = self._refresh[:REFRESH_PER_TURN], self._refresh[REFRESH_PER_TURN:]
        added = 0
        for task, predicted in zip(tasks, self._predict(tasks), strict=True):
            if predicted["result"]:
                self.client.add_prediction(int(task["id"]), predicted)
                added += 1
        self.metrics.bridge_predictions.labels("refresh").inc(added)
        if added:
            self._follow_version()

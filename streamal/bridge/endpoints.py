"""What Label Studio calls on the bridge: its webhooks and the ML backend protocol.

``POST /webhook`` takes Label Studio's events (the bridge's own webhook and the one Label Studio
adds for an ML backend post here alike). An event is a hint, never a label: the handler only
queues the annotation ids it names and answers at once (Label Studio waits 1 s at most, inside
the annotator's request), and the bridge reads each annotation back through the API, so a forged
event cannot make a label. ``GET /health``, ``POST /setup`` and ``POST /predict`` are the ML
backend: predictions of the current model for the tasks Label Studio sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from streamal.http import BackgroundServer, QuietHandler

log = logging.getLogger(__name__)

MAX_BODY = 64 << 20  # bytes of a request body read at most (a /predict of many tasks)
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")

Event = tuple[str, list[int]]
"""An action and the annotation ids it names."""


def event_of(payload: Any) -> Event | None:
    """The action and annotation ids of a webhook payload; None for other events.

    >>> event_of({"action": "ANNOTATION_CREATED", "annotation": {"id": 4, "task": 1}})
    ('ANNOTATION_CREATED', [4])
    >>> event_of({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": 2}]})
    ('ANNOTATIONS_DELETED', [1, 2])
    >>> event_of({"action": "TASKS_CREATED", "tasks": [{"id": 1}]}) is None
    True
    """
    if not isinstance(payload, dict) or payload.get("action") not in ANNOTATION_ACTIONS:
        return None
    items = payload.get("annotations") or [payload.get("annotation")]
    ids = [int(item["id"]) for item in items if isinstance(item, dict) and "id" in item]
    return (str(payload["action"]), ids) if ids else None


class Endpoints(BackgroundServer):
    """Serves the endpoints from a daemon thread.

    Parameters
    ----------
    address
        ``host:port`` to listen on (port 0: any free one, see `port`).
    on_event
        Called with each annotation event, in the handler's thread: must return at once.
    predict
        The ML backend's predictions for a list of tasks (Label Studio's task objects).
    model_version
        The current model's version name.
    """

    def __init__(
        self,
        address: str,
        on_event: Callable[[Event], None],
        predict: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        model_version: Callable[[], str],
    ) -> None:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0].rstrip("/")
                if path in ("/health", ""):
                    self._json(200, {"status": "UP", "model_class": "streamal"})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0].rstrip("/")
                body = self._body()
                if body is None:
                    return
                if path == "/webhook":
                    event = event_of(body)
                    if event is not None:
                        on_event(event)
                    self._json(200, {"status": "ok"})
                elif path == "/setup":
                    self._json(200, {"model_version": model_version()})
                elif path == "/predict":
                    tasks = body.get("tasks") if isinstance(body, dict) else None
                    if not isinstance(tasks, list):
                        self._json(400, {"error": "a list of tasks is expected"})
                        return
                    try:
                        results = predict(tasks)
                    except Exception as error:  # answered, logged: the bridge goes on
                        log.exception("the ML backend could not predict")
                        self._json(500, {"error": str(error).splitlines()[0][:300]})
                        return
                    self._json(200, {"results": results, "model_version": model_version()})
                else:
                    self._json(404, {"error": "not found"})

            def _body(self) -> Any:
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_BODY:
                    self._json(413, {"error": f"over {MAX_BODY} bytes"})
                    return None
                try:
                    return json.loads(self.rfile.read(size) or b"null")
                except ValueError:
                    self._json(400, {"error": "not JSON"})
                    return None

            def _json(self, status: int, answer: Any) -> None:
                self.send(status, json.dumps(answer).encode(), "application/json")

        super().__init__(address, Handler)

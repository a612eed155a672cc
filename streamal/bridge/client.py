"""Label Studio's REST API, the part the bridge uses, over plain HTTP (urllib).

Every failure is a `BridgeError` of one line: a wrong URL says it cannot reach Label Studio, a
wrong token that Label Studio refused it. An error whose outcome is unknown (the connection
broke after the request was sent) is marked ``ambiguous``: the caller checks before it retries.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from streamal.errors import BridgeError

__all__ = ["LabelStudioClient"]

PAGE = 500  # tasks per page when listing a project


class CallError(BridgeError):
    """A call failed; ``status`` is the HTTP status (None: no answer), ``ambiguous`` whether
    Label Studio may have done it anyway."""

    def __init__(self, message: str, status: int | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.ambiguous = ambiguous


class LabelStudioClient:
    """Calls to the Label Studio at ``url`` with ``token``.

    A token that looks like a JWT (a personal access token, three dot-separated parts) is
    exchanged for an access token (``Bearer``); any other is a legacy token (``Token``).
    """

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout_s
        self._authorization = "" if token.count(".") == 2 else f"Token {token}"

    # -- plumbing -------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """``method`` on ``path`` with a JSON ``body``; the decoded JSON answer (None if empty)."""
        if auth and not self._authorization:
            self._refresh()
        try:
            return self._send(method, path, body, auth)
        except CallError as error:
            if error.status == 401 and auth and self._token.count(".") == 2:
                self._refresh()  # the access token expired
                return self._send(method, path, body, auth)
            raise

    def _send(self, method: str, path: str, body: Any, auth: bool) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if auth:
            request.add_header("Authorization", self._authorization)
        what = f"{method} {path.split('?')[0]}"
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            raise self._refused(error, what) from None
        except TimeoutError:
            raise CallError(
                f"Label Studio at {self.url} did not answer {what} within {self._timeout:g} s",
                ambiguous=method != "GET",
            ) from None
        except urllib.error.URLError as error:
            reason = getattr(error.reason, "strerror", None) or str(error.reason)
            raise CallError(f"cannot reach Label Studio at {self.url}: {reason}") from None
        except (ConnectionError, OSError) as error:  # reset or broken mid-answer
            raise CallError(
                f"Label Studio at {self.url} broke off {what}: {error}", ambiguous=method != "GET"
            ) from None
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise CallError(
                f"{self.url} answered {what} with something other than JSON: is it Label Studio?"
            ) from None

    def _refused(self, error: urllib.error.HTTPError, what: str) -> CallError:
        try:
            detail = json.loads(error.read() or b"{}")
        except ValueError:
            detail = {}
        text = detail.get("detail") if isinstance(detail, dict) else None
        if isinstance(detail, dict) and detail.get("validation_errors"):
            text = f"{text}: {json.dumps(detail['validation_errors'])}"
        text = " ".join(str(text or detail or error.reason).split())[:300]
        if error.code in (401, 403):
            return CallError(
                f"Label Studio at {self.url} refused the token ({error.code} on {what}: {text}):"
                " check bridge.label_studio.token",
                error.code,
            )
        if error.code == 404 and what.startswith("GET /api/projects/"):
            return CallError(f"Label Studio at {self.url} has no such project ({what})", 404)
        return CallError(
            f"Label Studio at {self.url}: {what} failed ({error.code}): {text}", error.code
        )

    def _refresh(self) -> None:
        """Exchange the personal access token for an access token."""
        answer = self._send("POST", "/api/token/refresh/", {"refresh": self._token}, auth=False)
        self._authorization = f"Bearer {answer['access']}"

    # -- the calls ------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The bridge's own user: also checks the URL and the token."""
        return dict(self.call("GET", "/api/current-user/whoami"))

    def projects(self) -> list[dict[str, Any]]:
        """Every project the token sees."""
        answer = self.call("GET", "/api/projects/?page_size=1000")
        return list(answer["results"] if isinstance(answer, dict) else answer)

    def project(self, project_id: int) -> dict[str, Any]:
        """One project."""
        return dict(self.call("GET", f"/api/projects/{project_id}/"))

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        """A new project."""
        body = {"title": title, "label_config": label_config}
        return dict(self.call("POST", "/api/projects/", body))

    def update_project(self, project_id: int, **fields: Any) -> None:
        """Change a project's settings."""
        self.call("PATCH", f"/api/projects/{project_id}/", fields)

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create ``tasks`` (with their predictions) in one call; their ids, in order."""
        path = f"/api/projects/{project_id}/import?return_task_ids=true&commit_to_project=true"
        answer = self.call("POST", path, list(tasks))
        ids = [int(i) for i in answer.get("task_ids", [])]
        if len(ids) != len(tasks):
            raise CallError(f"Label Studio created {len(ids)} tasks of {len(tasks)} imported")
        return ids

    def tasks(
        self,
        project_id: int,
        *,
        fields: str = "all",
        annotated: bool | None = None,
        updated_after: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The project's tasks, page by page: all, those with annotations (``annotated``), or
        those without; only those changed after ``updated_after`` (Label Studio's time, ISO
        8601; a task changes when an annotation of it is saved). ``fields="all"`` brings their
        annotations and predictions along."""
        query: dict[str, Any] = {"project": project_id, "page_size": PAGE, "fields": fields}
        items = []
        if annotated is not None:
            items.append(
                {"filter": "filter:tasks:total_annotations", "type": "Number", "value": 0,
                 "operator": "greater" if annotated else "equal"}
            )  # fmt: skip
        if updated_after is not None:
            items.append(
                {"filter": "filter:tasks:updated_at", "type": "Datetime",
                 "operator": "greater", "value": updated_after}
            )  # fmt: skip
        if items:
            filters = {"conjunction": "and", "items": items}
            query["query"] = json.dumps({"filters": filters})
        page = 1
        while True:
            query["page"] = page
            try:
                answer = self.call("GET", "/api/tasks/?" + urllib.parse.urlencode(query))
            except CallError as error:
                if error.status == 404:  # past the last page
                    return
                raise
            tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
            yield from tasks
            if len(tasks) < PAGE:
                return
            page += 1

    def task(self, task_id: int) -> dict[str, Any]:
        """One task with its annotations."""
        return dict(self.call("GET", f"/api/tasks/{task_id}/"))

    def annotation(self, annotation_id: int) -> dict[str, Any] | None:
        """One annotation; None if it is gone."""
        try:
            return dict(self.call("GET", f"/api/annotations/{annotation_id}/"))
        except CallError as error:
            if error.status == 404:
                return None
            raise

    def annotations(self, task_id: int) -> list[dict[str, Any]]:
        """The annotations of one task."""
        return list(self.call("GET", f"/api/tasks/{task_id}/annotations/"))

    def user(self, user_id: int) -> dict[str, Any]:
        """One user."""
        return dict(self.call("GET", f"/api/users/{user_id}/"))

    def add_prediction(self, task_id: int, prediction: dict[str, Any]) -> None:
        """Add a prediction to a task."""
        self.call("POST", "/api/predictions/", {"task": task_id, **prediction})

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        """The project's webhooks."""
        return list(self.call("GET", f"/api/webhooks/?project={project_id}"))

    def add_webhook(self, project_id: int, url: str, actions: Sequence[str]) -> None:
        """Have Label Studio post ``actions`` of the project to ``url``."""
        body = {
            "project": project_id, "url": url, "send_payload": True,
            "send_for_all_actions": False, "actions": list(actions), "is_active": True,
        }  # fmt: skip
        self.call("POST", "/api/webhooks/", body)

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        """The project's ML backends."""
        return list(self.call("GET", f"/api/ml/?project={project_id}"))

    def add_ml_backend(self, project_id: int, url: str, title: str) -> None:
        """Connect the ML backend at ``url`` to the project (Label Studio checks it at once)."""
        self.call("POST", "/api/ml/", {"project": project_id, "url": url, "title": title})

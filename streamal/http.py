"""The operations endpoint: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamal.errors import ConfigError


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``:port`` for all interfaces) as a (host, port) pair.

    >>> parse_address("127.0.0.1:9400"), parse_address(":0")
    (('127.0.0.1', 9400), ('0.0.0.0', 0))
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"config error: metrics address must be host:port (got {address!r})")
    return host or "0.0.0.0", int(port)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that answers with `send` and logs nothing: a line per request (scrapes,
    webhooks) would flood the logs."""

    def send(self, status: int, body: bytes, content_type: str) -> None:
        """Answer ``status`` with ``body``."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class BackgroundServer:
    """Serves ``handler`` on ``address`` (``host:port``; port 0: any free one, see `port`) from a
    daemon thread, between `start` and `stop`."""

    def __init__(self, address: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(parse_address(address), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


class OpsServer(BackgroundServer):
    """Serves the endpoints from a daemon thread; ``healthy`` and ``ready`` are polled per request.

    ``/healthz`` says the process is alive and its loop is turning; ``/readyz`` that it can
    do its work (transport connected, model loaded). Both answer 200 or 503.
    """

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        checks = {"/healthz": healthy, "/readyz": ready}

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self.send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in checks:
                    ok = checks[path]()
                    self.send(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")
                else:
                    self.send(404, b"not found\n", "text/plain")

        super().__init__(address, Handler)

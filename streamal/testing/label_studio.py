"""A real Label Studio server for tests, in a virtual environment of its own.

Label Studio pins many packages exactly, so it never enters streamal's environment: ``fetch``
installs it into a cached venv (``$STREAMAL_LABEL_STUDIO_CACHE``, default
``~/.cache/streamal/label-studio-<version>``, byte-compiled, since start-up triples without
byte code) and migrates a template data folder once, which every server then copies: a fresh
database takes ~40 s to migrate, a copy starts in a few seconds. A server listens on a free port
of 127.0.0.1, keeps its data in a fresh temporary folder, makes no outbound connection (version
check, analytics and Sentry off), may call webhooks and ML backends on loopback, and has one
user whose API token is `TOKEN`. It is stopped, with its whole process group, when the context
exits.

Usage::

    python -m streamal.testing.label_studio fetch     # install and migrate (idempotent)
    python -m streamal.testing.label_studio run       # run a server until Ctrl-C
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streamal.testing.kafka_broker import free_port

LABEL_STUDIO_VERSION = "1.23.2"
USERNAME = "ci@example.com"
PASSWORD = "ci-password-123"
TOKEN = "streamal-test-token-0123456789abcdef"
# Environment variables Label Studio reads as settings when no LABEL_STUDIO_/HEARTEX_ variant is
# set (its get_env falls back to the bare name): scrubbed, so the caller's never leak in.
BARE = ("HOST", "PORT", "USERNAME", "PASSWORD", "USER_TOKEN", "DATA_DIR", "DEBUG", "LOG_LEVEL")
QUIET = {
    "LABEL_STUDIO_USERNAME": USERNAME,
    "LABEL_STUDIO_PASSWORD": PASSWORD,
    "LABEL_STUDIO_USER_TOKEN": TOKEN,
    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    "SSRF_PROTECTION_ENABLED": "false",  # webhooks to the bridge on 127.0.0.1
    "ML_BLOCK_LOCAL_IP": "false",  # the bridge's ML backend on 127.0.0.1
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "PYTHONDONTWRITEBYTECODE": "",  # the venv is compiled at install; nothing more to write
}


class LabelStudioError(RuntimeError):
    """Label Studio could not be installed or started; the message says why."""


def cache_dir() -> Path:
    """Where the venv and the migrated template are kept between runs."""
    default = Path.home() / ".cache" / "streamal" / f"label-studio-{LABEL_STUDIO_VERSION}"
    return Path(os.environ.get("STREAMAL_LABEL_STUDIO_CACHE", default))


def _run(command: list[str], what: str, **kwargs: Any) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise LabelStudioError(f"{what} failed: " + " | ".join(tail))


def fetch() -> Path:
    """Install Label Studio into the cache and migrate the template data folder (once); return
    the cache folder."""
    cache = cache_dir()
    if (cache / "complete").exists():
        return cache
    shutil.rmtree(cache, ignore_errors=True)  # a half-made venv from an interrupted fetch
    cache.mkdir(parents=True)
    venv = cache / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], "creating Label Studio's venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "uv"], "installing uv into Label Studio's venv")
    _run(
        [str(venv / "bin" / "uv"), "pip", "install", "--quiet", "--compile-bytecode",
         "--python", str(venv / "bin" / "python"), f"label-studio=={LABEL_STUDIO_VERSION}"],
        f"installing label-studio {LABEL_STUDIO_VERSION}",
    )  # fmt: skip
    migrating = cache / "template.part"
    server = LabelStudio(migrate=True, data_dir=migrating, startup_timeout_s=300.0)
    server.start()  # the first start migrates the database and creates the user
    server.stop()
    migrating.rename(cache / "template")
    (cache / "complete").write_text(LABEL_STUDIO_VERSION)
    return cache


class LabelStudio:
    """A Label Studio server on a free port of 127.0.0.1; use it as a context manager.

    Parameters
    ----------
    migrate
        Start from an empty data folder (migrating it takes ~40 s) instead of a copy of the
        cached template.
    data_dir
        Where the server keeps its data (default: in a fresh temporary folder that `stop`
        removes, with the server's log).
    """

    def __init__(
        self,
        *,
        migrate: bool = False,
        data_dir: Path | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self._template = None if migrate else cache_dir() / "template"
        self._work = Path(tempfile.mkdtemp(prefix="streamal-label-studio-"))
        self.data_dir = data_dir or self._work / "data"
        self._timeout = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self._work / "server.log"

    def start(self) -> Self:
        """Start the server and wait until ``/health`` answers on its port."""
        cache = cache_dir()
        binary = cache / "venv" / "bin" / "label-studio"
        if not binary.exists():
            raise LabelStudioError(
                "Label Studio is not installed: run python -m streamal.testing.label_studio fetch"
            )
        if self._template is not None and not self.data_dir.exists():
            shutil.copytree(self._template, self.data_dir)
        env = {k: v for k, v in os.environ.items() if k not in BARE and "SENTRY" not in k}
        env.update(QUIET)
        command = [
            str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1",
            "--port", str(self.port), "--data-dir", str(self.data_dir),
            "--log-level", "WARNING",
        ]  # fmt: skip
        with open(self._log, "ab") as out:
            self._process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._work,
                start_new_session=True,  # its own process group, so stop() leaves nothing behind
            )
        atexit.register(self.stop)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise LabelStudioError(f"Label Studio exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise LabelStudioError(f"Label Studio was not ready in {self._timeout:.0f}s: {tail}")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the REST API as the test user (``Token`` auth); the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Authorization", f"Token {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's own log."""
        text = self._log.read_text(errors="replace") if self._log.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL after 15 s); remove its log and
        its data, unless the data folder was given."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``fetch`` (install and migrate), or ``run`` a server until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m streamal.testing.label_studio")
    parser.add_argument("command", choices=["fetch", "run"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"Label Studio {LABEL_STUDIO_VERSION} in {fetch()}")
            return 0
        fetch()
        with LabelStudio() as server:
            print(
                f"Label Studio {LABEL_STUDIO_VERSION} at {server.url}, token {server.token} "
                "(Ctrl-C stops it)",
                flush=True,
            )
            stop = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop)
            signal.sigwait(stop)
    except LabelStudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

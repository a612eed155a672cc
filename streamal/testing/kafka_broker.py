"""A real Apache Kafka broker (KRaft, one combined broker + controller) for tests and benchmarks.

The jars come from Maven Central through Maven into a cache directory that later runs reuse
(``$STREAMAL_KAFKA_CACHE``, default ``~/.cache/streamal/kafka-<version>``). The broker listens on
free ports of 127.0.0.1, keeps its data in a fresh temporary directory and is stopped, with its
whole process group, when the context exits.

Usage::

    python -m streamal.testing.kafka_broker fetch     # download the jars (idempotent)
    python -m streamal.testing.kafka_broker run       # run a broker until Ctrl-C
"""

from __future__ import annotations

import argparse
import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.25.2"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
JVM_OPTIONS = [
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
]

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>streamal.testing</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement><dependencies>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-bom</artifactId>
      <version>{LOG4J_VERSION}</version><type>pom</type><scope>import</scope>
    </dependency>
  </dependencies></dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <!-- Kafka logs through slf4j 1.7 and its POM brings no binding -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
    </dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
"""


class BrokerError(RuntimeError):
    """The broker could not be fetched or started; the message says why."""


def cache_dir() -> Path:
    """Where the jars are kept between runs."""
    default = Path.home() / ".cache" / "streamal" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("STREAMAL_KAFKA_CACHE", default))


def fetch_jars(cache: Path | None = None) -> Path:
    """Resolve the broker's runtime classpath from Maven Central; return the ``libs`` folder."""
    cache = cache or cache_dir()
    libs = cache / "libs"
    done = cache / "complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise BrokerError("the Kafka test broker needs java and mvn on PATH (OpenJDK 17, Maven)")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "pom.xml").write_text(POM)
    shutil.rmtree(libs, ignore_errors=True)
    command = [
        "mvn", "-q", "-B", "-f", str(cache / "pom.xml"),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise BrokerError("fetching the Kafka jars with Maven failed: " + " | ".join(tail))
    done.write_text(KAFKA_VERSION)
    return libs


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KafkaBroker:
    """A one-node KRaft broker in a temporary directory; use it as a context manager."""

    def __init__(self, startup_timeout_s: float = 90.0) -> None:
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._timeout = startup_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="streamal-kafka-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._command: list[str] = []

    def start(self) -> Self:
        """Format the storage, start the JVM and wait until an admin client lists topics."""
        libs = fetch_jars()
        properties = self._dir / "server.properties"
        properties.write_text(self._properties())
        (self._dir / "log4j2.properties").write_text(LOG4J2)
        java = [
            "java",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
        ]
        classpath = ["-cp", f"{libs}/*"]
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        fmt = subprocess.run(
            [*java, *classpath, "kafka.tools.StorageTool", "format", "--standalone",
             f"--cluster-id={cluster_id}", "-c", str(properties)],  # ids may start with "-"
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {fmt.stderr.strip()[-500:]}")
        self._command = [*java, *classpath, "kafka.Kafka", str(properties)]
        self._launch()
        atexit.register(self.stop)
        return self

    def _launch(self) -> None:
        with open(self._dir / "broker.log", "ab") as out:
            self._process = subprocess.Popen(
                self._command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() leaves nothing behind
            )
        self._wait_ready()

    def restart(self) -> None:
        """Stop the broker and start it again on the same ports and data (a broker bounce)."""
        self._halt()
        self._launch()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP to its process group): a stalled broker, as in a long
        garbage-collection pause or a frozen virtual machine; `resume` lets it go on."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused broker go on (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        if self._process is None:
            raise BrokerError("the broker is not running")
        os.killpg(self._process.pid, signum)

    def _properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._dir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _wait_ready(self) -> None:
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + self._timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerError(f"the Kafka broker exited: {self.log_tail()}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                admin.list_topics()
                admin.close()
                return
            except Exception as error:
                last_error = error
                time.sleep(0.5)
        self.stop()
        raise BrokerError(f"the Kafka broker was not ready in {self._timeout:.0f}s: {last_error}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the broker's own log."""
        path = self._dir / "broker.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the broker's process group (SIGTERM, then SIGKILL) and remove its data."""
        self._halt()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _halt(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            os.killpg(process.pid, signal.SIGCONT)  # a paused broker handles SIGTERM once resumed
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

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
    """``fetch`` the jars, or ``run`` a broker until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m streamal.testing.kafka_broker")
    parser.add_argument("command", choices=["fetch", "run"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"Kafka {KAFKA_VERSION} jars in {fetch_jars()}")
            return 0
        with KafkaBroker() as broker:
            print(
                f"Kafka {KAFKA_VERSION} ready at {broker.bootstrap} (Ctrl-C stops it)", flush=True
            )
            stop = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop)
            signal.sigwait(stop)
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a serving replica gets its models: the store at start, the ``models`` topic after.

`ModelWatcher` follows the compacted ``models`` topic in a thread of its own. For each
announcement of this model that is newer than the one in use, it builds a fresh module, checks
the checkpoint (sha256, shapes, classes) and loads it, all off the serving path; the daemon
takes the ready model between two batches. A bad checkpoint is refused with a log line and a
metric, and the current model keeps serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import torch

from streamal.config import Settings
from streamal.errors import MessageError, ModelError, StreamalError
from streamal.messages import ModelAnnouncement, decode
from streamal.metrics import Metrics
from streamal.model import ModelStore, Predictor, build_module, load_weights, pick_device
from streamal.transport import Transport, open_transport

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """A verified model ready to serve (None: the current one), with its announced thresholds."""

    predictor: Predictor | None
    thresholds: dict[str, float] = field(default_factory=dict)


def load_version(
    settings: Settings, version: int, uri: str, sha256: str, classes: list[str]
) -> Predictor:
    """Build a fresh module and load a checked checkpoint into it; ``ModelError`` if unfit."""
    expected = settings.model.classes
    if classes != expected:
        raise ModelError(f"model v{version}: classes {classes} differ from configured {expected}")
    module = load_weights(build_module(settings.model), uri, sha256)
    return Predictor(module, classes, version, pick_device(settings.model.device))


def untrained_module(settings: Settings) -> torch.nn.Module:
    """The version-0 module, initialized from ``strategy.seed`` so runs are reproducible."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.strategy.seed)
        return build_module(settings.model)


def initial_model(settings: Settings) -> tuple[Predictor, dict[str, float]]:
    """The newest model in the store, or an untrained one (version 0) when there is none."""
    store = ModelStore(settings.model.store, settings.model.name)
    latest = store.latest()
    if latest is not None:
        try:
            predictor = load_version(
                settings, latest.version, latest.uri, latest.sha256, latest.classes
            )
            log.info("serving model %s v%d from the store", settings.model.name, latest.version)
            return predictor, dict(latest.thresholds)
        except ModelError as error:
            log.error("the newest stored model is unusable, starting untrained: %s", error)
    module = untrained_module(settings)
    log.info("no trained model yet: exploring at the budget until one is announced")
    return Predictor(module, settings.model.classes, 0, pick_device(settings.model.device)), {}


class ModelWatcher:
    """Loads announced versions newer than ``version`` in a thread of its own (`start`), or in
    the caller's (`read`); see `take`.

    A new announcement of the version in use with other thresholds (an exploration boost
    after a drift, say) is passed on as thresholds alone.
    """

    def __init__(
        self, settings: Settings, version: int, thresholds: dict[str, float], metrics: Metrics
    ) -> None:
        self._settings = settings
        self._newest = version
        self._thresholds = thresholds
        self._metrics = metrics
        self._ready: Loaded | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        """Follow the ``models`` topic until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def take(self) -> Loaded | None:
        """The newest verified model not taken yet, if any."""
        with self._lock:
            ready, self._ready = self._ready, None
            return ready

    def _run(self) -> None:
        topic = self._settings.topics.models
        while not self._stop.is_set():
            try:
                with open_transport(self._settings) as transport:
                    transport.subscribe([topic])
                    while not self._stop.is_set():
                        self.read(transport, 0.5)
            except StreamalError as error:
                log.warning("following %s failed, retrying: %s", topic, error)
                self._stop.wait(2.0)

    def read(self, transport: Transport, timeout_s: float) -> int:
        """Consider the announcements one poll of ``transport`` (subscribed to ``models``)
        brings, in this thread; the records read."""
        batch = transport.poll(100, timeout_s)
        for envelope in batch:
            if envelope.key == self._settings.model.name.encode():
                self._consider(envelope.value)
        return len(batch)

    def _consider(self, value: bytes | None) -> None:
        try:
            announcement = decode(ModelAnnouncement, value)
        except MessageError as error:
            log.error("ignored a malformed model announcement: %s", error)
            self._metrics.model_rejections.inc()
            return
        if announcement.version == self._newest and announcement.thresholds != self._thresholds:
            self._thresholds = dict(announcement.thresholds)  # same model, new thresholds
            with self._lock:
                self._ready = Loaded(None, self._thresholds)
            return
        if announcement.version <= self._newest:
            return
        try:
            predictor = load_version(
                self._settings,
                announcement.version,
                announcement.uri,
                announcement.sha256,
                announcement.classes,
            )
        except ModelError as error:
            log.error("refused model v%d, keeping the current one: %s", announcement.version, error)
            self._metrics.model_rejections.inc()
            return
        self._newest, self._thresholds = announcement.version, dict(announcement.thresholds)
        with self._lock:
            self._ready = Loaded(predictor, dict(announcement.thresholds))
        log.info("model v%d verified and ready to swap in", announcement.version)

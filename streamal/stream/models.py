"""Where a serving replica gets its models: the store at start, the ``models`` topic after.

At start a replica serves the newest stored version that verifies, skipping newer ones that do
not (each with a log line), or the untrained version 0 when none does. `ModelWatcher` then
follows the compacted ``models`` topic in a thread of its own. For each announcement of this
model that is newer than the one in use, it has `ModelLoader` load and verify the announced
version, all off the serving path; the daemon takes the ready model between two batches. A
refused version is logged and counted, and the current model keeps serving. The watcher's
newest version only advances on a version it loaded: an announcement of a version that is not
in the store (a typo, or version 999999) is refused and holds back no later real version; one
the store no longer holds while it holds a newer one (read late, after the trainer's retention
deleted it) is skipped with an info line. A tombstone (no value: how a compacted topic deletes a
key) is ignored.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from streamal.config import Settings
from streamal.errors import MessageError, ModelError
from streamal.messages import ExploreBoost, ModelAnnouncement, decode, now
from streamal.metrics import Metrics
from streamal.model import ModelLoader, Predictor
from streamal.stream.follow import TopicFollower
from streamal.transport import Transport

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """A verified model ready to serve (None: the current one), with its announced thresholds
    and a drift's exploration boost to start (None: none new)."""

    predictor: Predictor | None
    thresholds: dict[str, float] = field(default_factory=dict)
    boost: ExploreBoost | None = None


def initial_model(loader: ModelLoader) -> tuple[Predictor, dict[str, float]]:
    """The newest stored model that verifies, or an untrained one (version 0) when none does."""
    newest = loader.newest()
    if newest is not None:
        checkpoint, predictor = newest
        log.info("serving model %s v%d from the store", checkpoint.name, checkpoint.version)
        return predictor, dict(checkpoint.thresholds)
    log.info("no trained model yet: exploring at the budget until one is announced")
    return loader.untrained(), {}


class ModelWatcher(TopicFollower):
    """Loads announced versions newer than ``version`` in a thread of its own (`start`), or in
    the caller's (`read`); see `take`.

    A new announcement of the version in use with other thresholds or a new exploration boost
    is passed on without a model. A boost that started before the watcher did is history (the
    replica restarted since): it is not passed on, so a restart never reruns an old boost.
    Announcements read before the last is taken add up: the newest model and thresholds, and
    the boost of any.
    """

    def __init__(
        self,
        settings: Settings,
        loader: ModelLoader,
        version: int,
        thresholds: dict[str, float],
        metrics: Metrics,
    ) -> None:
        super().__init__(settings, settings.topics.models, "model-watcher")
        self._loader = loader
        self._newest = version
        self._thresholds = thresholds
        self._boost: ExploreBoost | None = None  # the last boost passed on
        self._started = now()
        self._metrics = metrics
        self._ready: Loaded | None = None
        self._lock = threading.Lock()

    def take(self) -> Loaded | None:
        """The newest verified model not taken yet, if any."""
        with self._lock:
            ready, self._ready = self._ready, None
            return ready

    def read(self, transport: Transport, timeout_s: float) -> int:
        """Consider the announcements one poll of ``transport`` (subscribed to ``models``)
        brings, in this thread; the records read."""
        batch = transport.poll(100, timeout_s)
        for envelope in batch:
            if envelope.key != self._settings.model.name.encode():
                continue
            if envelope.value:
                self._consider(envelope.value)
            else:
                log.info("ignored a tombstone (deleted key) of the model at %s", envelope)
        return len(batch)

    def _consider(self, value: bytes | None) -> None:
        try:
            announcement = decode(ModelAnnouncement, value)
        except MessageError as error:
            log.error("ignored a malformed model announcement: %s", error)
            self._metrics.model_rejections.inc()
            return
        if announcement.version == self._newest and (
            announcement.thresholds != self._thresholds or self._is_news(announcement.explore_boost)
        ):
            boost = self._news(announcement.explore_boost)
            self._thresholds = dict(announcement.thresholds)  # same model, new thresholds
            self._offer(Loaded(None, self._thresholds, boost))
            return
        if announcement.version <= self._newest:
            return
        if self._superseded(announcement.version):  # read late: the trainer's retention
            log.info("skipped model v%d: the store holds newer ones only", announcement.version)
            return
        try:
            predictor = self._loader.load(announcement)  # counted by the loader if refused
        except ModelError as error:
            log.error("refused model v%d, keeping the current one: %s", announcement.version, error)
            return
        self._newest, self._thresholds = announcement.version, dict(announcement.thresholds)
        self._offer(
            Loaded(predictor, dict(announcement.thresholds), self._news(announcement.explore_boost))
        )
        log.info("model v%d verified and ready to swap in", announcement.version)

    def _superseded(self, version: int) -> bool:
        """Whether the store no longer holds ``version`` but holds a newer one: the trainer
        deleted it, a newer announcement follows (a version missing with nothing newer, like a
        typo, is refused as usual)."""
        try:
            stored = self._loader.store.versions()
        except (OSError, ModelError):  # the store unreadable: loading says why
            return False
        return bool(stored) and stored[-1] > version and version not in stored

    def _offer(self, loaded: Loaded) -> None:
        """Make ``loaded`` the next to take, keeping a model or boost of one not taken yet."""
        with self._lock:
            if self._ready is not None:
                loaded = Loaded(
                    loaded.predictor or self._ready.predictor,
                    loaded.thresholds,
                    loaded.boost or self._ready.boost,
                )
            self._ready = loaded

    def _is_news(self, boost: ExploreBoost | None) -> bool:
        """Whether ``boost`` is not passed on already and started after the watcher."""
        return boost is not None and boost != self._boost and boost.started_at >= self._started

    def _news(self, boost: ExploreBoost | None) -> ExploreBoost | None:
        """``boost`` if it is news (remembered as passed on), else None."""
        if not self._is_news(boost):
            return None
        self._boost = boost
        return boost

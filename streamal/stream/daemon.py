"""``streamal serve``: the poll -> route -> atomic produce + commit loop, and its lifecycle.

Each batch's output records and consumed offsets commit in one transaction, and the gates
learn from a batch only after that commit, so a crash at any point neither loses nor repeats a
sample. Models are swapped between batches. SIGTERM or SIGINT finishes the batch in hand,
commits it, closes and returns. A batch that fails on the transport is retried with backoff;
once batches have failed for ``serve.unhealthy_after_s`` in a row, ``/healthz`` fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import FrameType

from streamal.config import Settings
from streamal.errors import FencedError, TransportError
from streamal.http import OpsServer
from streamal.messages import now
from streamal.metrics import HELD_BACK, Metrics
from streamal.model import ModelLoader
from streamal.stream.audits import LabelFollower
from streamal.stream.follow import TopicFollower, stop_together
from streamal.stream.models import Loaded, ModelWatcher, initial_model
from streamal.stream.router import Plan, Router
from streamal.transport import (
    Envelope,
    TopicPartition,
    Transport,
    next_offsets,
    open_transport,
    topic_specs,
)
from streamal.transport.retry import Backoff, connect_with_retry

log = logging.getLogger(__name__)

HEALTHY_WITHIN_S = 60.0
HELD_BACK_WHY = {
    "shift": "the served inputs shifted; until the audits asked since support the target",
    "audits": "audits turned wrong beyond the precision target; until those asked since support it",
    "stale": "audit answers are overdue (strategy.auto_label.max_label_delay_s)",
}
SUMMARY_EVERY_S = 30.0


class Daemon:
    """The selective-sampling daemon of one replica.

    Parameters
    ----------
    max_samples
        Stop after this many samples (every route counted), for bounded runs.
    idle_timeout_s
        Stop after this long without a sample while owning partitions.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        max_samples: int | None = None,
        idle_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.follower = LabelFollower(settings)
        self._clock = clock
        self.metrics = metrics or Metrics()
        self._max_samples = max_samples
        self._idle_timeout_s = idle_timeout_s
        self._stopping = threading.Event()
        self._transport: Transport | None = None
        self._router: Router | None = None
        self._beat = time.monotonic()
        self._failing_since: float | None = None  # start of the current run of failed batches
        self._failing_on: set[TopicPartition] = set()  # the partitions owned when it began
        self.metrics.batch_failing_seconds.set_function(self.failing_for)
        self._processed = 0
        self._summary: Counter[str] = Counter()
        self._held_back: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask the loop to finish its batch and return (safe from a signal handler)."""
        self._stopping.set()

    def healthy(self) -> bool:
        """The loop turned recently, and its batches have not failed for
        ``serve.unhealthy_after_s`` in a row."""
        turning = time.monotonic() - self._beat < HEALTHY_WITHIN_S
        return turning and self.failing_for() < self.settings.serve.unhealthy_after_s

    def failing_for(self) -> float:
        """Seconds batches have failed in a row (0 when the last one went through)."""
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    def ready(self) -> bool:
        """Connected to the transport, with a model loaded."""
        return self._transport is not None and self._router is not None

    def run(self) -> None:
        """Serve until stopped, idle for ``idle_timeout_s`` or done with ``max_samples``."""
        serve = self.settings.serve
        ops = OpsServer(serve.metrics_address, self.metrics.registry, self.healthy, self.ready)
        ops.start()
        log.info("metrics, /healthz and /readyz on %s (port %d)", serve.metrics_address, ops.port)
        followers: list[TopicFollower] = []
        try:
            watcher = self.start()
            followers.append(watcher)
            if self._router is not None and self._router.auto_label is not None:
                followers.append(self.follower)  # answers to audits: only when auto-labeling
            self._transport = self._connect()
            if self._transport is not None:
                for follower in followers:
                    follower.start()
                self._loop(self._transport, watcher)
        finally:
            stop_together(followers)
            if self._transport is not None:
                self._transport.close()
            ops.stop()
            log.info("stopped after %d samples", self._processed)

    def start(self) -> ModelWatcher:
        """Serve the newest stored model that verifies (or the untrained one); the watcher, not
        yet started, that follows announcements from that version on."""
        settings = self.settings
        loader = ModelLoader(settings.model, settings.strategy.seed, self.metrics)
        predictor, thresholds = initial_model(loader)
        self._router = Router(settings, predictor, self._clock)
        self._adopt(Loaded(predictor, thresholds))
        return ModelWatcher(settings, loader, predictor.version, thresholds, self.metrics)

    def connect(self) -> Transport:
        """A transactional transport in the serving group, subscribed to the samples."""
        settings = self.settings
        transport = open_transport(settings, group=settings.serve.group, transactional=True)
        try:
            transport.ensure_topics(topic_specs(settings.topics))
            transport.subscribe([settings.topics.samples])
        except TransportError:
            transport.close()
            raise
        log.info("consuming %s as group %s", settings.topics.samples, settings.serve.group)
        return transport

    def step(self, transport: Transport, watcher: ModelWatcher) -> int:
        """Swap in the model the watcher has ready, then route one batch; the samples read."""
        if (loaded := watcher.take()) is not None:
            self._adopt(loaded)
        assert self._router is not None
        self._router.learn(self.follower.take())
        self.metrics.audits_overdue.set(self._router.check_evidence())
        limit = self.settings.serve.max_batch
        if self._max_samples is not None:
            limit = min(limit, self._max_samples - self._processed)
        batch = transport.poll(limit, self.settings.serve.max_wait_ms / 1000)
        if batch:
            self._process(transport, batch)
        return len(batch)

    def _connect(self) -> Transport | None:
        """`connect`, retrying with backoff until it works (None: stopped first)."""
        return connect_with_retry(self.connect, self._stopping)

    # -- the loop -------------------------------------------------------------------------

    def _loop(self, transport: Transport, watcher: ModelWatcher) -> None:
        last_sample = last_summary = time.monotonic()
        backoff = Backoff()
        while not self._stopping.is_set():
            self._beat = time.monotonic()
            try:
                read = self.step(transport, watcher)
                if self._failing_since is not None and (
                    read or transport.assignment() != self._failing_on
                ):
                    # a run of failures ends: a batch went through, or the failing one's
                    # partitions moved away (an empty poll alone ends nothing: a rewound
                    # consumer may take a while to fetch the failed batch again)
                    backoff.reset()
                    self._failing_since = None
            except FencedError as error:
                log.warning("batch dropped, its partitions moved to another replica: %s", error)
                continue
            except TransportError as error:
                wait = backoff.next()
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    self._failing_on = transport.assignment()
                self.metrics.batch_failures.inc()
                log.error("transport failed (%s); retrying in %.1fs", error, wait)
                self._stopping.wait(wait)
                continue
            now_s = time.monotonic()
            if read or not transport.assignment():  # idle means: partitions, but no samples
                last_sample = now_s
            elif self._idle_timeout_s is not None and now_s - last_sample >= self._idle_timeout_s:
                log.info("idle for %.0fs, stopping", self._idle_timeout_s)
                return
            if self._max_samples is not None and self._processed >= self._max_samples:
                log.info("processed --max-samples %d, stopping", self._max_samples)
                return
            if now_s - last_summary >= SUMMARY_EVERY_S:
                self._log_summary()
                last_summary = now_s

    def _process(self, transport: Transport, batch: list[Envelope]) -> None:
        assert self._router is not None
        plan = self._router.plan(batch)
        offsets = next_offsets(batch)
        try:
            transport.produce_and_commit(plan.records, offsets)
        except FencedError:
            raise
        except TransportError as error:
            if not landed(transport, offsets):
                raise
            log.warning("the batch committed though its commit failed to answer: %s", error)
        self._router.commit(plan)
        self._processed += len(batch)
        self._observe(plan, batch)

    def _adopt(self, loaded: Loaded) -> None:
        """Serve ``loaded`` from the next batch on."""
        assert self._router is not None
        previous = self._router.predictor
        predictor = loaded.predictor or previous
        self._router.use(predictor, loaded.thresholds, loaded.boost)
        if loaded.boost is not None:
            boost = loaded.boost
            since = (
                ""
                if boost.drift_since is None
                else f"; drift since {boost.drift_since.isoformat()}"
            )
            log.info(
                "exploration boost %s: %.0f%% of the budget at random for %d samples%s",
                boost.id, 100 * boost.share, boost.samples, since,
            )  # fmt: skip
        self.metrics.model_version.set(predictor.version)
        if predictor is not previous:
            self.metrics.model_swaps.inc()
            log.info("swapped model v%d -> v%d", previous.version, predictor.version)
        else:
            log.info("model v%d: thresholds now %s", predictor.version, loaded.thresholds)

    # -- reporting ------------------------------------------------------------------------

    def _observe(self, plan: Plan, batch: list[Envelope]) -> None:
        assert self._router is not None
        metrics, router = self.metrics, self._router
        for route, count in plan.routes.items():
            metrics.samples.labels(route).inc(count)
        metrics.auto_labels_retracted.inc(plan.retracted)
        metrics.retracted_asked_again.inc(plan.asked_again)
        for reason, count in plan.over_budget.items():
            metrics.over_budget.labels(reason).inc(count)
        self._summary.update(plan.routes)
        metrics.batch_size.observe(len(batch))
        if plan.predict_seconds:
            metrics.predict_seconds.observe(plan.predict_seconds)
        routed_at = now().timestamp()
        for event_time in plan.event_times:
            metrics.end_to_end_seconds.observe(max(0.0, routed_at - event_time))
        metrics.threshold.labels("budget").set(router.gate.threshold)
        metrics.threshold.labels("explore").set(router.explore.threshold)
        metrics.label_rate.set(router.gate.label_rate)
        metrics.label_budget.set(router.gate.budget)
        if router.auto_label is not None:
            metrics.threshold.labels("auto_label").set(router.auto_label.threshold)
            self._observe_held_back(router.auto_label.held_back)
        log.debug(
            "%s..%d: %s with model v%d",
            batch[0], batch[-1].offset, dict(plan.routes), router.predictor.version,
        )  # fmt: skip

    def _observe_held_back(self, reason: str | None) -> None:
        """The paused gauges, and a pause begun (counted, logged) or ended (logged)."""
        if reason == self._held_back:
            return
        if reason is not None:
            self.metrics.auto_label_pauses.labels(reason).inc()
            log.warning("auto-labeling held back: %s", HELD_BACK_WHY[reason])
        else:
            log.info("auto-labeling resumed: the audits support the precision target")
        for name in HELD_BACK:
            self.metrics.auto_label_paused.labels(name).set(name == reason)
        self._held_back = reason

    def _log_summary(self) -> None:
        if self._summary:
            version = self._router.predictor.version if self._router else 0
            log.info("routed %s with model v%d", dict(self._summary), version)
            self._summary.clear()


def landed(transport: Transport, offsets: Mapping[TopicPartition, int]) -> bool:
    """Whether a transaction that committed ``offsets`` landed though its commit failed (a
    commit whose answer was lost, which the broker completes): the group's committed offsets
    are exactly those (a replica that took the partitions over and went on would be past
    them). Without an answer either, it did not, as far as anyone can tell."""
    try:
        committed = transport.committed(offsets)
    except TransportError:
        return False
    return all(committed.get(tp) == offset for tp, offset in offsets.items())

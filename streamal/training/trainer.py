"""``streamal train``: keep the labeled set, train in rounds, publish better models.

The trainer consumes ``label-requests`` (the sample's features and payload, and the prediction
made at request time; a request the model cannot read is dead-lettered) and ``labels`` (the
annotators' answers) in its own group. Each record is written to the label store before its
offset is committed, and the store ignores a record it already has, so a crash at any point
loses no label and counts none twice. A round runs every ``interval_s`` (when labels came), as
soon as ``min_new_labels`` came, or early after a drift; while the labeled set is small, as
soon as it has doubled (the first after ``first_round_labels``), so the first models come
after a few labels. A challenger is published only if it does no worse than the champion on
the same held-out labels (always, after a champion that learned them: see `_Champion`).

A drift the detectors find is noted in the label store until it is announced (with the next
version, or the champion again): a trainer stopped in between announces it at its restart.

A broker that is unreachable, stalled or rebalancing, or a label store that cannot be written
(a full disk), does not stop the trainer: it logs one line, backs off, and consumes again from
the committed offsets, so the batch in hand is stored again rather than lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from math import ceil
from types import FrameType

import numpy as np
import torch

from streamal.config import Settings
from streamal.deadletters import dead_letter
from streamal.errors import MessageError, ModelError, TransportError
from streamal.http import OpsServer
from streamal.messages import ExploreBoost, LabelRequest, OracleLabel, Sample, decode, now
from streamal.metrics import Metrics
from streamal.model import Labeled, ModelLoader, ModelStore, Predictor
from streamal.model.announce import announcement_record
from streamal.model.loader import check_finite
from streamal.model.store import Checkpoint
from streamal.strategies import build_score
from streamal.training.drift import DriftMonitor
from streamal.training.fit import accuracy, fit, held_out, rounds_logits, warm_up
from streamal.training.labels import (
    Joined,
    LabeledSet,
    LabelStore,
    LabelStoreError,
    PendingDrift,
)
from streamal.training.stopping import StoppingMonitor, stop_set_view
from streamal.training.thresholds import (
    auto_label_out_of_reach,
    auto_label_threshold,
    budget_threshold,
    explore_share,
)
from streamal.transport import (
    Envelope,
    Transport,
    next_offsets,
    open_transport,
    topic_specs,
)
from streamal.transport.retry import Backoff, connect_with_retry

log = logging.getLogger(__name__)

ACCURACY_WINDOW = 500
REPLAY_MIN, REPLAY_PER_NEW = 64, 4  # older labels replayed in an update: at least, per new one
HEALTHY_WITHIN_S = 300.0  # a round on many labels may take minutes
AUTO_LABEL = ("auto_label", "auto_label_bound", "auto_label_out_of_reach")
"""The thresholds of auto-labeling: none after a drift, until retrained."""
EXPLORE_EVIDENCE = 200  # latest answers of each kind (explore, uncertain) the share weighs
SHARE_KINDS = ("explore", "uncertain")  # the answers the explore share weighs


class Trainer:
    """The periodic trainer of one model.

    Parameters
    ----------
    max_rounds
        Stop after this many training rounds (bounded runs).
    idle_timeout_s
        Stop after this long without a record while owning partitions.
    clock
        Seconds for the round interval (a simulation passes its stream's clock).
    healthy_within_s
        ``/healthz`` fails once no step (poll, store, round) succeeded for this long.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        max_rounds: int | None = None,
        idle_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        healthy_within_s: float = HEALTHY_WITHIN_S,
    ) -> None:
        self.settings = settings
        build_score(settings.strategy.score, seed=settings.strategy.seed)  # a user's loads now
        self._healthy_within_s = healthy_within_s
        self._beat = time.monotonic()
        self._clock = clock
        self.metrics = metrics or Metrics()
        self._max_rounds = max_rounds
        self._idle_timeout_s = idle_timeout_s
        self._stopping = threading.Event()
        config = settings.train
        self.labels = LabelStore(config.label_store, settings.model.classes, config.duplicates)
        self.models = ModelStore(settings.model.store, settings.model.name)
        self._loader = ModelLoader(settings.model, settings.strategy.seed, self.metrics)
        self._reader = self._loader.fresh()  # checks that the model reads a request
        self.champion = self._load_champion()
        warm_up()
        self._detectors = DriftMonitor(config.drift)
        # answers to two serve batches' requests: a new concept's first samples are served
        # mixed with the old one's (partitions are read at different offsets), and the
        # detectors date the change amid the mix; its auto-labels are retracted from before it
        self._mixed = ceil(2 * settings.serve.max_batch * settings.strategy.budget)
        self._recent = deque[bool](maxlen=ACCURACY_WINDOW)
        # labels since the last round (a restart picks up those a stopped trainer never used)
        # and the label-store point where the current concept's labels start
        self._new_labels, self._concept_start = self.labels.last_round()
        # the store point after which audits are evidence for the auto-label threshold: those
        # answered since the last drift was detected (the concept's estimated start may be early)
        self._evidence_start = self._concept_start
        # a drift found and not announced yet (a predecessor's, if it stopped before that)
        self._drift = self.labels.pending_drift()
        self._drifted = self._drift is not None
        self._boost: ExploreBoost | None = None  # the last drift's, announced with each version
        self._out_of_reach = False  # the audits put every auto-label threshold out of reach
        if self._drift is not None:
            self._concept_start = max(self._concept_start, self._drift.concept_start)
            self._evidence_start = self._drift.evidence_start
        # labels of the current concept the last round learned from (the next is due when
        # as many more came: rounds come early while the labeled set is small)
        stored = len(self.labels.labeled(since=self._concept_start).samples)
        self._trained_on = max(0, stored - self._new_labels)
        # incremental updates between rounds: the labels not learned yet, the store's point
        # learned through, and when a version was last published (on the clock)
        self._unlearned, self._learned_through = 0, self.labels.position
        self._updates = config.update_labels > 0
        self._last_publish = -float("inf")
        self._rounds = 0
        self.drift_events: list[tuple[float, str]] = []  # (clock time, detector)
        self._stop = StoppingMonitor(config.stopping)
        self.stop_events: list[tuple[float, str]] = []  # (clock time, rule that began to hold)
        self._last_round = clock()
        self._transport: Transport | None = None
        self._backoff = Backoff()

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Finish the step in hand and return (safe from a signal handler)."""
        self._stopping.set()

    def healthy(self) -> bool:
        """The loop turns: a step succeeded recently."""
        return time.monotonic() - self._beat < self._healthy_within_s

    def ready(self) -> bool:
        """Consuming labels and requests."""
        return self._transport is not None

    def run(self) -> None:
        """Consume and train until stopped (or the bounds of a bounded run), connecting
        again after a failure."""
        address = self.settings.train.metrics_address
        ops = OpsServer(address, self.metrics.registry, self.healthy, self.ready)
        ops.start()
        try:
            done = False
            while not done:
                transport = connect_with_retry(self.connect, self._stopping)
                if transport is None:
                    return
                self._transport = transport
                try:
                    done = self._loop(transport)
                finally:
                    self._transport = None
                    _close(transport)
        finally:
            self.labels.close()
            ops.stop()

    def connect(self) -> Transport:
        """A transport subscribed to requests and labels, once the champion (if any) is
        announced again in case the last run stopped before announcing it (or a drift it
        found: then with its boost, and without auto-labeling until retrained)."""
        settings = self.settings
        transport = open_transport(settings, group=settings.train.group)
        try:
            transport.ensure_topics(topic_specs(settings.topics))
            transport.subscribe([settings.topics.label_requests, settings.topics.labels])
            if self.champion is not None:
                checkpoint = self.champion.checkpoint
                thresholds = checkpoint.thresholds
                if self._drift is not None:
                    thresholds = {k: v for k, v in thresholds.items() if k not in AUTO_LABEL}
                self._announce(transport, checkpoint, thresholds)
        except TransportError:
            _close(transport)
            raise
        return transport

    @contextmanager
    def connected(self) -> Iterator[Transport]:
        """`connect`, closed at the end."""
        with self.connect() as transport:
            self._transport = transport
            try:
                yield transport
            finally:
                self._transport = None

    def step(self, transport: Transport, timeout_s: float = 0.5) -> int:
        """One poll: store what came, then train if a round is due; the records read."""
        batch = transport.poll(1000, timeout_s)
        if batch:
            self._ingest(transport, batch)
        if self._round_due():
            self._round(transport)
            self.labels.record_round(self._concept_start)
            self._judge_stopping()
        elif self._update_due():
            self._update(transport)
        return len(batch)

    def _loop(self, transport: Transport) -> bool:
        """Step until stopped or a bound is reached (True), or until a step fails (False,
        after a backoff): uncommitted records are then read again by a new transport."""
        last_record = time.monotonic()
        while not self._stopping.is_set():
            try:
                read = self.step(transport)
            except (TransportError, LabelStoreError) as error:
                wait = self._backoff.next()
                log.error("step failed (%s); consuming again in %.1fs", error, wait)
                self._stopping.wait(wait)
                return False
            self._backoff.reset()
            self._beat = time.monotonic()
            if read or not transport.assignment():  # idle means: partitions, but no records
                last_record = time.monotonic()
            elif self._idle_timeout_s and time.monotonic() - last_record > self._idle_timeout_s:
                log.info("idle for %.0fs, stopping", self._idle_timeout_s)
                return True
            if self._max_rounds is not None and self._rounds >= self._max_rounds:
                return True
        return True

    # -- labels ---------------------------------------------------------------------------

    def _ingest(self, transport: Transport, batch: list[Envelope]) -> None:
        """Store every record, dead-letter the bad ones, then commit the offsets."""
        topics = self.settings.topics
        for envelope in batch:
            try:
                if envelope.topic == topics.label_requests:
                    joined = self._add_request(envelope)
                else:
                    joined = self._add_label(envelope)
            except MessageError as error:
                self._dead_letter(transport, envelope, str(error))
                continue
            if joined is not None:  # a label met its request: one more to train on
                self._new_labels += 1
                self._unlearned += 1
                self._observe(joined)
        transport.flush()
        transport.commit(next_offsets(batch))
        dropped = self.labels.drop_expired(self.settings.train.pending_ttl_s)
        if dropped:
            self.metrics.labels_expired.inc(dropped)
            log.warning("dropped %d labels whose requests never came", dropped)

    def _add_request(self, envelope: Envelope) -> Joined | None:
        request = decode(LabelRequest, envelope.value)
        if request.features is None and request.payload is None:
            raise MessageError("features and payload: both missing, so there is nothing to learn")
        sample = Sample(id=request.id, features=request.features, payload=request.payload)
        if rejected := self._reader.encode([sample]).rejected:
            raise MessageError(f"the model cannot read it: {rejected[0][1]}")
        return self.labels.add_request(request)

    def _add_label(self, envelope: Envelope) -> Joined | None:
        label = decode(OracleLabel, envelope.value)
        if label.label not in self.settings.model.classes:
            raise MessageError(f"label: unknown class {label.label!r}")
        limit = self.settings.train.max_future_s
        if (label.labeled_at - now()).total_seconds() > limit:  # it would win `latest` for ever
            raise MessageError(
                f"labeled_at: must be at most {limit:g} s in the future"
                f" (got {label.labeled_at.isoformat().replace('+00:00', 'Z')})"
            )
        self.metrics.labels_received.inc()
        return self.labels.add_label(
            label, f"{envelope.topic}:{envelope.partition}:{envelope.offset}"
        )

    def _dead_letter(self, transport: Transport, envelope: Envelope, reason: str) -> None:
        log.warning("dead letter %s: %s", envelope, reason)
        settings = self.settings
        topic, limit = settings.topics.dead_letter, settings.transport.max_record_bytes
        transport.produce(dead_letter(envelope, reason, topic, limit))

    def _observe(self, joined: Joined) -> None:
        """Answered accuracy and drift, from a label meeting its request (for drift, as the
        champion judges it: `_as_rounds_predict`)."""
        correct = joined.label == joined.predicted
        self._recent.append(correct)
        self.metrics.answered_accuracy.set(sum(self._recent) / len(self._recent))
        self.metrics.label_delay_seconds.observe(joined.delay_s)
        drifts = self._detectors.update(self._as_rounds_predict(joined))
        for detector in drifts:
            log.warning(
                "drift detected by the %s detector: exploring more, training early", detector
            )
            self.metrics.drift_detected.labels(detector).inc()
            self.drift_events.append((self._clock(), detector))
        if drifts:
            self._drifted = True
            # the old concept's labels now mislead: train (and judge) on the new one's only
            self._concept_start = max(self._concept_start, min(drifts.values()))
            self._evidence_start = self.labels.position
            self._drift = PendingDrift(
                id=f"drift-{self.labels.identity}-{self.labels.position}",
                concept_start=self._concept_start,
                evidence_start=self._evidence_start,
                since=self.labels.asked_after(min(drifts.values()), reach_back=self._mixed),
            )
            self.labels.record_drift(self._drift)

    def _as_rounds_predict(self, joined: Joined) -> Joined:
        """``joined`` with the prediction (and version) of the champion's part that learns in
        rounds, for a model that also follows the stream by itself (`StreamModel.rounds_logits`):
        such a model is unsure where its parts disagree and partly right after a change, which
        would hide from the detectors a change that the rounds must restart at."""
        if self.champion is None or (sample := self.labels.sample(joined.id)) is None:
            return joined
        model = self.champion.predictor.model
        encoded = model.encode([sample])
        if not encoded.kept:
            return joined
        if (logits := rounds_logits(model, encoded.inputs)) is None:
            return joined
        confidence, best = torch.softmax(logits[0].float(), -1).max(-1)
        predicted, version = model.classes[int(best)], self.champion.checkpoint.version
        return replace(
            joined, predicted=predicted, confidence=float(confidence), model_version=version
        )

    # -- rounds ---------------------------------------------------------------------------

    def _round_due(self) -> bool:
        config = self.settings.train
        if self._new_labels == 0 and not self._drifted:
            return False
        waited = self._clock() - self._last_round
        growth = max(config.first_round_labels, self._trained_on)  # the labeled set doubled
        return (
            self._drifted
            or self._new_labels >= min(growth, config.min_new_labels)
            or waited >= config.interval_s
        )

    def _update_due(self) -> bool:
        config = self.settings.train
        return (
            self._updates
            and self.champion is not None
            and self._unlearned >= config.update_labels
            and self._clock() - self._last_publish >= config.publish_interval_s
        )

    def _update(self, transport: Transport) -> None:
        """The champion learns the labels that came since it last learned, with replayed older
        ones, and is published as the next version: the served model improves after every
        label (`train.update_labels`). The held-out ones, which judge the next round's
        challenger, it learns only in the parts that follow the stream label by label
        (`StreamModel.follow`)."""
        assert self.champion is not None
        started = time.monotonic()
        since, self._learned_through = self._learned_through, self.labels.position
        self._unlearned = 0
        data = self.labels.labeled(since=self._concept_start)
        share, seed = self.settings.train.validation_share, self.settings.strategy.seed
        training = ~held_out([sample.id for sample in data.samples], share)
        fresh = {sample.id for sample in self.labels.labeled(since=since).samples}
        is_new = np.array([sample.id in fresh for sample in data.samples], dtype=bool)
        new, old = np.flatnonzero(training & is_new), np.flatnonzero(training & ~is_new)
        judges = np.flatnonzero(~training & is_new)
        if not len(new) and not len(judges):
            return
        rng = np.random.default_rng([seed, self._learned_through])
        replay = rng.permutation(old)[: max(REPLAY_MIN, REPLAY_PER_NEW * len(new))]
        model = self._loader.fresh()
        model.load_state_dict(self.champion.predictor.model.state_dict())
        followed = model.follow(self._labeled(data, judges))
        torch.manual_seed(seed + self._learned_through)
        if not len(new) and not followed:
            return
        if len(new) and not model.update(self._labeled(data, new), self._labeled(data, replay)):
            self._updates = False
            log.info("the model does not learn incrementally: it improves in full rounds only")
            return
        predictor = Predictor(model, 0)
        try:
            check_finite(predictor, "the updated model")
        except ModelError as error:
            self._count("rejected", "round %d: %s; keeping the champion", error)
            return
        self.metrics.training_seconds.observe(time.monotonic() - started)
        learned_judges = self.champion.learned_judges  # what it learned since stays held out
        learned = len(new) + (len(judges) if followed else 0)
        updated_with: dict[str, float] = {"updated_with": learned}
        checkpoint = self._publish(transport, predictor, updated_with, data, learned_judges)
        self.metrics.training_runs.labels("updated").inc()
        log.info("updated: published v%d (learned %d new labels)", checkpoint.version, learned)

    def _labeled(self, data: LabeledSet, rows: np.ndarray) -> Labeled:
        index = {name: i for i, name in enumerate(self.settings.model.classes)}
        targets = np.array([index[data.labels[i]] for i in rows], dtype=np.int64)
        return Labeled([data.samples[i] for i in rows], targets)

    def _publish(
        self,
        transport: Transport,
        predictor: Predictor,
        metrics: dict[str, float],
        data: LabeledSet,
        learned_judges: bool,
    ) -> Checkpoint:
        """Store ``predictor``'s model as the next version, with its thresholds, make it the
        champion and announce it; ``learned_judges``: it learned the labels held out to judge
        it (see `_Champion`)."""
        thresholds = self._thresholds(predictor, data)
        classes = self.settings.model.classes
        checkpoint = self.models.save(predictor.model.state_dict(), classes, metrics, thresholds)
        if keep := self.settings.model.keep_versions:
            self.models.prune(keep, self.settings.model.keep_rounds)
        predictor.version = checkpoint.version
        self.champion = _Champion(checkpoint, predictor, learned_judges)
        self._detectors.rearm()
        self._announce(transport, checkpoint, thresholds)
        self._last_publish = self._clock()
        return checkpoint

    def _round(self, transport: Transport) -> None:
        started = time.monotonic()
        self._rounds += 1
        self._last_round = self._clock()
        self._new_labels, self._drifted = 0, False
        position = self.labels.position  # a rejected round leaves these to the next update
        data = self.labels.labeled(since=self._concept_start)
        self._trained_on = len(data.samples)
        champion = self.champion.predictor.model if self.champion else None
        labeled = self._labeled(data, np.arange(len(data.samples)))
        share, seed = self.settings.train.validation_share, self.settings.strategy.seed
        result = fit(self._loader.fresh, labeled, share, champion, seed)
        self.metrics.training_seconds.observe(time.monotonic() - started)
        if result is None:
            self._count("too_few_labels", "round %d: too few labels (%d)", len(data.samples))
            return
        if self.champion is not None and self.champion.learned_judges:
            result = replace(result, champion_accuracy=None)  # no fair comparison: it learned them
        metrics = {"accuracy": result.accuracy}
        if self._recent:
            metrics["answered_accuracy"] = sum(self._recent) / len(self._recent)
        if result.champion_accuracy is not None:
            metrics["champion_accuracy"] = result.champion_accuracy
        if not result.better_or_equal:
            self._count(
                "rejected", "round %d: challenger %.3f < champion %.3f; keeping the champion",
                result.accuracy, result.champion_accuracy,
            )  # fmt: skip
            self._retune_champion(transport, data)
            return
        predictor = Predictor(result.challenger, 0)
        try:  # a diverged challenger would be refused by every replica: never publish it
            check_finite(predictor, "the challenger")
        except ModelError as error:
            self._count("rejected", "round %d: %s; keeping the champion", error)
            if self.champion is not None:
                self._retune_champion(transport, data)
            return
        checkpoint = self._publish(transport, predictor, metrics, data, result.learned_held_out)
        self._unlearned, self._learned_through = 0, position
        self._count(
            "published", "round %d: published v%d (accuracy %.3f on %d held-out labels)",
            checkpoint.version, result.accuracy, result.validation_size,
        )  # fmt: skip

    def _judge_stopping(self) -> None:
        """After a round: whether more labels still pay, for the model it leaves (see
        `streamal.training.stopping`): a log line when a rule begins to hold, and metrics."""
        if self.champion is None:
            return
        predictor, config = self.champion.predictor, self.settings.train
        data = self.labels.labeled(since=self._concept_start)
        rows = np.flatnonzero(held_out([s.id for s in data.samples], config.validation_share))
        score = None
        if len(rows):
            score = accuracy(predictor.model, self._labeled(data, rows), judged=True)
        stop_set = self.labels.first_samples(
            config.stopping.stop_set, "explore", self._concept_start
        )
        labels = self.labels.counts()["labeled"]
        view = stop_set_view(predictor, stop_set) if stop_set else None
        for rule in self._stop.observe(self._concept_start, labels, score, view):
            log.info("more labels no longer pay: %s (%s)", rule, self._stop.describe(rule))
            self.stop_events.append((self._clock(), rule))
        for rule, holds in self._stop.holds.items():
            self.metrics.stop_signal.labels(rule).set(float(holds))
        for gauge, value in (
            (self.metrics.stop_set_agreement, self._stop.agreement),
            (self.metrics.stop_set_uncertainty, self._stop.uncertainty),
        ):
            gauge.set(float("nan") if value is None else value)

    def _retune_champion(self, transport: Transport, data: LabeledSet) -> None:
        """The champion stays, with thresholds from the labels so far: auto-labeling once
        enough audits came, a budget threshold from the newest random requests. Stored (a
        restarted replica serves them) and announced, with an exploration boost after a drift
        (announced only: a replica restarted later must not rerun it)."""
        assert self.champion is not None  # a challenger without a champion always wins
        thresholds = self._thresholds(self.champion.predictor, data)
        if thresholds != self.champion.checkpoint.thresholds:
            self.champion.checkpoint = self.models.retune(self.champion.checkpoint, thresholds)
        elif self._drift is None:
            return
        self._announce(transport, self.champion.checkpoint, thresholds)

    def _thresholds(self, predictor: Predictor, data: LabeledSet) -> dict[str, float]:
        thresholds: dict[str, float] = {}
        recent = self.labels.recent_samples(self.settings.train.recent_requests, "explore")
        if (budget := budget_threshold(self.settings, predictor, recent)) is not None:
            thresholds["budget"] = budget
        classes = len(self.settings.model.classes)
        since, floor = self._evidence_start, self.settings.strategy.explore
        explored, uncertain = (
            self.labels.answered(reason, since, EXPLORE_EVIDENCE, trained_only=True)
            for reason in SHARE_KINDS
        )
        if (share := explore_share(explored, uncertain, classes, floor)) is not None:
            thresholds["explore"] = share
        window = self.settings.strategy.auto_label.window
        confidences, correct = self.labels.audits(since=since, newest=window)
        auto = auto_label_threshold(self.settings, confidences, correct)
        if auto is not None and self._drift is None:  # after a drift: off until retrained
            thresholds["auto_label"], bound = auto
            thresholds["auto_label_bound"] = round(bound, 6)  # serve audits fewer when high
            self.metrics.auto_label_precision_lower_bound.set(bound)
        unreachable = auto is None and auto_label_out_of_reach(self.settings, confidences, correct)
        if unreachable:
            thresholds["auto_label_out_of_reach"] = 1.0  # serve audits fewer
            if not self._out_of_reach:
                log.info(
                    "auto-labeling out of reach: even the most confident audits are right too "
                    "seldom for the %s precision target; serve audits a quarter as many until "
                    "they come right", self.settings.strategy.auto_label.target_precision,
                )  # fmt: skip
        self._out_of_reach = unreachable
        self.metrics.auto_label_out_of_reach.set(float(unreachable))
        return thresholds

    def _announce(
        self, transport: Transport, checkpoint: Checkpoint, thresholds: dict[str, float]
    ) -> None:
        """Announce ``checkpoint`` with ``thresholds``, and with the exploration boost of the
        last drift this trainer found: a new one starts with this announcement, and rides on
        every later one, since ``models`` is compacted and a replica that reads after the next
        version was announced finds that one only (replicas start each boost once)."""
        found = self._drift
        if found is not None:
            config = self.settings.train.drift
            since = None if found.since is None else datetime.fromtimestamp(found.since, UTC)
            self._boost = ExploreBoost(
                share=config.explore_boost, samples=config.boost_samples, id=found.id,
                started_at=now(), drift_since=since,
            )  # fmt: skip
        record = announcement_record(
            self.settings.topics.models, replace(checkpoint, thresholds=thresholds), self._boost
        )
        transport.produce(record)
        transport.flush()
        if found is not None and self._boost is not None:
            drift_since = self._boost.drift_since
            began = "its start" if drift_since is None else drift_since.isoformat()
            log.info(
                "announced %s: exploring more, retracting auto-labels since %s", found.id, began
            )
            self._drift = None
            self.labels.drift_announced()

    def _count(self, outcome: str, message: str, *args: object) -> None:
        self.metrics.training_runs.labels(outcome).inc()
        log.info(message, self._rounds, *args)

    def _load_champion(self) -> _Champion | None:
        """The newest stored version that verifies (newer ones that do not are skipped)."""
        newest = self._loader.newest()
        if newest is None:
            return None
        checkpoint, predictor = newest
        log.info("champion: %s v%d", checkpoint.name, checkpoint.version)
        return _Champion(checkpoint, predictor)


def _close(transport: Transport) -> None:
    """Close ``transport``; a failure to (a broker gone) is logged, as nothing is lost."""
    try:
        transport.close()
    except TransportError as error:
        log.warning("closing the transport failed (%s)", error)


class _Champion:
    """The published model the next challenger has to match, on held-out labels, unless it
    learned them (``learned_judges``: a first round on a few labels learns from all of them),
    which would keep out a challenger of twice the labels on its memory of a few."""

    def __init__(
        self, checkpoint: Checkpoint, predictor: Predictor, learned_judges: bool = False
    ) -> None:
        self.checkpoint = checkpoint
        self.predictor = predictor
        self.learned_judges = learned_judges

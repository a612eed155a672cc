"""One micro-batch through the model: decode -> encode -> predict -> score -> gates -> records.

`Router.plan` leaves the gates untouched; `Router.commit` applies their updates once the batch's
records and offsets are committed, so an aborted batch changes nothing and is planned again to
the same records.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.deadletters import dead_letter
from streamal.errors import ConfigError
from streamal.gates import Decision, ExploreGate, LabelAllowance, Reason, Route
from streamal.gates.coverage import Coverage, feature_matrix
from streamal.gates.shift import ShiftMonitor
from streamal.messages import (
    AutoLabel,
    ExploreBoost,
    LabelRequest,
    Retraction,
    Sample,
    decode_batch,
    encode,
    now,
)
from streamal.model import Predictor
from streamal.model.scoring import check_embeddings, probabilities_and_utilities
from streamal.requests import label_request, top_guesses
from streamal.strategies import build_auto_label, build_gate, build_score, seed_for
from streamal.stream.audits import Audit, AuditLedger
from streamal.transport import Envelope, Record, record_size

log = logging.getLogger(__name__)

ROUTE_NAMES = {Route.ORACLE: "oracle", Route.AUTO_LABEL: "auto_label", Route.SKIP: "skip"}
ISSUED_KEPT = 200_000  # auto-labels remembered for retraction
ASKED_AGAIN_KEPT = 2_000  # samples of the newest auto-labels kept to ask again when retracted
ASKED_AGAIN_MAX_BYTES = 64 * 1024  # a bigger sample is retracted, not asked again
ASKED_AGAIN_SHARE = 0.5  # of the uncertain picks a retracted sample may take the place of
BANKED_SAMPLES = 1000  # the label allowance keeps what this many samples earn, unspent


@dataclass
class Plan:
    """What one batch produces, and the gate decisions to commit with it."""

    records: list[Record] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)
    event_times: list[float] = field(default_factory=list)
    predict_seconds: float = 0.0
    gate: Decision[Any] | None = None
    auto_label: Decision[Any] | None = None
    explore: Decision[Any] | None = None
    audits: list[tuple[str, str, float]] = field(default_factory=list)
    """(sample id, predicted label, confidence) of each audit asked."""
    signals: np.ndarray | None = None
    """What the shift monitor watches: the samples' features, or the confidences."""
    issued: list[tuple[AutoLabel, Sample | None]] = field(default_factory=list)
    """The auto-labels issued, with their sample when it is kept to be asked again."""
    retracted: int = 0
    """How many of the pending retractions lead the records."""
    asked_again: int = 0
    """How many retracted samples (the head of the queue) were asked again."""
    swap_credit: float = 0.0
    allowance: LabelAllowance | None = None
    """The label allowance after the batch."""
    over_budget: Counter[str] = field(default_factory=Counter)
    """Requests the allowance refused, by reason."""
    covered: tuple[np.ndarray, np.ndarray] | None = None
    """The features of a cold batch and which were asked, for the cold start's coverage."""


class Router:
    """Routes batches of sample records with the current model and the strategy's gates.

    Before the first trained model (version 0) it explores: samples are asked at the budget
    rate (reason ``explore``), those farthest from the ones asked before (a `Coverage` of the
    features; at random with ``strategy.cold_start: random`` or without features), and nothing
    is auto-labeled. Later the auto-label gate
    picks its audits, the exploration gate asks a share of the budget at random
    (``strategy.explore``; more for a while after a drift), and the budget gate, counting
    both as spent where they stand, asks that many fewer. Every request, whatever its reason,
    is then paid from one `LabelAllowance` (``strategy.budget`` per sample seen, what
    ``BANKED_SAMPLES`` earn kept unspent): a request it cannot pay is skipped, so audits and
    exploration too stay within the budget. The random utility's picks are all ``explore``.

    Auto-labeling pauses when the served inputs shift (the samples' features, or the model's
    confidences when they have none, watched by a `ShiftMonitor`) until the audits asked since
    support the target, and holds back while audit answers are overdue
    (``strategy.auto_label.max_label_delay_s`` on ``clock``): see `learn` and `check_evidence`.
    When audits turned wrong, the auto-labels issued since the last right audit before them
    are retracted, with the next batch (exactly once with it); so are those issued since a
    drift's start as the trainer estimates it (announced with its exploration boost). A
    sample retracted on its audits is asked again (reason ``retracted``, newest first) in the
    place of the least uncertain of a batch's uncertain picks, up to half of them: the budget
    stays as spent (``strategy.auto_label.ask_retracted``, off by default).
    """

    def __init__(
        self, settings: Settings, predictor: Predictor, clock: Callable[[], float] = time.time
    ) -> None:
        strategy = settings.strategy
        self.predictor = predictor
        self.gate = build_gate(strategy)
        self.auto_label = build_auto_label(strategy)
        self.ledger = AuditLedger()
        self._clock = clock
        self._max_label_delay_s = strategy.auto_label.max_label_delay_s
        pauses = self.auto_label is not None and strategy.auto_label.pause_on_shift
        self._shift = ShiftMonitor() if pauses else None
        self._watching_model = False  # the monitor watches confidences (no features)
        self._issued: deque[tuple[float, AutoLabel]] = deque(maxlen=ISSUED_KEPT)
        self._retractions: list[Record] = []  # produced with the next batch
        self._kept_samples: dict[str, Sample] = {}  # of the newest auto-labels, oldest first
        self._ask_again: list[Sample] = []  # retracted, newest first
        self._swap_credit = 0.0  # uncertain picks a retracted sample may take the place of
        self._ask_again_on = strategy.auto_label.ask_retracted
        self.allowance = LabelAllowance(
            self.gate.budget, bank=max(2.0, self.gate.budget * BANKED_SAMPLES)
        )
        self.explore = ExploreGate(
            share=strategy.explore, budget=self.gate.budget, seed=seed_for(strategy.seed, "explore")
        )
        self._explore_share = strategy.explore  # unless a version comes with its own
        self._score = build_score(strategy.score, seed=strategy.seed)
        check_embeddings(predictor, self._score.needs_embeddings, "strategy.score", strategy.score)
        if (
            why := self._score.refuses(settings.serve.max_batch, len(predictor.classes))
        ) is not None:
            raise ConfigError(f"config error: strategy.score: {why}: lower serve.max_batch")
        self._at_random_score = build_score("random", seed=strategy.seed)
        diverse = strategy.cold_start == "diverse"
        self.coverage = Coverage(seed=seed_for(strategy.seed, "cold_start")) if diverse else None
        self._at_random = strategy.score == "random"
        self._passes = strategy.mc_passes
        self._topics = settings.topics
        self._max_output_bytes = settings.transport.max_record_bytes
        self._max_sample_bytes = settings.serve.sample_limit(self._max_output_bytes)
        self._top_k = settings.serve.top_k

    def use(
        self,
        predictor: Predictor,
        thresholds: Mapping[str, float],
        boost: ExploreBoost | None = None,
    ) -> None:
        """Serve with ``predictor`` from the next batch on, with the thresholds announced for it,
        and start ``boost`` (a drift's exploration boost) unless it was started already."""
        if predictor is not self.predictor and self._watching_model and self._shift is not None:
            self._shift.reset()  # another model's confidences: a new baseline
        self.predictor = predictor
        if "budget" in thresholds:
            self.gate.set_threshold(thresholds["budget"])
        self.explore.set_threshold(thresholds.get("explore", self._explore_share))
        if boost is not None:
            self.explore.start_boost(boost.share, boost.samples, boost.id)
            if boost.drift_since is not None:
                since = boost.drift_since
                # dated early on purpose, so it may reach into the old concept: its samples
                # are not asked again (their answers would train the new concept on the old)
                self._retract(lambda _, auto: auto.labeled_at >= since, "a drift began", False)
        if self.auto_label is not None:
            self.auto_label.set_active(
                thresholds.get("auto_label"),
                thresholds.get("auto_label_bound", 0.0),
                bool(thresholds.get("auto_label_out_of_reach", 0.0)),
            )

    def plan(self, envelopes: Sequence[Envelope]) -> Plan:
        """Route ``envelopes``; bad records, and samples whose output would be over
        ``transport.max_record_bytes``, become dead letters with their reason."""
        plan = Plan(records=list(self._retractions), retracted=len(self._retractions))
        decoded = decode_batch(Sample, [e.value for e in envelopes], self._max_sample_bytes)
        samples = [message for _, message in decoded.valid]
        encoded = self.predictor.encode(samples)
        dead = decoded.invalid + [(decoded.valid[i][0], why) for i, why in encoded.rejected]
        for index, reason in sorted(dead):
            self._dead_letter(plan, envelopes[index], reason)
        kept = [(envelopes[decoded.valid[i][0]], samples[i]) for i in encoded.kept]
        if kept:
            self._route(plan, kept, encoded.inputs)
        return plan

    def commit(self, plan: Plan) -> None:
        """Apply the gate updates of a committed ``plan``."""
        if plan.gate is not None:
            self.gate.update(plan.gate)
        if plan.auto_label is not None and self.auto_label is not None:
            self.auto_label.update(plan.auto_label)
        if plan.explore is not None:
            self.explore.update(plan.explore)
        if plan.covered is not None and self.coverage is not None:
            self.coverage.update(*plan.covered)
        if plan.allowance is not None:
            self.allowance = plan.allowance
        del self._retractions[: plan.retracted]
        del self._ask_again[: plan.asked_again]
        self._swap_credit = plan.swap_credit if self._ask_again else 0.0
        if self.auto_label is None:
            return
        at, epoch, live = self._clock(), self.auto_label.epoch, self.auto_label.auto_labeling
        for sample_id, predicted, confidence in plan.audits:
            self.ledger.record(sample_id, Audit(predicted, confidence, at, epoch, live))
        for auto, sample in plan.issued:
            self._issued.append((at, auto))
            if sample is not None:
                self._kept_samples[auto.id] = sample
        while len(self._kept_samples) > ASKED_AGAIN_KEPT:
            del self._kept_samples[next(iter(self._kept_samples))]
        if (
            plan.signals is not None
            and self._shift is not None
            and self._shift.update(plan.signals)
        ):
            watched = "confidences" if self._watching_model else "features"
            log.warning(
                "the served %s shifted: auto-labeling paused until audits clear it", watched
            )
            self.auto_label.pause("shift")

    def learn(self, answers: Sequence[tuple[str, str]]) -> None:
        """Answers (sample id, label) from ``labels``: those to this replica's audits tell the
        auto-label gate how its confident predictions did."""
        if self.auto_label is None:
            return
        outcomes = [o for i, label in answers if (o := self.ledger.answer(i, label)) is not None]
        if not outcomes:
            return
        went_wrong = self.auto_label.observe(
            [o.audit.confidence for o in outcomes],
            [o.correct for o in outcomes],
            [o.audit.epoch for o in outcomes],
            [o.audit.asked_at for o in outcomes],
            [o.audit.while_auto_labeling for o in outcomes],
        )
        if went_wrong is not None:
            self._retract(lambda at, _: at >= went_wrong, "audits turned wrong", self._ask_again_on)

    def _retract(
        self, newer: Callable[[float, AutoLabel], bool], why: str, ask_again: bool
    ) -> None:
        """Retract (each once) the newest auto-labels, those ``newer`` says yes to (it gets
        the clock time each was issued at and the auto-label), and ask their samples again if
        ``ask_again``."""
        withdrawn = []
        while self._issued and newer(*self._issued[-1]):
            withdrawn.append(self._issued.pop()[1])
        kept = [self._kept_samples.pop(auto.id, None) for auto in withdrawn]
        again = [sample for sample in kept if sample is not None and ask_again]
        self._ask_again = (again + self._ask_again)[:ASKED_AGAIN_KEPT]
        at = now()
        for auto in reversed(withdrawn):
            retraction = Retraction(
                id=auto.id, label=auto.label, model_version=auto.model_version,
                labeled_at=auto.labeled_at, retracted_at=at,
            )  # fmt: skip
            key = auto.id.encode()
            self._retractions.append(Record(self._topics.retractions, encode(retraction), key=key))
        if withdrawn:
            log.warning(
                "%s: retracting %d auto-labels, asking %d of them again",
                why, len(withdrawn), len(again),
            )  # fmt: skip

    def check_evidence(self) -> int:
        """Hold auto-labeling back while audit answers are overdue; how many are."""
        if self.auto_label is None:
            return 0
        overdue = self.ledger.overdue(self._clock(), self._max_label_delay_s)
        self.auto_label.set_stale(overdue > 0)
        return overdue

    def _decide(
        self, plan: Plan, utilities: np.ndarray, confidences: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Routes and reasons of the batch: audits and exploration first, then the budget gate
        with those counted, then the allowance; the decisions go into ``plan``."""
        n = len(utilities)
        routes, reasons = np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int8)
        cold = self.predictor.version == 0
        if not cold and self.auto_label is not None:
            plan.auto_label = self.auto_label.decide(confidences)
            routes, reasons = plan.auto_label.routes.copy(), plan.auto_label.reasons.copy()
        if not cold and not self._at_random:
            plan.explore = self.explore.decide(reasons == Reason.AUDIT)
            explored = plan.explore.routes == Route.ORACLE
            routes[explored], reasons[explored] = Route.ORACLE, Reason.EXPLORE
        plan.gate = self.gate.decide(utilities, routes == Route.ORACLE)
        asked = plan.gate.routes == Route.ORACLE  # wins over an auto-label
        routes[asked], reasons[asked] = Route.ORACLE, plan.gate.reasons[asked]
        if cold or self._at_random:
            reasons[reasons == Reason.UNCERTAIN] = Reason.EXPLORE
        wanted = routes == Route.ORACLE
        granted, plan.allowance = self.allowance.grant(wanted)
        refused = wanted & ~granted
        plan.over_budget.update(Reason(r).label for r in reasons[refused].tolist())
        routes[refused], reasons[refused] = Route.SKIP, Reason.NONE
        return routes, reasons

    def _signals(self, samples: list[Sample], confidences: np.ndarray) -> np.ndarray | None:
        """What the shift monitor watches in a batch: the features, when its samples all have
        as many; else the confidences."""
        if self._shift is None:
            return None
        vectors = [sample.features for sample in samples if sample.features is not None]
        if len(vectors) == len(samples) and len({len(v) for v in vectors}) == 1:
            self._watching_model = False
            return np.asarray(vectors, dtype=np.float64)
        self._watching_model = True
        return confidences

    def _cover(self, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray] | None:
        """The batch's features and their cold-start utilities, when the cold start covers
        them: no trained model yet, and samples with features."""
        if self.coverage is None or self.predictor.version != 0:
            return None
        features = feature_matrix(samples)
        return None if features is None else (features, self.coverage.utilities(features))

    def _dead_letter(self, plan: Plan, envelope: Envelope, reason: str) -> None:
        log.warning("dead letter %s: %s", envelope, reason)
        topic, limit = self._topics.dead_letter, self._max_output_bytes
        plan.records.append(dead_letter(envelope, reason, topic, limit))
        plan.routes["dead_letter"] += 1

    def _predict(self, inputs: Any) -> tuple[torch.Tensor, np.ndarray]:
        """Class probabilities [B, C] (on the model's device) and utilities [B]."""
        if self.predictor.version == 0:  # untrained: explore at random
            probabilities = self.predictor.probabilities(inputs)
            utilities = self._at_random_score(probabilities)
        else:
            probabilities, utilities = probabilities_and_utilities(
                self.predictor, self._score, inputs, self._passes
            )
        return probabilities, np.asarray(torch.as_tensor(utilities).double().cpu())

    def _route(self, plan: Plan, kept: list[tuple[Envelope, Sample]], inputs: Any) -> None:
        started = time.perf_counter()
        probabilities, utilities_np = self._predict(inputs)
        plan.predict_seconds = time.perf_counter() - started
        finite_p = torch.isfinite(probabilities).all(dim=1).cpu().numpy()
        finite = finite_p & np.isfinite(utilities_np)
        if not finite.all():  # a model can still produce NaN for some inputs
            for bad in np.flatnonzero(~finite):
                why = (
                    f"score: the utility is not finite (got {utilities_np[bad]})"
                    if finite_p[bad]
                    else "model: the class probabilities are not finite"
                )
                self._dead_letter(plan, kept[bad][0], why)
            keep = np.flatnonzero(finite)
            if not len(keep):
                return
            kept = [kept[i] for i in keep]
            probabilities = probabilities[torch.as_tensor(keep, device=probabilities.device)]
            utilities_np = utilities_np[keep]
        top_p, top_i = probabilities.max(dim=1)
        top_p_np, top_i_np = top_p.cpu().numpy(), top_i.cpu().numpy()

        cover = self._cover([sample for _, sample in kept])
        if cover is not None:
            utilities_np = cover[1]
        routes, reasons = self._decide(plan, utilities_np, top_p_np)
        if self._ask_again:
            self._make_room(plan, routes, reasons, utilities_np)
        if cover is not None:
            plan.covered = (cover[0], routes == Route.ORACLE)
        version, at, classes = self.predictor.version, now(), self.predictor.classes
        plan.signals = self._signals([sample for _, sample in kept], top_p_np)
        for audited in np.flatnonzero(reasons == Reason.AUDIT).tolist():
            predicted = classes[top_i_np[audited]]
            plan.audits.append((kept[audited][1].id, predicted, float(top_p_np[audited])))
        asked = torch.as_tensor(routes == Route.ORACLE, device=probabilities.device)
        guesses = iter(top_guesses(probabilities[asked], classes, self._top_k))
        for row, (envelope, sample) in enumerate(kept):
            route = Route(routes[row])
            if sample.ts is not None:
                plan.event_times.append(sample.ts.timestamp())
            if route == Route.SKIP:
                plan.routes["skip"] += 1
                continue
            if route == Route.ORACLE:
                message: LabelRequest | AutoLabel = label_request(
                    sample, next(guesses), float(utilities_np[row]), Reason(reasons[row]).label,
                    version, at,
                )  # fmt: skip
                topic = self._topics.label_requests
            else:  # Route.AUTO_LABEL
                message = AutoLabel(
                    id=sample.id, label=classes[top_i_np[row]],
                    confidence=float(top_p_np[row]), model_version=version, labeled_at=at,
                )  # fmt: skip
                topic = self._topics.auto_labels
            record = Record(topic, encode(message), key=sample.id.encode())
            if (size := record_size(record)) > self._max_output_bytes:
                why = f"{topic} record of {size} bytes, over transport.max_record_bytes"
                self._dead_letter(plan, envelope, f"{why} ({self._max_output_bytes})")
                continue
            plan.routes[ROUTE_NAMES[route]] += 1
            plan.records.append(record)
            if isinstance(message, AutoLabel):
                small = len(envelope.value or b"") <= ASKED_AGAIN_MAX_BYTES
                plan.issued.append((message, sample if small else None))
        if plan.asked_again:
            self._ask_retracted(plan, version, at)

    def _make_room(
        self, plan: Plan, routes: np.ndarray, reasons: np.ndarray, utilities: np.ndarray
    ) -> None:
        """Skip the least uncertain of the batch's uncertain picks, as many as retracted
        samples may take their places (``plan.asked_again``)."""
        uncertain = np.flatnonzero(reasons == Reason.UNCERTAIN)
        credit = self._swap_credit + ASKED_AGAIN_SHARE * len(uncertain)
        swaps = min(int(credit), len(uncertain), len(self._ask_again))
        plan.asked_again, plan.swap_credit = swaps, credit - swaps
        given_up = uncertain[np.argsort(utilities[uncertain], kind="stable")[:swaps]]
        routes[given_up], reasons[given_up] = Route.SKIP, Reason.NONE

    def _ask_retracted(self, plan: Plan, version: int, at: datetime) -> None:
        """Label requests (reason ``retracted``) for the head of the ask-again queue, with the
        current model's guesses."""
        samples = self._ask_again[: plan.asked_again]
        encoded = self.predictor.encode(samples)
        if not len(encoded.kept):
            return
        probabilities, utilities = self._predict(encoded.inputs)
        guesses = top_guesses(probabilities, self.predictor.classes, self._top_k)
        for row, guess, utility in zip(encoded.kept, guesses, utilities.tolist(), strict=True):
            sample = samples[row]
            request = label_request(sample, guess, utility, "retracted", version, at)
            record = Record(self._topics.label_requests, encode(request), key=sample.id.encode())
            if record_size(record) <= self._max_output_bytes:
                plan.records.append(record)

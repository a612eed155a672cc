"""Every Prometheus metric streamal exports, on an injected registry.

Names carry the ``streamal_`` prefix and base units; counters end in ``_total``; no label ever
holds a per-sample value. Each process uses the part that concerns it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTES = ("oracle", "auto_label", "skip", "dead_letter")
HELD_BACK = ("shift", "audits", "stale")  # why auto-labeling is held back
STOPPING_RULES = ("accuracy_plateau", "stable_predictions", "low_uncertainty", "budget_spent")
ANSWER_PATHS = ("webhook", "reconciliation")  # how an annotation reached the bridge
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class Metrics:
    """The metric objects, registered on ``registry`` (a fresh one when not given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.samples = Counter(
            "streamal_samples", "Samples routed, by route", ["route"], registry=r
        )
        for route in ROUTES:
            self.samples.labels(route)
        self.batch_size = Histogram(
            "streamal_batch_size", "Samples per processed batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.predict_seconds = Histogram(
            "streamal_predict_seconds", "Model time per batch (predict + score)",
            buckets=_FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.end_to_end_seconds = Histogram(
            "streamal_end_to_end_seconds", "From a sample's event time to its routing",
            buckets=sorted({*_FAST_BUCKETS, *_SLOW_BUCKETS}), registry=r,
        )  # fmt: skip
        self.batch_failures = Counter(
            "streamal_batch_failures", "Batches that failed on the transport, to be retried",
            registry=r,
        )  # fmt: skip
        self.batch_failing_seconds = Gauge(
            "streamal_batch_failing_seconds",
            "How long batches have failed in a row (0 while they commit)", registry=r,
        )  # fmt: skip
        self.threshold = Gauge(
            "streamal_threshold", "Current threshold of each gate", ["gate"], registry=r
        )
        self.label_rate = Gauge(
            "streamal_label_rate", "Share of samples sent to the oracle over the budget window",
            registry=r,
        )  # fmt: skip
        self.label_budget = Gauge(
            "streamal_label_budget", "Target share of samples sent to the oracle", registry=r
        )
        self.over_budget = Counter(
            "streamal_requests_over_budget",
            "Label requests the gates wanted and the label allowance refused (skipped), by reason",
            ["reason"], registry=r,
        )  # fmt: skip
        self.model_version = Gauge("streamal_model_version", "Model version in use", registry=r)
        self.model_swaps = Counter("streamal_model_swaps", "Models hot-swapped in", registry=r)
        self.model_rejections = Counter(
            "streamal_model_rejections", "Announced models refused (corrupt or mismatched)",
            registry=r,
        )  # fmt: skip
        self.labels_received = Counter(
            "streamal_labels_received", "Oracle labels received", registry=r
        )
        self.labels_expired = Counter(
            "streamal_labels_expired", "Labels dropped after waiting too long for their request",
            registry=r,
        )  # fmt: skip
        self.label_delay_seconds = Histogram(
            "streamal_label_delay_seconds", "From label request to oracle label",
            buckets=_SLOW_BUCKETS, registry=r,
        )  # fmt: skip
        self.answered_accuracy = Gauge(
            "streamal_answered_accuracy",
            "Share of the last 500 answered label requests whose prediction at request time was "
            "right (the asked samples, the hardest ones; not the whole stream's accuracy)",
            registry=r,
        )  # fmt: skip
        self.auto_label_precision_lower_bound = Gauge(
            "streamal_auto_label_precision_lower_bound",
            "Lower confidence bound of auto-label precision, from audits", registry=r,
        )  # fmt: skip
        self.auto_label_out_of_reach = Gauge(
            "streamal_auto_label_out_of_reach",
            "1 while the audits put every auto-label threshold out of reach of the precision "
            "target (even the most confident are right too seldom): serve audits a quarter as "
            "many", registry=r,
        )  # fmt: skip
        self.auto_label_paused = Gauge(
            "streamal_auto_label_paused",
            "1 while this replica holds auto-labeling back, by reason: shift (its inputs shifted) "
            "or audits (its audits turned wrong), until audits since support the target; or "
            "stale (audit answers overdue)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.auto_label_pauses = Counter(
            "streamal_auto_label_pauses", "Auto-label pauses begun, by reason", ["reason"],
            registry=r,
        )  # fmt: skip
        for reason in HELD_BACK:
            self.auto_label_paused.labels(reason)
            self.auto_label_pauses.labels(reason)
        self.auto_labels_retracted = Counter(
            "streamal_auto_labels_retracted",
            "Auto-labels retracted (on auto-label-retractions): audits turned wrong after them,"
            " or a drift the trainer found began before them",
            registry=r,
        )  # fmt: skip
        self.retracted_asked_again = Counter(
            "streamal_retracted_asked_again",
            "Retracted auto-labels whose samples were asked again, in the place of uncertain"
            " picks (reason retracted)",
            registry=r,
        )  # fmt: skip
        self.audits_overdue = Gauge(
            "streamal_audits_overdue",
            "Audits of this replica unanswered past strategy.auto_label.max_label_delay_s",
            registry=r,
        )  # fmt: skip
        self.stop_signal = Gauge(
            "streamal_stop_signal",
            "1 while a stopping rule says more labels no longer pay, by rule: accuracy_plateau, "
            "stable_predictions, low_uncertainty, budget_spent (judged after each round)",
            ["rule"], registry=r,
        )  # fmt: skip
        for rule in STOPPING_RULES:
            self.stop_signal.labels(rule)
        self.stop_set_agreement = Gauge(
            "streamal_stop_set_agreement",
            "Cohen's kappa between the last two rounds' predictions on the stop set",
            registry=r,
        )  # fmt: skip
        self.stop_set_uncertainty = Gauge(
            "streamal_stop_set_uncertainty",
            "Mean least confidence of the model on the stop set, after the last round",
            registry=r,
        )  # fmt: skip
        self.drift_detected = Counter(
            "streamal_drift_detected", "Drifts detected", ["detector"], registry=r
        )
        for detector in ("error", "confidence"):
            self.drift_detected.labels(detector)
        self.training_runs = Counter(
            "streamal_training_runs", "Training rounds by outcome", ["outcome"], registry=r
        )
        for outcome in ("published", "rejected", "too_few_labels"):
            self.training_runs.labels(outcome)
        self.training_seconds = Histogram(
            "streamal_training_seconds", "Duration of a training round", buckets=_SLOW_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.bridge_tasks_created = Counter(
            "streamal_bridge_tasks_created", "Label requests imported as Label Studio tasks",
            registry=r,
        )  # fmt: skip
        self.bridge_requests_known = Counter(
            "streamal_bridge_requests_known",
            "Label requests read again whose task already exists (replays), not imported again",
            registry=r,
        )  # fmt: skip
        self.bridge_answers = Counter(
            "streamal_bridge_answers",
            "Annotations turned into labels, by the path that brought them", ["path"],
            registry=r,
        )  # fmt: skip
        for path in ANSWER_PATHS:
            self.bridge_answers.labels(path)
        self.bridge_reconciliations = Counter(
            "streamal_bridge_reconciliations", "Passes over every annotation of the project done",
            registry=r,
        )  # fmt: skip
        self.bridge_dead_letters = Counter(
            "streamal_bridge_dead_letters",
            "Label requests or annotations sent to dead-letter (unreadable, unknown class)",
            registry=r,
        )  # fmt: skip
        self.bridge_annotations_deleted = Counter(
            "streamal_bridge_annotations_deleted",
            "Annotations deleted in Label Studio (their labels stay; see the README)",
            registry=r,
        )  # fmt: skip
        self.bridge_task_lag_seconds = Histogram(
            "streamal_bridge_task_lag_seconds", "From a label request to its task in Label Studio",
            buckets=_SLOW_BUCKETS, registry=r,
        )  # fmt: skip
        self.bridge_answer_lag_seconds = Histogram(
            "streamal_bridge_answer_lag_seconds", "From an annotation to its label on labels",
            buckets=_SLOW_BUCKETS, registry=r,
        )  # fmt: skip
        self.bridge_predictions = Counter(
            "streamal_bridge_predictions",
            "Predictions served to Label Studio as its ML backend, or refreshed after a new "
            "model version", ["kind"], registry=r,
        )  # fmt: skip
        for kind in ("ml_backend", "refresh"):
            self.bridge_predictions.labels(kind)
        self.bridge_failures = Counter(
            "streamal_bridge_failures", "Calls to Label Studio or the transport that failed",
            registry=r,
        )  # fmt: skip

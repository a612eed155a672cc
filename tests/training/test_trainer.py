"""The trainer on its own: labels in, models out; crashes, bad labels and foreign stores."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamal.config import Settings
from streamal.errors import ConfigError
from streamal.messages import (
    DeadLetter,
    LabelRequest,
    ModelAnnouncement,
    OracleLabel,
    decode,
    encode,
)
from streamal.model import ModelStore
from streamal.model.config import MLP_ALONE
from streamal.simulation.streams import gaussian_classes
from streamal.training.labels import LabelStore, PendingDrift
from streamal.training.trainer import Trainer
from streamal.transport import Record, open_transport, topic_specs
from tests.conftest import settings_for, unique
from tests.helpers import read_all, wait_for, with_fresh_topics, write_config

ROOT = Path(__file__).parent.parent.parent


def trainer_settings(cluster: Settings, tmp_path: Path) -> Settings:
    data = with_fresh_topics(cluster).model_dump(mode="json")
    data["transport"]["kafka"]["session_timeout_ms"] = 6000  # a killed member leaves soon
    data |= {
        "model": {"n_features": 10, "classes": ["c0", "c1", "c2"], "hidden": [16],
                  "store": str(tmp_path / "m"), "fit": {"max_epochs": 20}},
        "train": {"group": unique("train"), "label_store": str(tmp_path / "labels.sqlite"),
                  "min_new_labels": 100, "interval_s": 2, "metrics_address": "127.0.0.1:0"},
    }  # fmt: skip
    return Settings(**data)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Trainer settings on the embedded transport."""
    return trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)


def with_train(settings: Settings, **changes: object) -> Settings:
    """``settings`` with ``changes`` to its ``train`` section."""
    return settings.model_copy(update={"train": settings.train.model_copy(update=changes)})


def produce_labeled(
    settings: Settings,
    count: int,
    seed: int = 0,
    reason: str = "uncertain",
    spread: float = 1.0,
    only: str | None = None,
) -> int:
    """Requests (asked for ``reason``) and answers for ``count`` samples of `gaussian_classes`:
    some answers early, some twice (``only``: just the ``labels`` or the ``label_requests``
    records); the number of answer records produced. Audits were served confident (0.97), and
    right 19 times in 20."""
    stream = gaussian_classes(count, spread=spread, seed=seed)
    chance = random.Random(seed)
    answers = 0
    at = datetime.now(UTC)
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for i, (features, label) in enumerate(zip(stream.features, stream.labels, strict=True)):
            sample_id = f"s{i}"
            prediction = [{"label": "c0", "p": 0.5}, {"label": "c1", "p": 0.3}]
            if reason == "audit":
                right = stream.classes[label] if i % 20 else stream.classes[label - 1]
                prediction = [{"label": right, "p": 0.97}]
            request = LabelRequest(
                id=sample_id, features=features.tolist(), utility=0.5, reason=reason,
                prediction=prediction, model_version=0, requested_at=at,
            )  # fmt: skip
            answer = OracleLabel(id=sample_id, label=stream.classes[label], labeled_at=at)
            topics = settings.topics
            first, second = (
                (topics.labels, topics.label_requests)  # the answer before its request
                if chance.random() < 0.2
                else (topics.label_requests, topics.labels)
            )
            for topic in (first, second):
                if only is not None and topic != getattr(topics, only):
                    continue
                message = answer if topic == topics.labels else request
                producer.produce(Record(topic, encode(message), key=sample_id.encode()))
            answers += 1
            if chance.random() < 0.1 and only != "label_requests":  # asked twice
                producer.produce(Record(topics.labels, encode(answer), key=sample_id.encode()))
                answers += 1
            if i % 200 == 199:
                producer.flush()
    return answers


def run_train(config: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamal", "train", "-c", config, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def stored_answers(path: Path) -> int:
    """How many answers the label store at ``path`` holds (0 before it exists)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as store:
            return int(store.execute("SELECT count(*) FROM votes").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or busy: nothing observed this time
        return 0


def test_a_killed_trainer_loses_no_label_and_republishes_consistently(
    cluster: Settings, tmp_path: Path
) -> None:
    settings = trainer_settings(cluster, tmp_path)
    config = write_config(settings, tmp_path / "train.yaml")
    answers = produce_labeled(settings, 3000)
    # each run is killed once the label store holds its random target of answers (a random
    # point of the stream, however fast the machine), past where the last run stopped
    for target in sorted(random.Random(3).sample(range(1, answers), 3)):
        trainer = run_train(config)

        def reached(target: int = target, trainer: subprocess.Popen[str] = trainer) -> bool:
            assert trainer.poll() is None, trainer.communicate()[1][-2000:]
            return stored_answers(settings.train.label_store) >= target

        wait_for(reached, timeout_s=180, interval_s=0.05)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    trainer = run_train(config, "--idle-timeout", "8")
    _, stderr = trainer.communicate(timeout=300)
    assert trainer.returncode == 0, stderr[-2000:]

    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert labels.counts() == {"requests": 3000, "labeled": 3000, "votes": answers, "pending": 0}
    labels.close()
    store = ModelStore(settings.model.store, settings.model.name)
    latest = store.latest()
    assert latest is not None
    versions = [store.checkpoint(v).version for v in range(1, latest.version + 1)]
    assert versions == list(range(1, latest.version + 1))  # complete and without gaps
    announced = [
        decode(ModelAnnouncement, e.value) for e in read_all(settings, settings.topics.models)
    ]
    assert announced[-1].version == latest.version and announced[-1].sha256 == latest.sha256


def test_a_restarted_trainer_trains_on_the_labels_its_predecessor_stored_but_never_used(
    settings: Settings,
) -> None:
    produce_labeled(settings, 300)
    patient = with_train(
        settings, min_new_labels=10_000, first_round_labels=10_000, interval_s=3600.0
    )
    Trainer(patient, idle_timeout_s=1).run()  # stores every label, stops before a round
    store = ModelStore(settings.model.store, settings.model.name)
    assert store.latest() is None
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert labels.counts()["labeled"] == 300
    labels.close()

    restarted = Trainer(settings, idle_timeout_s=1)
    restarted.run()  # no new record comes: the stored labels alone are due for a round
    latest = store.latest()
    assert latest is not None and latest.version == 1
    Trainer(settings, idle_timeout_s=1).run()  # those labels were used: nothing to do
    assert store.latest() == latest


def test_answers_that_came_before_their_requests_count_once_they_meet_them(
    settings: Settings,
) -> None:
    produce_labeled(settings, 300, only="labels")
    Trainer(settings, idle_timeout_s=1).run()  # answers, but nothing to train on yet
    store = ModelStore(settings.model.store, settings.model.name)
    assert store.latest() is None
    produce_labeled(settings, 300, only="label_requests")
    Trainer(settings, idle_timeout_s=1).run()  # the requests join them: 300 new labels
    latest = store.latest()
    assert latest is not None and latest.version == 1


def test_a_champion_that_learned_its_judges_is_not_judged_on_them(settings: Settings) -> None:
    trainer = Trainer(settings)
    store = ModelStore(settings.model.store, settings.model.name)
    with trainer.connected() as transport:
        produce_labeled(settings, 8)  # 4 would be held out: a first round learns from all 8
        assert trainer.step(transport, 1.0) and store.versions() == [1]
        assert trainer.champion is not None and trainer.champion.learned_judges
        produce_labeled(settings, 300)  # the same 8 first, 4 of them among the held-out now
        while trainer.step(transport, 1.0):
            pass
        second = store.checkpoint(2)  # published whatever v1 scores on labels it learned
        assert "champion_accuracy" not in second.metrics and second.metrics.get("accuracy")
        produce_labeled(settings, 600)  # v2 held its judges out: it is judged from now on
        while trainer.step(transport, 1.0):
            pass
    runs = trainer.metrics.registry.get_sample_value
    judged = [v for v in store.versions()[2:] if "champion_accuracy" in store.checkpoint(v).metrics]
    assert judged or runs("streamal_training_runs_total", {"outcome": "rejected"})


def test_a_kept_champion_gets_the_thresholds_of_the_labels_that_came_since_its_round(
    settings: Settings,
) -> None:
    auto_label = {"min_audits": 100, "target_precision": 0.9}  # reachable on overlapping classes
    # a blend's other parts learn on while its MLP diverges: the challenger wins
    alone = settings.model.model_copy(update=MLP_ALONE)
    settings = settings.model_copy(
        update={"strategy": Settings(strategy={"auto_label": auto_label}).strategy, "model": alone}
    )
    produce_labeled(settings, 300, spread=3.0)  # overlapping classes: no perfect model
    Trainer(settings, max_rounds=1).run()
    store = ModelStore(settings.model.store, settings.model.name)
    first = store.latest()
    assert first is not None and "auto_label" not in first.thresholds  # no audits yet

    produce_labeled(settings, 700, reason="audit", spread=3.0)  # the same 300, then 400 audits
    recipe = settings.model.fit.model_copy(update={"learning_rate": 5000.0})
    wild = settings.model_copy(  # challengers diverge
        update={"model": settings.model.model_copy(update={"fit": recipe})}
    )
    Trainer(wild, max_rounds=1).run()
    kept = store.latest()
    assert kept is not None and kept.version == 1 and kept.sha256 == first.sha256
    assert 0.5 < kept.thresholds["auto_label"] < 1  # enough audits now: auto-labeling starts
    announced = [
        decode(ModelAnnouncement, e.value) for e in read_all(settings, settings.topics.models)
    ]
    assert announced[-1].version == 1 and announced[-1].thresholds == kept.thresholds


def test_audits_right_too_seldom_for_the_target_announce_auto_labeling_out_of_reach(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # audits served at 0.97 and right 19 times in 20: no threshold can vouch for 99% (the
    # 268 most confident, the fewest that could, are right too seldom by their upper bound)
    caplog.set_level(logging.INFO, logger="streamal.training.trainer")
    target = {"min_audits": 100, "target_precision": 0.99}
    auto_label = Settings(strategy={"auto_label": target}).strategy
    settings = settings.model_copy(update={"strategy": auto_label})
    produce_labeled(settings, 300)
    produce_labeled(settings, 700, reason="audit")  # the same 300, then 400 audits
    trainer = Trainer(settings, max_rounds=1)
    trainer.run()
    latest = ModelStore(settings.model.store, settings.model.name).latest()
    assert latest is not None and "auto_label" not in latest.thresholds
    assert latest.thresholds["auto_label_out_of_reach"] == 1.0
    announced = [
        decode(ModelAnnouncement, e.value) for e in read_all(settings, settings.topics.models)
    ]
    assert announced[-1].thresholds == latest.thresholds
    gauge = trainer.metrics.registry.get_sample_value("streamal_auto_label_out_of_reach")
    assert gauge == 1.0
    assert sum("auto-labeling out of reach" in r.getMessage() for r in caplog.records) == 1


def test_a_label_of_an_unknown_class_is_dead_lettered_and_never_trained_on(
    settings: Settings,
) -> None:
    produce_labeled(settings, 50)
    with open_transport(settings) as producer:
        zebra = OracleLabel(id="s3", label="zebra", labeled_at=0)
        producer.produce(Record(settings.topics.labels, encode(zebra), key=b"s3"))
        producer.produce(Record(settings.topics.labels, b"{not json", key=b"x"))
    Trainer(settings, idle_timeout_s=2).run()
    letters = [decode(DeadLetter, e.value) for e in read_all(settings, settings.topics.dead_letter)]
    assert sorted(letter.error for letter in letters)[1] == "label: unknown class 'zebra'"
    assert any(letter.error.startswith("invalid JSON") for letter in letters)
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert "zebra" not in labels.labeled().labels


def test_null_values_requests_the_model_cannot_read_and_answers_from_the_future_are_dead_lettered(
    cluster: Settings, tmp_path: Path
) -> None:
    settings = trainer_settings(cluster, tmp_path)
    produce_labeled(settings, 50)
    stream = gaussian_classes(50, spread=1.0, seed=0)  # the answers produce_labeled gave
    truth = stream.classes[stream.labels[3]]
    other = next(name for name in stream.classes if name != truth)
    topics = settings.topics
    with open_transport(settings) as producer:
        producer.produce(Record(topics.labels, None, key=b"s1"))
        producer.produce(Record(topics.label_requests, None, key=b"s2"))
        late = OracleLabel(id="s3", label=other, labeled_at="9999-12-31T00:00:00Z")
        producer.produce(Record(topics.labels, encode(late), key=b"s3"))
        bare = LabelRequest(
            id="p1", payload="text only", prediction=[{"label": "c0", "p": 0.5}], utility=0.5,
            reason="explore", model_version=0, requested_at=0,
        )  # fmt: skip
        producer.produce(Record(topics.label_requests, encode(bare), key=b"p1"))
        narrow = bare.model_copy(update={"id": "n1", "payload": None, "features": [1.0, 2.0]})
        producer.produce(Record(topics.label_requests, encode(narrow), key=b"n1"))
        empty = bare.model_copy(update={"id": "e1", "payload": None})
        producer.produce(Record(topics.label_requests, encode(empty), key=b"e1"))
    Trainer(settings, idle_timeout_s=2).run()
    letters = [decode(DeadLetter, e.value) for e in read_all(settings, topics.dead_letter)]
    assert sorted(letter.error for letter in letters) == [
        "features and payload: both missing, so there is nothing to learn",
        "labeled_at: must be at most 300 s in the future (got 9999-12-31T00:00:00Z)",
        "null value (tombstone): not a label request",
        "null value (tombstone): not an oracle label",
        "the model cannot read it: features: expected 10 values (got 2)",
        "the model cannot read it: payload given but no featurizer configured (model.featurizer)",
    ]
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert labels.label_of("s3") == truth  # the answer from the future did not win `latest`


@pytest.mark.parametrize("store", ["label_store", "model_store"])
def test_a_foreign_store_stops_the_trainer_untouched(
    settings: Settings, tmp_path: Path, store: str
) -> None:
    if store == "label_store":
        with sqlite3.connect(settings.train.label_store) as db:
            db.execute("CREATE TABLE invoices(x)")
        guarded = settings.train.label_store
    else:
        settings.model.store.mkdir(parents=True)
        (settings.model.store / "thesis.tex").write_text("precious")
        guarded = settings.model.store / "thesis.tex"
    before = guarded.read_bytes()
    config = write_config(settings, tmp_path / "c.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "streamal", "train", "-c", config],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env=os.environ,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "not a streamal" in result.stderr
    assert guarded.read_bytes() == before


def test_a_user_score_that_does_not_load_stops_the_trainer_at_start(settings: Settings) -> None:
    strategy = settings.strategy.model_copy(update={"score": "tests.plugins_for_tests:nope"})
    with pytest.raises(ConfigError) as caught:
        Trainer(settings.model_copy(update={"strategy": strategy}))
    assert str(caught.value) == (
        "config error: strategy.score: module 'tests.plugins_for_tests' has no attribute 'nope'"
    )


def produce_audits(
    settings: Settings,
    first: int,
    count: int,
    right: bool,
    reason: str = "audit",
    confidence: float = 0.97,
) -> None:
    """``count`` audits (or requests asked for ``reason``), served at ``confidence``, answered
    right or all wrong."""
    stream = gaussian_classes(first + count, seed=1)
    at = datetime.now(UTC)
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for i in range(first, first + count):
            truth = stream.classes[stream.labels[i]]
            predicted = truth if right else stream.classes[stream.labels[i] - 1]
            request = LabelRequest(
                id=f"s{i}", features=stream.features[i].tolist(), utility=0.0, reason=reason,
                prediction=[{"label": predicted, "p": confidence}], model_version=1,
                requested_at=at,
            )  # fmt: skip
            answer = OracleLabel(id=f"s{i}", label=truth, labeled_at=at)
            key = f"s{i}".encode()
            producer.produce(Record(settings.topics.label_requests, encode(request), key=key))
            producer.produce(Record(settings.topics.labels, encode(answer), key=key))
        producer.flush()


def announced_drifts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The drifts the trainer announced (with an exploration boost), as it logged them."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("announced drift")]


def test_the_explore_share_is_announced_from_the_answers_of_each_kind(settings: Settings) -> None:
    produce_audits(settings, 0, 60, right=True, reason="uncertain", confidence=0.55)
    produce_audits(settings, 60, 60, right=True, reason="explore")  # sure and right: no news
    Trainer(settings, max_rounds=1).run()
    announced = decode(ModelAnnouncement, read_all(settings, settings.topics.models)[-1].value)
    assert announced.thresholds["explore"] == settings.strategy.explore  # the floor


def test_a_drift_is_announced_once_with_its_start_and_then_forgotten(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamal.training.trainer")
    produce_audits(settings, 0, 300, right=True)
    produce_audits(settings, 300, 80, right=False)  # confidently wrong: a drift
    trainer = Trainer(settings, idle_timeout_s=1)
    trainer.run()
    assert trainer.drift_events
    (announced,) = announced_drifts(caplog)
    assert "since 20" in announced  # dated: when the new concept began to be served
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert labels.pending_drift() is None  # announced: nothing left to announce
    # its id names the store: a trainer on a fresh store cannot repeat a boost replicas know
    assert announced.startswith(f"announced drift-{labels.identity}-")
    labels.close()
    Trainer(settings, idle_timeout_s=1).run()  # a restart announces the champion, no boost
    assert len(announced_drifts(caplog)) == 1


def test_a_drift_s_boost_rides_on_every_later_announcement(settings: Settings) -> None:
    # `models` is compacted (the embedded transport compacts at once): were the boost only in
    # the announcement that starts it, a replica reading after the next version would miss it
    settings = settings.model_copy(
        update={"train": settings.train.model_copy(update={"publish_interval_s": 0.0})}
    )
    produce_audits(settings, 0, 300, right=True)
    produce_audits(settings, 300, 80, right=False)  # confidently wrong: a drift
    trainer = Trainer(settings)
    with trainer.connected() as transport:
        while trainer.step(transport, 0.5) or not trainer.drift_events:
            pass
        found = read_all(settings, settings.topics.models)
        produce_audits(settings, 380, 60, right=True)  # labels of the new concept: updates
        while trainer.step(transport, 0.5):
            pass
    trainer.labels.close()
    announcements = [
        decode(ModelAnnouncement, r.value) for r in read_all(settings, settings.topics.models)
    ]
    first = decode(ModelAnnouncement, found[-1].value)
    assert first.explore_boost is not None and first.explore_boost.id.startswith("drift-")
    assert announcements[-1].version > first.version  # a later version, announced last
    assert announcements[-1].explore_boost == first.explore_boost


def test_a_drift_found_by_a_trainer_stopped_before_announcing_it_is_announced_at_restart(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamal.training.trainer")
    produce_labeled(settings, 300)
    Trainer(settings, max_rounds=1).run()  # a champion, announced without a boost
    assert announced_drifts(caplog) == []
    # what a trainer killed between finding a drift and announcing it leaves in its store
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    drift = PendingDrift(
        id="drift-250", concept_start=250, evidence_start=300, since=since.timestamp()
    )
    labels.record_drift(drift)
    labels.close()
    with open_transport(settings) as reader:  # what a replica reads at the restart
        reader.subscribe([settings.topics.models])
        restarted = Trainer(settings)
        with restarted.connect():  # it announces the champion again, with the drift
            (record,) = reader.poll(10, 5.0)
        restarted.labels.close()
    announced = decode(ModelAnnouncement, record.value)
    assert announced.version == 1 and announced.explore_boost is not None
    assert announced.explore_boost.id == "drift-250"  # a replica starts each boost once
    assert announced.explore_boost.drift_since == since
    assert "auto_label" not in announced.thresholds  # off until a round on the new concept
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert labels.pending_drift() is None
    labels.close()
    Trainer(settings, idle_timeout_s=1).run()  # announced: not again
    (logged,) = announced_drifts(caplog)
    assert logged.startswith("announced drift-250:") and logged.endswith(
        "since 2026-01-01T00:00:00+00:00"
    )

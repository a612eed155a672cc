"""Benchmark ``streamal serve`` through a real Kafka broker; prints one JSON object.

In one run, on the same messages, with the same batch size and transactions:

- ``passthrough``: a raw kafka-python consume -> produce loop (read_committed consumer group,
  transactional producer, offsets sent into each transaction), one output per input: the
  ceiling any transactional Kafka processor on this machine can reach.
- ``streamal``: the serve daemon (decode, validate, featurize, predict with the model, score,
  gate, produce, commit), once with the default strategy (about 10% of samples asked) and
  once routing every sample (as many records out as the passthrough).
- ``ratio``: streamal's samples/s over the passthrough's (the target is >= 0.7), best of
  ``--rounds`` alternating runs of each.
- ``latency``: p50/p99 from a sample's send time to its routing, with samples produced at half
  the peak rate of the route-everything run.

streamal serves a trained version of the default model (its neighbours' memory full: as many
labels as ``model.memory``, ``--neighbors`` nearest of them voting), not the untrained one.
Each streamal run also reports ``inference_share``: the share of its wall time spent in the
model's forward passes (``streamal_predict_seconds``); the rest is decoding, gating, the
transport and its transactions.

The broker is started by the test harness unless ``STREAMAL_TEST_KAFKA`` names one.
``--gpu`` is the GPU mode: a model of 12.7M parameters (hidden layers 2048 x 4) on CUDA, one
replica; ``--device`` and ``--hidden`` set any other model.

Usage: ``python benchmarks/serve.py [--quick] [--samples N] [--gpu] [--device auto|cpu|cuda]
[--hidden H,H] [--neighbors K]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata

from streamal.config import Settings
from streamal.messages import LabelRequest, decode
from streamal.metrics import Metrics
from streamal.model import MLP, FeatureModel, ModelConfig, ModelStore
from streamal.stream.daemon import Daemon
from streamal.testing.kafka_broker import KafkaBroker
from streamal.transport import Record, TopicSpec, open_transport, topic_specs

FEATURES = 32
PARTITIONS = 4


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """The broker's bootstrap address."""
    if address := os.environ.get("STREAMAL_TEST_KAFKA"):
        yield address
        return
    with KafkaBroker() as started:
        yield started.bootstrap


def settings_for(
    bootstrap: str,
    scratch: Path,
    args: argparse.Namespace,
    route_all: bool,
    samples: str | None = None,
) -> Settings:
    """A deployment of its own (topics, group, a model store under ``scratch``), reading
    ``samples`` if given."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    topics = {
        name: f"{prefix}-{name}"
        for name in ("samples", "label_requests", "auto_labels", "labels", "models", "dead_letter")
    }
    topics["samples"] = samples or topics["samples"]
    strategy: dict[str, Any] = {"auto_label": {"enabled": False}}
    if route_all:
        strategy |= {"budget": 1.0, "gate": {"name": "fixed", "threshold": 0.0}}
    settings = Settings(
        transport={
            "kind": "kafka",
            "kafka": {
                "bootstrap_servers": [bootstrap],
                "partitions": PARTITIONS,
                "replica_id": f"{prefix}-r",
                "session_timeout_ms": 6000,
            },
        },
        topics=topics,
        model={
            "n_features": FEATURES,
            "classes": [str(c) for c in range(10)],
            "hidden": args.hidden,
            "neighbors": args.neighbors,
            "device": args.device,
            "store": str(scratch / f"{prefix}-models"),
        },
        strategy=strategy,
        serve={
            "group": f"{prefix}-serve",
            "max_batch": args.batch,
            "metrics_address": "127.0.0.1:0",
        },
    )
    store_trained(settings)
    return settings


def store_trained(settings: Settings) -> None:
    """Store, as the first version, the default model after it learned ``model.memory``
    labels (random rows of `messages`' distribution): what a replica serves after a while."""
    model = FeatureModel(settings.model, torch.device("cpu"))
    network = model.network
    assert isinstance(network, MLP)
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(settings.model.memory, FEATURES))
    classes = settings.model.classes
    targets = rng.integers(0, len(classes), len(rows))
    network.fit_scaling(rows)
    network.learn(model.tensor(rows), torch.as_tensor(targets))
    ModelStore(settings.model.store, settings.model.name).save(model.state_dict(), classes)


def messages(count: int) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(count, FEATURES)).round(5)
    return [
        (f"s{i}".encode(), json.dumps({"id": f"s{i}", "features": row.tolist()}).encode())
        for i, row in enumerate(features)
    ]


def fill(settings: Settings, batch: list[tuple[bytes, bytes]]) -> None:
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for key, value in batch:
            producer.produce(Record(settings.topics.samples, value, key=key))


def passthrough(settings: Settings, count: int, batch: int) -> float:
    """Samples/s of the raw consume -> produce loop over ``count`` samples."""
    bootstrap, topic = settings.transport.kafka.bootstrap_servers[0], settings.topics.samples
    with open_transport(settings) as admin:
        admin.ensure_topics({f"{topic}-out": TopicSpec(partitions=PARTITIONS)})
    group = f"raw-{uuid.uuid4().hex[:6]}"
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        isolation_level="read_committed", auto_offset_reset="earliest", session_timeout_ms=6000,
    )  # fmt: skip
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{group}-tx", enable_idempotence=True,
        acks="all", linger_ms=5,
    )  # fmt: skip
    producer.init_transactions()
    done, started = 0, None
    while done < count:
        polled = consumer.poll(timeout_ms=50, max_records=batch)
        if not polled:
            continue
        started = started or time.perf_counter()
        producer.begin_transaction()
        offsets = {}
        for tp, records in polled.items():
            for record in records:
                producer.send(f"{topic}-out", value=record.value, key=record.key)
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
            done += len(records)
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    producer.close()
    consumer.close()
    return count / elapsed


def streamal_rate(settings: Settings, count: int) -> tuple[float, float, float]:
    """Samples/s of the serve daemon over ``count`` samples already in the topic, the share of
    them asked, and the share of the time spent in inference."""
    metrics = Metrics()
    daemon = Daemon(settings, metrics=metrics, max_samples=count)
    started: list[float] = []
    value = metrics.registry.get_sample_value

    def first_batch() -> None:
        while not (value("streamal_batch_size_count") or 0):
            time.sleep(0.005)
        started.append(time.perf_counter())

    watch = threading.Thread(target=first_batch, daemon=True)
    watch.start()
    daemon.run()
    elapsed = time.perf_counter() - started[0]
    asked = value("streamal_samples_total", {"route": "oracle"}) or 0
    inference = value("streamal_predict_seconds_sum") or 0.0
    return count / elapsed, asked / count, min(1.0, inference / elapsed)


def latency(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """p50/p99 seconds from send to routing while samples arrive at ``rate`` per second."""
    total = int(rate * seconds)
    pool = messages(total)
    daemon = Daemon(settings, metrics=Metrics(), max_samples=total)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    time.sleep(8)  # join the group before the clock starts
    step = 0.05
    per_step = max(1, int(rate * step))
    next_at = time.perf_counter()
    with open_transport(settings) as producer:  # one producer, or opening it sets the pace
        for start in range(0, total, per_step):
            sent = time.time()  # stamped where the label request keeps it
            for key, value in pool[start : start + per_step]:
                value = json.dumps(json.loads(value) | {"meta": {"sent": sent}}).encode()
                producer.produce(Record(settings.topics.samples, value, key=key))
            producer.flush()
            next_at += step
            time.sleep(max(0.0, next_at - time.perf_counter()))
    thread.join()
    delays = []
    with open_transport(settings) as reader:
        reader.subscribe([settings.topics.label_requests])
        while batch := reader.poll(5000, 2.0):
            for envelope in batch:
                request = decode(LabelRequest, envelope.value)
                assert request.meta is not None
                delays.append(request.requested_at.timestamp() - float(request.meta["sent"]))  # type: ignore[arg-type]
    return {
        "rate_per_s": round(rate),
        "samples": len(delays),
        "p50_s": round(float(np.percentile(delays, 50)), 4),
        "p99_s": round(float(np.percentile(delays, 99)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run of under two minutes")
    parser.add_argument("--samples", type=int, help="samples per throughput run")
    parser.add_argument("--batch", type=int, default=256, help="max records per batch")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs; best kept")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--hidden", default="64,64", help="hidden layer sizes of the MLP")
    parser.add_argument("--gpu", action="store_true", help="a 12.7M-parameter model on CUDA")
    parser.add_argument(
        "--neighbors", type=int, default=ModelConfig().neighbors, help="the neighbours part's k"
    )
    args = parser.parse_args()
    if args.gpu:
        args.device, args.hidden = "cuda", "2048,2048,2048,2048"
    args.hidden = [int(h) for h in args.hidden.split(",")]
    count = args.samples or (5_000 if args.quick else 50_000)
    pool = messages(count)
    report: dict[str, Any] = {"samples": count, "batch": args.batch, "features": FEATURES}
    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="streamal-bench-") as folder:
        scratch = Path(folder)
        source = settings_for(bootstrap, scratch, args, route_all=False)
        fill(source, pool)
        samples = source.topics.samples
        runs: dict[str, list[float]] = {"passthrough": [], "default": [], "route_all": []}
        shares: dict[str, float] = {}
        inference: dict[str, list[float]] = {"default": [], "route_all": []}
        for _ in range(args.rounds):  # alternate, so warm-up and noise hit every kind alike
            runs["passthrough"].append(passthrough(source, count, args.batch))
            for name in ("default", "route_all"):
                settings = settings_for(bootstrap, scratch, args, name == "route_all", samples)
                rate, shares[name], spent = streamal_rate(settings, count)
                runs[name].append(rate)
                inference[name].append(spent)
        best = {name: max(rates) for name, rates in runs.items()}
        report["rounds"] = args.rounds
        report["passthrough_samples_per_s"] = round(best["passthrough"])
        for name in ("default", "route_all"):
            best_run = runs[name].index(best[name])
            report[f"streamal_{name}"] = {
                "samples_per_s": round(best[name]),
                "asked_share": round(shares[name], 3),
                "inference_share": round(inference[name][best_run], 3),
            }
            report[f"ratio_{name}"] = round(best[name] / best["passthrough"], 3)
        half = report["streamal_route_all"]["samples_per_s"] / 2
        report["latency_at_half_peak"] = latency(
            settings_for(bootstrap, scratch, args, route_all=True), half, 10 if args.quick else 30
        )
    report["device"] = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    report["hidden"], report["neighbors"] = args.hidden, args.neighbors
    network = FeatureModel(source.model).network
    report["parameters"] = sum(p.numel() for p in network.parameters())
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

"""A demo stream for ``docker compose up``: generated samples, and a simulated annotator.

Samples are drawn around one random center per class (``model.n_features`` features, the
classes of ``model.classes``) and produced to the samples topic at ``--rate`` per second. Every
``--drift-every`` samples the classes move to each other's centers (an abrupt concept drift), so
the dashboard shows drift, exploration and retraining. With ``--answer``, a simulated annotator
(consumer group ``streamal-demo-annotator``) answers the label requests of these samples from
the known truth, after ``--delay`` seconds and with ``--noise`` wrong answers, so the loop turns
without a human; ``streamal annotate`` can answer beside it in its own group.

Runs inside the streamal image (``python /opt/demo/producer.py``) with the same configuration as
every streamal process: ``STREAMAL_CONFIG`` and ``STREAMAL_*`` variables. SIGTERM or SIGINT stops
it after flushing what it produced.
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import threading
import time
import uuid
from types import FrameType

import numpy as np

from streamal.config import load_settings
from streamal.messages import Sample, encode, now
from streamal.simulation.annotator import SimulatedAnnotator
from streamal.transport import Record, open_transport, topic_specs

log = logging.getLogger("streamal.demo")


class Truth(collections.OrderedDict[str, str]):
    """The true label of the most recent ``limit`` samples (older ones are forgotten)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, sample_id: str, label: str) -> None:
        self[sample_id] = label
        while len(self) > self.limit:
            self.popitem(last=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config file (default: $STREAMAL_CONFIG)")
    parser.add_argument("--rate", type=float, default=20.0, help="samples per second")
    parser.add_argument("--count", type=int, help="stop after this many samples")
    parser.add_argument("--drift-every", type=int, default=20_000, help="samples between drifts")
    parser.add_argument("--spread", type=float, default=1.5, help="noise around the centers")
    parser.add_argument("--seed", type=int, default=0, help="the centers' seed")
    parser.add_argument("--answer", action="store_true", help="run a simulated annotator too")
    parser.add_argument("--delay", type=float, default=5.0, help="seconds before it answers")
    parser.add_argument("--noise", type=float, default=0.02, help="share of wrong answers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    settings = load_settings(args.config)
    classes = list(settings.model.classes)
    rng = np.random.default_rng(args.seed)
    centers = rng.normal(scale=2.0, size=(len(classes), settings.model.n_features))
    noise = np.random.default_rng()
    run = uuid.uuid4().hex[:6]  # sample ids stay unique across restarts
    truth = Truth(limit=200_000)

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    annotator = answering = None
    if args.answer:
        annotator = SimulatedAnnotator(
            settings, truth, delay_s=args.delay, noise=args.noise, group="streamal-demo-annotator"
        )
        answering = threading.Thread(target=annotator.run, name="annotator", daemon=True)
        answering.start()

    produced = 0
    tick = 0.1
    with open_transport(settings) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
        log.info("producing %g samples/s to %s", args.rate, settings.topics.samples)
        started = time.monotonic()
        while not stopping.is_set() and (args.count is None or produced < args.count):
            due = int((time.monotonic() - started) * args.rate) - produced
            if args.count is not None:
                due = min(due, args.count - produced)
            for _ in range(max(0, due)):
                label = int(noise.integers(len(classes)))
                shift = (produced // args.drift_every) % len(classes)
                center = centers[(label + shift) % len(classes)]
                features = center + noise.normal(scale=args.spread, size=center.shape)
                sample = Sample(id=f"demo-{run}-{produced}", features=features.tolist(), ts=now())
                truth.remember(sample.id, classes[label])
                transport.produce(
                    Record(settings.topics.samples, encode(sample), key=sample.id.encode())
                )
                produced += 1
                if produced % args.drift_every == 0:
                    log.info("drift: the classes moved after %d samples", produced)
            transport.flush()
            stopping.wait(tick)
    log.info("produced %d samples", produced)
    if annotator is not None and answering is not None:
        if args.count is not None:  # a bounded run: let the last answers come
            stopping.wait(args.delay + 2)
        annotator.stop()
        answering.join(timeout=30)
        log.info("the simulated annotator answered %d requests", annotator.answered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the default model's online parts (``model.online``), neighbours part
(``model.neighbors``) and Kalman parts (``model.kalman``) cost; prints one JSON object: the
blend (``--online``, ``--neighbors``, ``--kalman``, by default the default model), the blend
with its SGD parts only (``online``) and the MLP alone (``model.online: []``,
``model.neighbors: 0``, ``model.kalman: []``) measured side by side, alternating, in this run.

- ``forward_us``: microseconds per forward pass of a serving batch (``--batch`` rows of
  ``--features`` floats, the default hidden layers), and the blend's ratio to the MLP alone;
  per sample, the difference is what serving pays for the blend.
- ``update_ms``: milliseconds per incremental update (`StreamModel.update`: ``--new`` new labels
  with replayed ones, ``model.fit.update_steps`` Adam steps), where the blend also weighs its
  parts and its online parts learn each new label.
- ``round_s``: seconds per full round (`StreamModel.fit` on ``--labels`` labels), where the
  blend's online and Kalman parts also relearn every training label, in order (and its memory
  keeps the latest ``model.memory``).

Ratios are to the MLP alone. Usage: ``python benchmarks/blend.py [--online R,R] [--neighbors K]
[--kalman Q,Q] [--batch B] [--features F] [--classes C] [--labels N] [--new K] [--repeats R]``
(``--classes``: of the Gaussian data, 3 by default). Run it with one torch thread
(``OMP_NUM_THREADS=1``) on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from streamal.messages import Sample
from streamal.model import Labeled, ModelConfig
from streamal.model.config import MLP_ALONE
from streamal.model.default import FeatureModel


def labeled(n: int, features: int, classes: int, seed: int) -> Labeled:
    """``n`` samples of ``classes`` Gaussian classes."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, n)
    x = rng.normal(size=(n, features)) + targets[:, None]
    return Labeled([Sample(id=f"s{i}", features=row.tolist()) for i, row in enumerate(x)], targets)


def listed(values: list[float]) -> str:
    """Comma-separated, as the options take them.

    >>> listed([0.01, 0.1])
    '0.01,0.1'
    """
    return ",".join(str(value) for value in values)


def timed(work: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``work``, over ``repeats`` calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ModelConfig()
    parser.add_argument("--online", default=listed(default.online), help="the blend's SGD rates")
    parser.add_argument("--neighbors", type=int, default=default.neighbors)
    parser.add_argument("--kalman", default=listed(default.kalman), help="its Kalman noises")
    parser.add_argument("--batch", type=int, default=256, help="rows per forward pass")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--labels", type=int, default=2000, help="labels of a full round")
    parser.add_argument("--new", type=int, default=5, help="new labels of an update")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each")
    args = parser.parse_args()
    torch.manual_seed(0)
    online = [float(rate) for rate in args.online.split(",") if rate]
    kalman = [float(noise) for noise in args.kalman.split(",") if noise]
    kinds = {
        "blend": {"online": online, "neighbors": args.neighbors, "kalman": kalman},
        "online": MLP_ALONE | {"online": online},
        "mlp": MLP_ALONE,
    }
    classes = [f"c{i}" for i in range(args.classes)]
    models = {
        name: FeatureModel(ModelConfig(n_features=args.features, classes=classes, **parts))
        for name, parts in kinds.items()
    }
    data = labeled(args.labels, args.features, args.classes, seed=0)
    validation, new = (
        labeled(args.labels // 4, args.features, args.classes, 1),
        labeled(args.new, args.features, args.classes, 2),
    )
    rows = labeled(args.batch, args.features, args.classes, 3)
    batch = models["mlp"].encode(rows.samples).inputs
    totals = {name: {"forward": 0.0, "update": 0.0, "round": 0.0} for name in kinds}
    for _ in range(args.repeats):
        for name, model in models.items():
            with torch.inference_mode():
                totals[name]["forward"] += timed(partial(model.logits, batch), 200)
            totals[name]["update"] += timed(partial(model.update, new, data), 5)
            totals[name]["round"] += timed(partial(model.fit, data, validation, None), 1)
    mean = {name: {k: v / args.repeats for k, v in parts.items()} for name, parts in totals.items()}
    report = {
        "setup": vars(args),
        "forward_us": {name: round(m["forward"] * 1e6, 1) for name, m in mean.items()},
        "update_ms": {name: round(m["update"] * 1e3, 2) for name, m in mean.items()},
        "round_s": {name: round(m["round"], 3) for name, m in mean.items()},
        "ratio_to_mlp": {
            name: {k: round(mean[name][k] / mean["mlp"][k], 2) for k in mean["mlp"]}
            for name in ("blend", "online")
        },
        "forward_us_per_sample_added": round(
            (mean["blend"]["forward"] - mean["mlp"]["forward"]) * 1e6 / args.batch, 3
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The default model blends the MLP with linear parts learned online (``model.online``) and a
neighbours part (``model.neighbors``), weighed by how each part predicted the latest labels:
the better learner of the moment leads."""

from __future__ import annotations

import pytest
import torch

from streamal.config import Settings
from streamal.model.config import MLP_ALONE as ALONE
from streamal.model.mlp import MLP
from streamal.simulation.ceiling import all_labels
from streamal.simulation.streams import builtin

BLEND = [0.01, 0.1]  # the rates the README suggests


def accuracy(stream_name: str, n: int, model: dict[str, object]) -> float:
    """Prequential accuracy of the default model with these ``model`` settings, learning every
    label with the trainer's recipe."""
    stream = builtin(stream_name, n, seed=3)
    return float(all_labels(Settings(model=model), stream)["prequential_accuracy"])


def test_the_blend_follows_a_boundary_that_keeps_turning() -> None:
    # a linear boundary that turns steadily: the MLP's rounds fit every label since the start
    # (no drift is ever detected), the online parts follow the turn
    blend, mlp_alone = accuracy("rotating", 2000, {}), accuracy("rotating", 2000, ALONE)
    assert blend >= mlp_alone + 0.05


def test_the_blend_keeps_the_mlp_where_it_is_the_better_learner() -> None:
    # classes around prototypes (non-linear boundaries) that move far at half the stream: no
    # linear model separates them, the MLP does, and the drift detectors see the change
    blend, mlp_alone = accuracy("relocated", 2000, {}), accuracy("relocated", 2000, ALONE)
    assert blend >= mlp_alone - 0.01


@pytest.mark.parametrize("stream_name", ["stationary", "rare"])
def test_the_blend_is_confident_where_its_parts_agree_and_are_right(stream_name: str) -> None:
    # a mixture of probabilities is only as sure as its least sure part with weight: without
    # each part's online temperature, a right but soft SGD part held the blend under 0.9 on
    # a quarter of what the MLP alone is sure of (second half: 0.70 vs 0.90 on stationary,
    # 0.85 vs 0.99 on rare), and auto-labeling, which starts from the confident samples,
    # issued nothing on stationary in the system's loop
    stream = builtin(stream_name, 2000, seed=3)
    shares, precisions = [], []
    for model in ({}, ALONE):
        result = all_labels(Settings(model=model), stream)
        half = len(stream.ids) // 2
        sure = result["confidence"][half:] >= 0.9
        shares.append(sure.mean())
        precisions.append(result["correct"][half:][sure].mean())
    (blend, mlp_alone), (blend_right, mlp_alone_right) = shares, precisions
    assert blend >= 0.9 * mlp_alone  # measured 0.97x on both
    assert blend_right >= mlp_alone_right  # and as often right there, or more


def test_a_part_that_led_long_ago_leads_again_within_its_memory_of_a_change() -> None:
    model = MLP(n_features=1, n_classes=2, hidden=[], dropout=0.0, online=[0.1])
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([-1.0, 1.0]))  # the MLP always says class 1
        model.online[0].bias.copy_(torch.tensor([1.0, -1.0]))  # the online part class 0
    x = torch.zeros(1, 1)
    for _ in range(2000):  # a long time in which the online part is right
        model.weigh(x, torch.tensor([0]), memory=100)
    assert torch.softmax(model.log_weights, 0)[1] > 0.95
    switched = None
    for label in range(1, 301):  # then the MLP is
        model.weigh(x, torch.tensor([1]), memory=100)
        if switched is None and model(x).argmax().item() == 1:
            switched = label
    assert switched is not None and switched <= 100


def test_the_mlp_alone_keeps_its_checkpoint_as_it_was() -> None:
    # no online part: nothing new in the state, so checkpoints stored before the blend load
    names = set(MLP(n_features=2, n_classes=2, hidden=[4], dropout=0.0).state_dict())
    assert names == {"mean", "std", "body.0.weight", "body.0.bias", "head.weight", "head.bias"}


def test_a_blend_saved_before_its_parts_had_temperatures_loads_at_temperature_one() -> None:
    saved = MLP(n_features=2, n_classes=2, hidden=[4], dropout=0.0, online=BLEND).state_dict()
    del saved["log_temperatures"]
    model = MLP(n_features=2, n_classes=2, hidden=[4], dropout=0.0, online=BLEND)
    model.log_temperatures.fill_(1.0)
    model.load_state_dict(saved)
    assert torch.equal(model.log_temperatures, torch.zeros(3))


def test_a_checkpoint_of_the_mlp_alone_loads_into_a_blend_that_predicts_as_it_did() -> None:
    torch.manual_seed(0)
    alone = MLP(n_features=2, n_classes=3, hidden=[4], dropout=0.0)
    blend = MLP(n_features=2, n_classes=3, hidden=[4], dropout=0.0, online=BLEND)
    blend.load_state_dict(alone.state_dict())
    x = torch.randn(20, 2)
    assert torch.allclose(torch.softmax(blend(x), 1), torch.softmax(alone(x), 1), atol=1e-3)
    assert torch.equal(blend.rates, torch.tensor(BLEND))
    blend.learn(x, torch.zeros(20, dtype=torch.long))  # its blank parts learn from there
    assert all(part.weight.abs().sum() > 0 for part in blend.online)


def test_online_parts_relearn_a_rounds_labels_in_order_from_scratch() -> None:
    model = MLP(n_features=2, n_classes=2, hidden=[4], dropout=0.0, online=BLEND)
    x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 20), torch.tensor([0, 1] * 20)
    model.learn(x, y)
    learned = [part.weight.clone() for part in model.online]
    model.learn(x, y)  # more of the same: the parts move on
    model.relearn(x, y)  # from scratch: as after the first pass
    assert all(torch.equal(part.weight, w) for part, w in zip(model.online, learned, strict=True))
    assert (model(x).argmax(1) == y).all()

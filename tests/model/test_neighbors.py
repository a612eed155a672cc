"""The default model's neighbours part (``model.neighbors``): the votes of the nearest of the
latest labels, blended with the MLP and the online parts like any part."""

from __future__ import annotations

import torch

from streamal.config import Settings
from streamal.model.mlp import BLANK_LOG_WEIGHT, MLP
from streamal.simulation.ceiling import all_labels
from streamal.simulation.streams import builtin

BLEND = [0.01, 0.1]


def remembered(model: MLP) -> list[int]:
    stored = min(int(model.memory_seen), len(model.memory_y))
    return sorted(model.memory_y[:stored].tolist())


def test_the_memory_keeps_the_latest_labels_one_by_one_or_many_at_once() -> None:
    model = MLP(n_features=1, n_classes=9, hidden=[], dropout=0.0, neighbors=2, memory=3)
    for label in range(5):
        model.learn(torch.tensor([[float(label)]]), torch.tensor([label]))
    assert remembered(model) == [2, 3, 4] and int(model.memory_seen) == 5
    model.learn(torch.arange(5, 9, dtype=torch.float32)[:, None], torch.arange(5, 9))
    assert remembered(model) == [6, 7, 8]  # more than it holds: the latest
    rows = model.memory_x[:, 0].tolist()
    assert sorted(rows) == [6.0, 7.0, 8.0]  # each label beside its own sample


def test_a_round_relearns_the_memory_from_its_labels_only() -> None:
    model = MLP(n_features=1, n_classes=2, hidden=[], dropout=0.0, neighbors=1)
    model.learn(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 0]))
    model.relearn(torch.tensor([[0.0]]), torch.tensor([1]))  # the new concept's one label
    assert remembered(model) == [1]
    assert model.recall(model.standardize(torch.tensor([[1.0]]))).argmax().item() == 1


def test_a_checkpoint_without_the_part_loads_with_it_blank() -> None:
    torch.manual_seed(0)
    before = MLP(n_features=2, n_classes=3, hidden=[4], dropout=0.0, online=BLEND)
    model = MLP(n_features=2, n_classes=3, hidden=[4], dropout=0.0, online=BLEND, neighbors=5)
    model.load_state_dict(before.state_dict())
    x = torch.randn(20, 2)
    assert torch.allclose(torch.softmax(model(x), 1), torch.softmax(before(x), 1), atol=1e-3)
    assert model.log_weights[-1] == BLANK_LOG_WEIGHT and int(model.memory_seen) == 0
    model.learn(x, torch.zeros(20, dtype=torch.long))  # it remembers from there
    assert remembered(model) == [0] * 20


def test_the_checkpoint_carries_the_memory() -> None:
    model = MLP(n_features=2, n_classes=2, hidden=[4], dropout=0.0, neighbors=3, memory=10)
    model.learn(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), torch.tensor([0, 1]))
    copy = MLP(n_features=2, n_classes=2, hidden=[4], dropout=0.0, neighbors=3, memory=10)
    copy.load_state_dict(model.state_dict())
    x = torch.tensor([[0.5, 0.0], [4.0, 5.0]])
    assert torch.equal(copy.parts(x), model.parts(x))


def accuracy(stream_name: str, neighbors: int) -> float:
    """Prequential accuracy of the default model, learning every label with the trainer's
    recipe."""
    stream = builtin(stream_name, 2000, seed=3)
    settings = Settings(model={"neighbors": neighbors})
    return float(all_labels(settings, stream)["prequential_accuracy"])


def test_the_neighbours_lead_where_few_labels_of_many_local_classes_came() -> None:
    # binary glyphs of 10 classes: after a few labels the nearest labeled image is a better
    # guess than a model fitted on them, and the mixture follows the part that is right
    with_part, without = accuracy("pixels", 10), accuracy("pixels", 0)
    assert with_part >= without + 0.03

"""The labels held out to judge the rounds: the default model's online parts and memory learn
them too (`FeatureModel.follow`, and a round's relearning in arrival order), its MLP never."""

from __future__ import annotations

import numpy as np
import torch

from streamal.model import FeatureModel, Labeled, ModelConfig
from streamal.model.config import MLP_ALONE
from streamal.model.contract import arrival_order
from streamal.simulation.streams import gaussian_classes
from streamal.training.fit import accuracy

STREAM = gaussian_classes(400, spread=1.0, seed=0)
CLASSES = STREAM.classes
SPANS = (range(40), range(40, 50))


def model(**options: object) -> FeatureModel:
    torch.manual_seed(0)
    config = ModelConfig(n_features=STREAM.features.shape[1], classes=CLASSES, hidden=[8])
    return FeatureModel(config.model_copy(update=options))


def labeled(rows: range | np.ndarray, arrival: bool = False) -> Labeled:
    rows = np.asarray(rows)
    return Labeled(STREAM.samples(rows), STREAM.labels[rows], rows if arrival else None)


def test_following_teaches_the_online_parts_and_memory_but_not_the_mlp() -> None:
    blend = model()
    blend.fit(labeled(range(100)), labeled(range(100, 120)), None)
    probe = blend.encode(STREAM.samples(range(200, 400))).inputs
    deep, parts = blend.rounds_logits(probe), blend.network.parts(probe)
    seen = int(blend.network.memory_seen)
    assert blend.follow(labeled(range(120, 200)))
    assert torch.equal(blend.rounds_logits(probe), deep)  # the MLP learned nothing
    after = blend.network.parts(probe)
    assert not torch.equal(after[1:], parts[1:])  # the online parts and the memory did
    assert int(blend.network.memory_seen) == seen + 80


def test_a_model_without_parts_that_follow_the_stream_learns_nothing_from_held_out_labels() -> None:
    alone = model(**MLP_ALONE)
    alone.fit(labeled(range(100)), labeled(range(100, 120)), None)
    state = {name: tensor.clone() for name, tensor in alone.state_dict().items()}
    assert not alone.follow(labeled(range(120, 200)))
    assert all(torch.equal(state[name], t) for name, t in alone.state_dict().items())


def test_a_round_relearns_the_held_out_labels_too_in_the_order_they_came() -> None:
    mask = np.arange(200) % 5 == 0  # a validation fifth spread over the stream
    train = labeled(np.flatnonzero(~mask), arrival=True)
    validation = labeled(np.flatnonzero(mask), arrival=True)
    both = model()
    both.fit(train, validation, None)
    assert int(both.network.memory_seen) == 200
    remembered = both.network.memory_y[:200].tolist()
    assert remembered == STREAM.labels[:200].tolist()  # in arrival order
    unordered = model()
    unordered.fit(labeled(np.flatnonzero(~mask)), labeled(np.flatnonzero(mask)), None)
    assert int(unordered.network.memory_seen) == 160  # arrival unknown: the training labels


def test_labels_of_one_set_come_back_together_in_arrival_order() -> None:
    odd, even = labeled(range(1, 10, 2), arrival=True), labeled(range(0, 10, 2), arrival=True)
    order = arrival_order(odd, even)
    assert order is not None
    samples = odd.samples + even.samples
    assert [samples[i].id for i in order] == [STREAM.ids[i] for i in range(10)]
    targets = np.concatenate([odd.targets, even.targets])
    assert targets[order].tolist() == STREAM.labels[:10].tolist()
    assert arrival_order(odd, labeled(range(0, 10, 2))) is None


def test_held_out_labels_the_model_followed_do_not_raise_the_accuracy_they_judge() -> None:
    hard = gaussian_classes(400, spread=4.0, seed=1)  # classes that overlap
    torch.manual_seed(0)
    config = ModelConfig(n_features=hard.features.shape[1], classes=hard.classes, hidden=[2])
    blend = FeatureModel(config.model_copy(update={"neighbors": 1}))  # remembers each label
    train, validation = (Labeled(hard.samples(span), hard.labels[span]) for span in SPANS)
    blend.fit(train, validation, None)
    judges = Labeled(hard.samples(range(200, 400)), hard.labels[200:])
    judged, whole = accuracy(blend, judges, judged=True), accuracy(blend, judges)
    blend.follow(judges)
    assert accuracy(blend, judges, judged=True) == judged
    assert accuracy(blend, judges) > whole  # the blend, which remembers them, would look better

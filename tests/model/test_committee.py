"""The committee (``model.committee: K``): members trained apart, scored by their disagreement,
stored and loaded as one model, and run by every process through the model contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.checks import check_model
from streamal.config import load_settings
from streamal.errors import ConfigError, ModelError
from streamal.model import Committee, Labeled, ModelConfig, ModelLoader, Predictor
from streamal.model.factory import model_factory
from streamal.simulation.streams import gaussian_classes
from streamal.strategies import build_score
from streamal.training.fit import accuracy, fit

DISAGREEMENT = ("vote_entropy", "consensus_kl", "max_disagreement", "bald", "variation_ratio")


def config(members: int = 3, **fields: object) -> ModelConfig:
    return ModelConfig(
        n_features=4, classes=["a", "b", "c"], hidden=[16], committee=members, device="cpu",
        **fields,
    )  # fmt: skip


def labeled(n: int, seed: int, skip: int = 0) -> Labeled:
    """``n`` samples of a 3-class stream (the same classes for a seed), after ``skip``."""
    stream = gaussian_classes(skip + n, n_features=4, spread=2.0, seed=seed, n_classes=3)
    rows = range(skip, skip + n)
    return Labeled(stream.samples(rows), stream.labels[skip:].astype(np.int64))


def test_the_configured_size_makes_a_committee_and_one_makes_a_single_model() -> None:
    committee = model_factory(config(4))()
    assert isinstance(committee, Committee) and len(committee.members) == 4
    assert not isinstance(model_factory(config(1))(), Committee)


def test_a_committee_size_below_one_is_a_one_line_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  committee: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith("config error: model.committee: ")
    assert "\n" not in str(caught.value)


def test_a_committee_that_agrees_scores_zero_and_predicts_as_its_members() -> None:
    torch.manual_seed(0)
    committee = model_factory(config(3))()
    assert isinstance(committee, Committee)
    one = committee.members[0].state_dict()
    for member in committee.members[1:]:
        member.load_state_dict(one)
    predictor = Predictor(committee, 0)
    inputs = predictor.encode(labeled(50, seed=1).samples).inputs
    passes = predictor.stochastic(inputs, passes=20)  # dropout stays off: no noise of its own
    assert tuple(passes.shape) == (3, 50, 3)
    for name in DISAGREEMENT:
        np.testing.assert_allclose(build_score(name)(passes).numpy(), 0.0, atol=1e-6)
    alone = torch.softmax(committee.members[0].logits(inputs), dim=-1)
    torch.testing.assert_close(predictor.probabilities(inputs), alone)


def test_members_train_apart_and_the_disagreement_falls_where_the_committee_errs() -> None:
    train, test = labeled(600, seed=2), labeled(1000, seed=2, skip=600)
    result = fit(model_factory(config(5)), train, 0.2, None, seed=0)
    assert result is not None
    committee = result.challenger
    assert isinstance(committee, Committee)
    weights = [member.state_dict()["head.weight"] for member in committee.members]
    assert not any(torch.equal(weights[0], other) for other in weights[1:])
    assert accuracy(committee, test) > 0.8
    predictor = Predictor(committee, 0)
    inputs = predictor.encode(test.samples).inputs
    wrong = predictor.probabilities(inputs).argmax(1).numpy() != test.targets
    passes = predictor.stochastic(inputs, passes=5)
    for name in ("vote_entropy", "consensus_kl", "max_disagreement"):  # measured: 9.3, 2.2, 2.3
        utility = build_score(name)(passes).numpy()
        assert utility[wrong].mean() > 1.5 * utility[~wrong].mean(), name


def test_a_round_is_reproducible_from_its_seed() -> None:
    train = labeled(200, seed=4)
    first, again = (fit(model_factory(config(3)), train, 0.2, None, seed=7) for _ in range(2))
    assert first is not None and again is not None
    for name, tensor in first.challenger.state_dict().items():
        assert torch.equal(tensor, again.challenger.state_dict()[name]), name


def test_an_update_teaches_each_member_its_own_poisson_share() -> None:
    torch.manual_seed(0)
    committee = model_factory(config(4))()
    assert isinstance(committee, Committee)
    before = [member.state_dict()["head.weight"].clone() for member in committee.members]
    assert committee.update(labeled(20, seed=5), labeled(100, seed=6))
    after = [member.state_dict()["head.weight"] for member in committee.members]
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    moved = [float((a - b).abs().sum()) for b, a in zip(before, after, strict=True)]
    assert len(set(moved)) == len(moved)  # each learned from its own resample
    for seed in range(
        20
    ):  # one new label: some member always learns it (e^-4 of rounds none would)
        torch.manual_seed(seed)
        assert committee.update(labeled(1, seed=5), labeled(100, seed=6))


def test_checkpoints_round_trip_and_other_shapes_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    loader = ModelLoader(config(3, store=tmp_path), seed=0)
    committee = loader.fresh()
    checkpoint = loader.store.save(committee.state_dict(), ["a", "b", "c"])
    inputs = committee.encode(labeled(10, seed=7).samples).inputs
    loaded = loader.load(checkpoint)
    torch.testing.assert_close(loaded.logits(inputs), Predictor(committee, 0).logits(inputs))
    for other in (config(2, store=tmp_path), config(1, store=tmp_path), config(4, store=tmp_path)):
        with pytest.raises(ModelError, match="checkpoint does not fit the model"):
            ModelLoader(other, seed=0).load(checkpoint)


def test_a_committee_passes_the_model_check_suite(tmp_path: Path) -> None:
    stream = gaussian_classes(600, n_features=4, spread=1.5, seed=1)
    samples = stream.samples(range(len(stream.ids)))
    labels = [stream.classes[c] for c in stream.labels]
    model = ModelConfig(n_features=4, classes=stream.classes, committee=3, device="cpu")
    checks = check_model(model, samples, labels, workdir=tmp_path)
    assert all(check.passed for check in checks)


def test_serve_scoring_and_pool_selection_read_the_members_votes() -> None:
    from streamal.config import Settings
    from streamal.model.scoring import probabilities_and_utilities
    from streamal.pool.job import Pool, select, selector_for
    from streamal.strategies import PoolConfig, vote_entropy

    train, pool = labeled(300, seed=8), labeled(400, seed=8, skip=300)
    result = fit(model_factory(config(5)), train, 0.2, None, seed=0)
    assert result is not None
    predictor = Predictor(result.challenger, 1)
    inputs = predictor.encode(pool.samples).inputs
    members = torch.stack([torch.softmax(m.logits(inputs), -1) for m in result.challenger.members])
    expected = vote_entropy(members)
    _, utilities = probabilities_and_utilities(predictor, build_score("vote_entropy"), inputs, 20)
    torch.testing.assert_close(utilities, expected)
    selector = selector_for(PoolConfig(score="vote_entropy"), predictor)
    items = Pool([s.id for s in pool.samples], pool.samples)
    picked = select(Settings(), items, 10, selector, predictor)
    np.testing.assert_allclose(picked.utilities, expected.numpy()[picked.indices], rtol=1e-6)
    tenth = float(expected.sort(descending=True).values[9])  # the top 10 by the members' votes
    assert picked.utilities.min() == pytest.approx(tenth) and tenth > 0

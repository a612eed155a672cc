"""The registry and the config models: names, defaults, validation, builders, pool selection."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from streamal.errors import RegistryError
from streamal.gates import (
    AutoLabelGate,
    FixedThreshold,
    QuantileBudget,
    RandomizedVariableUncertainty,
    Split,
    VariableUncertainty,
)
from streamal.strategies import (
    DIVERSITIES,
    GATES,
    SCORES,
    AutoLabelConfig,
    Diversity,
    GateConfig,
    PoolConfig,
    ScoreName,
    StrategyConfig,
    UserGateConfig,
    VariableUncertaintyConfig,
    build_auto_label,
    build_gate,
    build_score,
    build_selector,
)
from streamal.validation import one_line


def test_config_names_are_the_registered_names() -> None:
    assert list(get_args(ScoreName)) == list(SCORES)
    assert list(get_args(Diversity)) == list(DIVERSITIES)
    members = [get_args(member) for member in get_args(get_args(GateConfig)[0])]
    configs, tags = [m[0] for m in members], [m[1] for m in members]
    assert [tag.tag for tag in tags] == [*GATES, "package.module:object"]
    assert [config.model_fields["name"].default for config in configs[:-1]] == list(GATES)
    assert configs[-1] is UserGateConfig


def test_only_pass_scores_need_passes() -> None:
    needing = {name for name, score in SCORES.items() if score.needs_passes}
    assert needing == {
        "variation_ratio",
        "bald",
        "vote_entropy",
        "consensus_kl",
        "max_disagreement",
    }
    assert [name for name, s in SCORES.items() if s.needs_embeddings] == [
        "expected_gradient_length", "expected_error_reduction", "expected_model_change",
    ]  # fmt: skip
    assert [name for name, s in SCORES.items() if s.pool_limit] == [
        "expected_error_reduction", "expected_model_change",
    ]  # fmt: skip


def test_unknown_names_list_the_allowed_ones() -> None:
    with pytest.raises(RegistryError, match=r"unknown score 'foo'; allowed: least_confidence, "):
        build_score("foo")
    unregistered = VariableUncertaintyConfig().model_copy(update={"name": "foo"})
    with pytest.raises(RegistryError) as caught:
        build_gate(StrategyConfig.model_construct(budget=0.1, seed=0, gate=unregistered))
    assert str(caught.value) == (
        "unknown gate 'foo'; allowed: fixed, variable_uncertainty, "
        "randomized_variable_uncertainty, split, quantile"
    )


def test_defaults_follow_the_literature() -> None:
    config = StrategyConfig()
    assert (config.score, config.budget, config.seed) == ("margin", 0.1, 0)
    # the default gate is the quantile filter: best on every stream of benchmarks/peers.py
    assert config.gate.model_dump() == {"name": "quantile", "window": 100, "tolerance_window": 50}
    assert StrategyConfig(gate={"name": "variable_uncertainty"}).gate.model_dump() == {
        "name": "variable_uncertainty",
        "threshold": 0.5,
        "step": 0.01,
        "window": 100,
    }
    rvu = StrategyConfig(gate={"name": "randomized_variable_uncertainty"}).gate
    assert rvu.model_dump()["delta"] == 1.0
    assert StrategyConfig(gate={"name": "split"}).gate.model_dump()["explore"] == 0.1
    auto = config.auto_label
    assert (auto.target_precision, auto.bound, auto.confidence_level) == (0.98, "wilson", 0.95)


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"budget": 1.5}, ("budget",)),
        ({"budget": 0}, ("budget",)),
        ({"score": "smallest_margin"}, ("score",)),
        ({"gate": {"name": "foo"}}, ("gate",)),
        ({"gate": {"name": "split", "explore": 2}}, ("gate", "split", "explore")),
        (
            {"gate": {"name": "variable_uncertainty", "step": 1}},
            ("gate", "variable_uncertainty", "step"),
        ),
        ({"gate": {"name": "quantile", "budget": 0.2}}, ("gate", "quantile", "budget")),
        ({"auto_label": {"bound": "hoeffding"}}, ("auto_label", "bound")),
        ({"auto_label": {"min_audits": 10, "window": 5}}, ("auto_label",)),
        ({"mc_passes": 1}, ("mc_passes",)),
        ({"budgett": 0.1}, ("budgett",)),
    ],
)
def test_invalid_configs_name_the_field(
    fields: dict[str, object], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        StrategyConfig.model_validate(fields)
    assert caught.value.errors()[0]["loc"] == location


SCORE_CHOICES = (
    "least_confidence, margin, ratio, entropy, normalized_entropy, variation_ratio, bald, "
    "vote_entropy, consensus_kl, max_disagreement, expected_gradient_length, "
    "expected_error_reduction, expected_model_change, random or package.module:object"
)
GATE_CHOICES = (
    "fixed, variable_uncertainty, randomized_variable_uncertainty, split, quantile "
    "or package.module:object"
)


@pytest.mark.parametrize(
    ("model", "fields", "message"),
    [
        (StrategyConfig, {"gate": {"name": "foo"}}, f"gate: must be one of: {GATE_CHOICES} "
         "(got 'foo')"),
        (StrategyConfig, {"score": "smallest_margin"}, f"score: must be one of: {SCORE_CHOICES} "
         "(got 'smallest_margin')"),
        (StrategyConfig, {"score": "mypkg:"}, f"score: must be one of: {SCORE_CHOICES} "
         "(got 'mypkg:')"),
        (PoolConfig, {"diversity": "k-center"}, "diversity: must be one of: none, kcenter, "
         "badge, seals or package.module:object (got 'k-center')"),
        (StrategyConfig, {"gate": {"name": "a:b:c"}}, "gate.name: must match "
         r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$ (got 'a:b:c')"),
        (StrategyConfig, {"gate": {"name": "mypkg:Gate", "options": 3}}, "gate.options: must "
         "be a mapping (got a number)"),
        (StrategyConfig, {"gate": "quantile"}, "gate: must be a mapping (got a string)"),
    ],
)  # fmt: skip
def test_a_bad_name_gets_one_line_with_the_choices(
    model: type[BaseModel], fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(fields)
    assert one_line(caught.value, model) == message


def test_user_objects_are_named_by_import_path() -> None:
    config = StrategyConfig(score="mypkg.scores:mine", gate={"name": "mypkg.gates:Mine"})
    assert config.score == "mypkg.scores:mine"
    assert config.gate == UserGateConfig(name="mypkg.gates:Mine", options={})
    assert PoolConfig(diversity="mypkg.pick:mine").diversity == "mypkg.pick:mine"


def test_configs_are_frozen() -> None:
    config = StrategyConfig()
    with pytest.raises(ValidationError):
        config.budget = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("gate", "kind"),
    [
        ({"name": "fixed", "threshold": 0.3}, FixedThreshold),
        ({"name": "variable_uncertainty"}, VariableUncertainty),
        ({"name": "randomized_variable_uncertainty", "delta": 0.5}, RandomizedVariableUncertainty),
        ({"name": "split"}, Split),
        ({"name": "quantile", "tolerance_window": 20}, QuantileBudget),
    ],
)
def test_build_gate_makes_each_gate_with_the_strategy_budget(
    gate: dict[str, object], kind: type
) -> None:
    config = StrategyConfig(budget=0.25, gate=gate, seed=4)
    built = build_gate(config)
    assert type(built) is kind
    assert built.budget == 0.25
    utilities = np.random.default_rng(0).random(300)
    again = build_gate(config).decide(utilities).routes
    np.testing.assert_array_equal(built.decide(utilities).routes, again)


def test_build_auto_label() -> None:
    assert build_auto_label(StrategyConfig(auto_label=AutoLabelConfig(enabled=False))) is None
    config = StrategyConfig(auto_label={"target_precision": 0.9, "threshold": 0.8, "min_audits": 5})
    gate = build_auto_label(config)
    assert isinstance(gate, AutoLabelGate)
    assert (gate.target, gate.threshold, gate.min_audits) == (0.9, 0.8, 5)


def test_a_built_random_score_advances_and_replays_from_its_seed() -> None:
    p = np.full((5, 2), 0.5)
    first, second = build_score("random", seed=2), build_score("random", seed=2)
    a = first(p)
    assert not np.array_equal(a, first(p))
    np.testing.assert_array_equal(a, second(p))


def test_a_score_that_needs_embeddings_says_so() -> None:
    score = build_score("expected_gradient_length")
    with pytest.raises(ValueError, match="needs embeddings"):
        score(np.full((2, 2), 0.5))
    assert score(np.full((2, 2), 0.5), embeddings=np.ones((2, 3))).shape == (2,)


def test_a_users_score_by_import_path_is_built_like_a_registered_one() -> None:
    second = build_score("tests.plugins_for_tests:second_class")
    assert (second.name, second.needs_passes, second.needs_embeddings) == (
        "tests.plugins_for_tests:second_class", False, False,
    )  # fmt: skip
    np.testing.assert_array_equal(second(np.array([[0.9, 0.1], [0.3, 0.7]])), [0.1, 0.7])
    assert build_score("tests.plugins_for_tests:embedding_norm").needs_embeddings
    p = np.full((5, 2), 0.5)
    first, again = (
        build_score("tests.plugins_for_tests:coin", seed=2),
        build_score("tests.plugins_for_tests:coin", seed=2),
    )
    np.testing.assert_array_equal(first(p), again(p))


POOL_PROBS = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.55, 0.45], [0.99, 0.01]])
POOL_POINTS = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])


@pytest.mark.parametrize("diversity", list(get_args(Diversity)))
def test_every_diversity_picks_distinct_pool_items(diversity: str) -> None:
    select = build_selector(PoolConfig(diversity=diversity, neighbors=2))
    picked = select(3, probs=POOL_PROBS, embeddings=POOL_POINTS, labeled=np.array([[0.2]]))
    assert len(set(picked.tolist())) == len(picked) <= 3
    assert picked.min() >= 0 and picked.max() < len(POOL_PROBS)


def test_selection_by_utility_with_and_without_seals() -> None:
    assert build_selector(PoolConfig())(2, probs=POOL_PROBS).tolist() == [1, 3]
    seals = build_selector(PoolConfig(diversity="seals", neighbors=2))
    # near the labeled item at 10.4 are items 3 and 4; item 3 is the more uncertain
    picked = seals(1, probs=POOL_PROBS, embeddings=POOL_POINTS, labeled=np.array([[10.4]]))
    assert picked.tolist() == [3]


def test_seals_with_a_score_on_passes() -> None:
    passes = np.stack([POOL_PROBS, POOL_PROBS[:, ::-1]])
    select = build_selector(PoolConfig(score="bald", diversity="seals", neighbors=3))
    picked = select(2, probs=passes, embeddings=POOL_POINTS, labeled=np.array([[0.0]]))
    assert set(picked.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("diversity", "missing"),
    [("kcenter", "embeddings"), ("badge", "embeddings"), ("seals", "labeled")],
)
def test_selection_says_what_is_missing(diversity: str, missing: str) -> None:
    select = build_selector(PoolConfig(diversity=diversity))
    embeddings = POOL_POINTS if missing == "labeled" else None
    with pytest.raises(ValueError, match=f"needs {missing}"):
        select(2, probs=POOL_PROBS, embeddings=embeddings)

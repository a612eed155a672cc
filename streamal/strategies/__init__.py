"""Pure scoring shared by stream and pool, and the registry that wires configs to code.

Every score is vectorized over a batch, runs on the input tensor's device (numpy in, numpy
out) and is higher for samples more worth asking a human about.
"""

from streamal.strategies.bayesian import (
    bald,
    consensus_kl,
    max_disagreement,
    variation_ratio,
    vote_entropy,
)
from streamal.strategies.config import (
    AutoLabelConfig,
    ColdStart,
    Diversity,
    DiversityChoice,
    FixedThresholdConfig,
    GateConfig,
    PoolConfig,
    QuantileBudgetConfig,
    RandomizedVariableUncertaintyConfig,
    ScoreChoice,
    ScoreName,
    SplitConfig,
    StrategyConfig,
    UserGateConfig,
    VariableUncertaintyConfig,
)
from streamal.strategies.gradient import expected_gradient_length
from streamal.strategies.lookahead import expected_error_reduction, expected_model_change
from streamal.strategies.registry import (
    DIVERSITIES,
    GATES,
    SCORES,
    Score,
    build_auto_label,
    build_gate,
    build_score,
    build_selector,
    seed_for,
)
from streamal.strategies.scores import entropy, least_confidence, margin, random_scores, ratio
from streamal.strategies.selection import DiversityRule, PoolSelector

__all__ = [
    "DIVERSITIES",
    "GATES",
    "SCORES",
    "AutoLabelConfig",
    "ColdStart",
    "Diversity",
    "DiversityChoice",
    "DiversityRule",
    "FixedThresholdConfig",
    "GateConfig",
    "PoolConfig",
    "PoolSelector",
    "QuantileBudgetConfig",
    "RandomizedVariableUncertaintyConfig",
    "Score",
    "ScoreChoice",
    "ScoreName",
    "SplitConfig",
    "StrategyConfig",
    "UserGateConfig",
    "VariableUncertaintyConfig",
    "bald",
    "build_auto_label",
    "build_gate",
    "build_score",
    "build_selector",
    "consensus_kl",
    "entropy",
    "expected_error_reduction",
    "expected_gradient_length",
    "expected_model_change",
    "least_confidence",
    "margin",
    "max_disagreement",
    "random_scores",
    "ratio",
    "seed_for",
    "variation_ratio",
    "vote_entropy",
]

"""Validated settings of the strategy (scores, gates, auto-labeling) and of pool selection."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from streamal.gates.precision import BoundMethod
from streamal.plugins import ImportPath, is_import_path, named_or_import_path

__all__ = [
    "AutoLabelConfig",
    "ColdStart",
    "Diversity",
    "DiversityChoice",
    "FixedThresholdConfig",
    "GateConfig",
    "PoolConfig",
    "QuantileBudgetConfig",
    "RandomizedVariableUncertaintyConfig",
    "ScoreChoice",
    "ScoreName",
    "SplitConfig",
    "StrategyConfig",
    "UserGateConfig",
    "VariableUncertaintyConfig",
]

ScoreName = Literal[
    "least_confidence",
    "margin",
    "ratio",
    "entropy",
    "normalized_entropy",
    "variation_ratio",
    "bald",
    "vote_entropy",
    "consensus_kl",
    "max_disagreement",
    "expected_gradient_length",
    "expected_error_reduction",
    "expected_model_change",
    "random",
]
"""The registered utility functions (see `streamal.strategies.SCORES`)."""

Diversity = Literal["none", "kcenter", "badge", "seals"]
"""How a pool selection trades utility for diversity."""

ScoreChoice = Annotated[str, named_or_import_path(get_args(ScoreName))]
"""A registered score's name, or a user's score by import path ``package.module:object``."""

ColdStart = Literal["kcenter", "kmeans++", "off"]
"""How a pool selection starts without a model or without labels of every class."""

DiversityChoice = Annotated[str, named_or_import_path(get_args(Diversity))]
"""A registered diversity rule, or a user's pool selector by import path."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FixedThresholdConfig(_Frozen):
    """`streamal.gates.FixedThreshold`: ask at or above a fixed utility."""

    name: Literal["fixed"] = "fixed"
    threshold: float = Field(0.5, ge=0)
    window: int = Field(100, gt=0, description="samples the label spend is measured over")


class VariableUncertaintyConfig(_Frozen):
    """`streamal.gates.VariableUncertainty` (Zliobaite et al. 2014)."""

    name: Literal["variable_uncertainty"] = "variable_uncertainty"
    threshold: float = Field(0.5, gt=0, description="starting utility threshold")
    step: float = Field(0.01, gt=0, lt=1, description="adjusting step s")
    window: int = Field(100, gt=0, description="samples the label spend is measured over")


class RandomizedVariableUncertaintyConfig(VariableUncertaintyConfig):
    """`streamal.gates.RandomizedVariableUncertainty`: the threshold times ``N(1, delta)``."""

    name: Literal["randomized_variable_uncertainty"] = "randomized_variable_uncertainty"  # type: ignore[assignment]
    delta: float = Field(1.0, gt=0)


class SplitConfig(VariableUncertaintyConfig):
    """`streamal.gates.Split`: a share ``explore`` asked at random, the rest by VU."""

    name: Literal["split"] = "split"  # type: ignore[assignment]
    explore: float = Field(0.1, ge=0, le=1, description="share v asked at random")


class QuantileBudgetConfig(_Frozen):
    """`streamal.gates.QuantileBudget` (Kottke et al. 2015)."""

    name: Literal["quantile"] = "quantile"
    window: int = Field(100, gt=0, description="recent utilities the quantile is taken over")
    tolerance_window: int = Field(50, gt=0, description="queries of slack before full correction")


class UserGateConfig(_Frozen):
    """A user's gate: ``name`` is the import path of a `streamal.gates.BudgetGate` subclass
    (or of a factory returning one), built with ``budget=`` and ``options``."""

    name: ImportPath
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")


USER_GATE = "package.module:object"
"""The tag of `UserGateConfig` among the gate configs."""


def _gate_kind(value: Any) -> Any:
    """Which gate config ``value`` is: its ``name``, or `USER_GATE` for an import path."""
    if not isinstance(value, dict | BaseModel):
        return USER_GATE  # not a mapping: validating it as one says so
    name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
    return USER_GATE if isinstance(name, str) and is_import_path(name) else name


_BUILT_IN_GATES = (
    FixedThresholdConfig,
    VariableUncertaintyConfig,
    RandomizedVariableUncertaintyConfig,
    SplitConfig,
    QuantileBudgetConfig,
)
_GATE_NAMES = ", ".join(config.model_fields["name"].default for config in _BUILT_IN_GATES)

GateConfig = Annotated[
    Annotated[FixedThresholdConfig, Tag("fixed")]
    | Annotated[VariableUncertaintyConfig, Tag("variable_uncertainty")]
    | Annotated[RandomizedVariableUncertaintyConfig, Tag("randomized_variable_uncertainty")]
    | Annotated[SplitConfig, Tag("split")]
    | Annotated[QuantileBudgetConfig, Tag("quantile")]
    | Annotated[UserGateConfig, Tag(USER_GATE)],
    Discriminator(
        _gate_kind,
        custom_error_type="unknown_name",
        custom_error_message=f"must be one of: {_GATE_NAMES} or {USER_GATE}",
    ),
]
"""A registered gate's config, selected by ``name``, or a user's gate (`UserGateConfig`)."""


class AutoLabelConfig(_Frozen):
    """`streamal.gates.AutoLabelGate`: auto-label confident samples, audited by humans."""

    enabled: bool = True
    target_precision: float = Field(0.98, gt=0, lt=1)
    audit_share: float = Field(0.05, gt=0, le=1, description="share of candidates audited")
    min_audits: int = Field(200, gt=0, description="audits needed before auto-labeling")
    bound: BoundMethod = "wilson"
    confidence_level: float = Field(0.95, gt=0, lt=1)
    threshold: float = Field(0.9, ge=0, le=1, description="starting confidence threshold")
    window: int = Field(5000, gt=0, description="recent audited outcomes kept")
    max_label_delay_s: float = Field(
        3600.0, gt=0,
        description="auto-labeling holds back while an audit is unanswered this long",
    )  # fmt: skip
    pause_on_shift: bool = Field(
        True, description="pause auto-labeling when the served inputs shift, until audits clear it"
    )
    paused_audits: float = Field(
        0.5, ge=0, le=1, description="share of the budget audits take while auto-labeling is held"
    )
    ask_retracted: bool = Field(
        False,
        description="ask the samples of auto-labels retracted on a replica's audits again, in "
        "the place of uncertain picks",
    )
    label_noise: float = Field(
        0.0, ge=0, lt=0.5,
        description="share of wrong answers annotators give; the precision bound reads audits "
        "through it (0: every answer trusted)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _audits_fit_window(self) -> Self:
        if self.min_audits > self.window:
            raise ValueError(f"min_audits ({self.min_audits}) must be <= window ({self.window})")
        return self


class StrategyConfig(_Frozen):
    """What the stream daemon asks: the utility, the budget gate and auto-labeling."""

    score: ScoreChoice = "margin"
    budget: float = Field(0.1, gt=0, le=1, description="share of samples sent to the oracle")
    gate: GateConfig = Field(default_factory=QuantileBudgetConfig)
    explore: float = Field(
        0.2, ge=0, le=1,
        description="share of the budget asked at random, at least (the trainer announces more "
        "when random answers surprise the model more): unbiased labels that detect drift",
    )  # fmt: skip
    auto_label: AutoLabelConfig = Field(default_factory=AutoLabelConfig)
    mc_passes: int = Field(20, ge=2, description="stochastic passes for scores that need them")
    cold_start: Literal["diverse", "random"] = Field(
        "diverse",
        description="before the first trained model: ask to cover the space, or at random",
    )
    seed: int = Field(0, ge=0)


class PoolConfig(_Frozen):
    """How a pool job ranks and picks items."""

    score: ScoreChoice = "margin"
    diversity: DiversityChoice = "none"
    neighbors: int = Field(100, gt=0, description="SEALS: nearest pool items per labeled item")
    chunk_elements: int = Field(1 << 22, gt=0, description="largest distance block")
    subsample: int | None = Field(
        None, gt=0, description="score only this many pool items, drawn at random"
    )
    cold_start: ColdStart = Field(
        "kcenter", description="cover the pool while there is no model or a class has no label"
    )
    mc_passes: int = Field(20, ge=2, description="stochastic passes for scores that need them")
    seed: int = Field(0, ge=0)

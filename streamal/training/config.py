"""Settings of the periodic trainer (``streamal train``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DriftConfig(BaseModel):
    """Drift detection on the oracle-vs-prediction errors and on the confidence."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: Literal["adwin", "kswin", "page_hinkley"] = "adwin"
    delta: float = Field(0.002, gt=0, lt=1, description="ADWIN's confidence parameter")
    explore_boost: float = Field(
        1.0, ge=0, le=1, description="share of the label budget asked at random after a drift"
    )
    boost_samples: int = Field(2000, ge=1, description="samples (per replica) the boost lasts")


class StoppingConfig(BaseModel):
    """When more labels no longer pay (see `streamal.training.stopping`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(3, ge=1, description="rounds each rule but the budget is judged over")
    min_gain: float = Field(
        0.005, ge=0, description="held-out accuracy gain below which the rounds are a plateau"
    )
    agreement: float = Field(
        0.99, gt=0, le=1, description="mean kappa between rounds on the stop set that is stable"
    )
    stop_set: int = Field(
        500, ge=50, description="random (explore) requests of the concept the rules watch"
    )
    uncertainty: float = Field(
        0.02, ge=0, lt=1, description="mean least confidence on the stop set that is low"
    )
    max_labels: int | None = Field(None, ge=1, description="labels to spend at most (none: no cap)")


class TrainConfig(BaseModel):
    """How ``streamal train`` keeps labels and when it trains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field("streamal-train", min_length=1)
    label_store: Path = Path(".streamal/labels.sqlite")
    interval_s: float = Field(300, gt=0, description="train at least this often (with new labels)")
    min_new_labels: int = Field(
        200, ge=1, description="train as soon as this many labels met their requests"
    )
    first_round_labels: int = Field(
        4, ge=1, description="the first round's labels; then a round each time they double"
    )
    update_labels: int = Field(
        1, ge=0, description="learn incrementally as soon as this many new labels came (0: never)"
    )
    publish_interval_s: float = Field(
        10.0, ge=0, description="at most one incrementally updated version this often"
    )
    duplicates: Literal["latest", "majority"] = "latest"
    max_future_s: float = Field(
        300, ge=0, description="an answer dated further ahead than this is dead-lettered"
    )
    pending_ttl_s: float = Field(86_400, gt=0, description="keep labels of unknown ids this long")
    validation_share: float = Field(0.2, gt=0, lt=1)
    recent_requests: int = Field(2000, ge=10, description="requests the budget threshold uses")
    drift: DriftConfig = DriftConfig()
    stopping: StoppingConfig = StoppingConfig()
    metrics_address: str = Field("0.0.0.0:9401", description="host:port of /metrics and probes")

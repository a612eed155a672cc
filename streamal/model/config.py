"""Settings of the model: the default model's shape and training recipe, or a user's model
(`streamal.model.StreamModel`) by import path with its own options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from streamal.plugins import ImportPath

MLP_ALONE: dict[str, Any] = {"online": [], "neighbors": 0, "kalman": []}
"""The `ModelConfig` fields that leave the default model's MLP without the parts blended with
it: what the default model was before the blend, to measure the parts against."""


class FitConfig(BaseModel):
    """How the default model trains: Adam with early stopping on the held-out labels in full
    rounds, and a few Adam steps on new labels (with replayed old ones) in between."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_epochs: int = Field(50, ge=1)
    patience: int = Field(3, ge=1, description="epochs without improvement before stopping")
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    min_steps: int = Field(10, ge=1, description="fewest optimizer steps an epoch takes")
    update_steps: int = Field(
        50, ge=1, description="optimizer steps of an incremental update (new labels + replay)"
    )
    blend_memory: float = Field(
        200, gt=1, description="labels over which the MLP and its online parts are weighed"
    )


class ModelConfig(BaseModel):
    """The model every process builds the same way (serve, train, pool)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "default"
    n_features: int = Field(
        10, ge=1, description="length of Sample.features (or featurizer output)"
    )
    classes: list[str] = Field(["0", "1"], min_length=2)
    hidden: list[Annotated[int, Field(ge=1)]] = Field([64, 64], description="hidden layer sizes")
    dropout: float = Field(0.1, ge=0, lt=1)
    online: list[Annotated[float, Field(gt=0)]] = Field(
        [0.01, 0.1],
        description="SGD rates of linear parts blended with the MLP, each learned online, "
        "label by label ([]: none)",
    )
    kalman: list[Annotated[float, Field(ge=0)]] = Field(
        [1e-4],
        description="process noise per label of Kalman-filter logistic parts blended with the "
        "MLP, each learned online, label by label ([]: none; more noise follows drift faster)",
    )
    neighbors: int = Field(
        10, ge=0,
        description="nearest remembered labels whose votes make a part blended with the MLP "
        "(0: no such part)",
    )  # fmt: skip
    memory: int = Field(1000, ge=1, description="latest labels the neighbours part remembers")
    module: ImportPath | None = Field(
        None, description="package.module:function(n_features, n_classes) -> torch.nn.Module"
    )
    featurizer: ImportPath | None = Field(
        None, description="package.module:function(list of payloads) -> array [B, n_features]"
    )
    fit: FitConfig = FitConfig()
    factory: ImportPath | None = Field(
        None,
        description="package.module:factory(classes, device, **options) -> StreamModel; "
        "replaces the default model (and the fields above)",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments passed to model.factory"
    )
    committee: int = Field(
        1, ge=1,
        description="members of a query-by-committee model (each on its own bootstrap of the "
        "labels, with its own seed); 1: a single model",
    )  # fmt: skip
    device: Literal["auto", "cpu", "cuda"] = "auto"
    store: Path = Field(Path(".streamal/models"), description="model store directory or volume")
    keep_versions: int = Field(
        100, ge=0, description="newest versions the store keeps as new ones come (0: every one)"
    )
    keep_rounds: int = Field(
        20, ge=0, description="versions published by a round kept beyond keep_versions"
    )

    @field_validator("name")
    @classmethod
    def _a_folder_inside_the_store(cls, name: str) -> str:
        if name in (".", ".."):
            raise ValueError("must name a folder inside model.store, not '.' or '..'")
        return name

    @model_validator(mode="after")
    def _distinct_classes(self) -> Self:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        if self.options and not self.factory:
            raise ValueError("options are passed to model.factory: set it, or remove options")
        return self

"""Settings of the Label Studio bridge (``streamal bridge label-studio``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]


class LabelStudioConfig(BaseModel):
    """Where the Label Studio project is, how the bridge shows samples there, and where Label
    Studio reaches the bridge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: HttpUrl = Field("http://localhost:8080", description="Label Studio's base URL")
    token: SecretStr | None = Field(
        None, description="an API token of the bridge's Label Studio user (legacy or personal)"
    )
    project: int | Annotated[str, StringConstraints(min_length=3, max_length=50)] = Field(
        "streamal", description="the project's id, or its title (created if missing)"
    )
    label_config: str | None = Field(
        None,
        description="labeling config of a project the bridge creates (XML, with one Choices "
        "tag); default: the field `show` as text and one choice per model class",
    )
    show: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        "view", description="the task data field a generated labeling config shows"
    )
    listen: str = Field(
        "0.0.0.0:9402", description="host:port of the webhook receiver and the ML backend"
    )
    public_url: HttpUrl | None = Field(
        None,
        description="how Label Studio reaches `listen` (http://host:port); when set, the "
        "bridge registers its webhook and connects itself as the project's ML backend",
    )
    group: str = Field("streamal-label-studio", min_length=1, description="consumer group")
    state: Path = Field(
        Path(".streamal/label-studio.sqlite"), description="answers already turned into labels"
    )
    batch: int = Field(100, ge=1, le=10_000, description="label requests imported per call")
    reconcile_interval_s: float = Field(
        60.0, gt=0, description="read the project's changed annotations back this often"
    )
    refresh_tasks: int = Field(
        500, ge=0, description="open tasks given new predictions per new model version (0: none)"
    )
    timeout_s: float = Field(10.0, gt=0, description="of each call to Label Studio")
    metrics_address: str = Field("0.0.0.0:9403", description="host:port of /metrics and probes")


class BridgeConfig(BaseModel):
    """The bridges from streamal's topics to annotation tools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label_studio: LabelStudioConfig = LabelStudioConfig()

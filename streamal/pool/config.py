"""Settings of the pool job (``streamal pool select``) beyond the strategy: its proxy model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from streamal.plugins import ImportPath

__all__ = ["PoolJobConfig", "ProxyConfig"]


class ProxyConfig(BaseModel):
    """The proxy of ``pool select --proxy``: a small, fast model that scores and selects for the
    target model (selection via proxy, Coleman et al. 2020). It is the ``model`` section with
    these fields replaced: same classes, features, featurizer, device and store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = Field(
        "proxy", description="its folder in the model store (for --proxy latest)"
    )
    hidden: list[Annotated[int, Field(ge=1)]] = Field([16], description="hidden layer sizes")
    dropout: float = Field(0.0, ge=0, lt=1)
    module: ImportPath | None = Field(None, description="as model.module, for the proxy")
    factory: ImportPath | None = Field(None, description="as model.factory, for the proxy")
    options: dict[str, Any] = Field(default_factory=dict, description="its factory's options")


class PoolJobConfig(BaseModel):
    """``streamal pool select``'s settings that are not the strategy's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proxy: ProxyConfig = ProxyConfig()

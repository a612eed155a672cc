"""Settings of the selective-sampling daemon (``streamal serve``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """How ``streamal serve`` consumes, batches and reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field("streamal-serve", min_length=1, description="consumer group of replicas")
    max_batch: int = Field(256, ge=1, le=65_536, description="samples per micro-batch at most")
    max_wait_ms: int = Field(20, ge=0, le=60_000, description="wait this long to fill a batch")
    max_record_bytes: int = Field(1 << 20, ge=64, description="larger samples are dead-lettered")
    top_k: int = Field(3, ge=1, description="guesses shown to annotators in a label request")
    metrics_address: str = Field(
        "0.0.0.0:9400", description="host:port of /metrics, /healthz, /readyz"
    )

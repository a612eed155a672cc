"""Settings of the selective-sampling daemon (``streamal serve``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# What a label request adds to its sample's fields, at most: the record key (an id of 512
# characters), the prediction's guesses, utility, reason, model version and time.
LABEL_REQUEST_ROOM = 16 << 10


class ServeConfig(BaseModel):
    """How ``streamal serve`` consumes, batches and reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field("streamal-serve", min_length=1, description="consumer group of replicas")
    max_batch: int = Field(256, ge=1, le=65_536, description="samples per micro-batch at most")
    max_wait_ms: int = Field(20, ge=0, le=60_000, description="wait this long to fill a batch")
    max_record_bytes: int | None = Field(
        None,
        ge=64,
        description="larger samples are dead-lettered (default: transport.max_record_bytes "
        "less room for the rest of a label request)",
    )
    top_k: int = Field(3, ge=1, description="guesses shown to annotators in a label request")
    unhealthy_after_s: float = Field(
        120.0, gt=0, description="/healthz fails once batches have failed this long in a row"
    )
    metrics_address: str = Field(
        "0.0.0.0:9400", description="host:port of /metrics, /healthz, /readyz"
    )

    def sample_limit(self, max_output_bytes: int) -> int:
        """The largest sample record served: ``max_record_bytes``, by default what the output
        limit ``max_output_bytes`` leaves after the rest of a label request.

        >>> ServeConfig().sample_limit(1 << 20)
        1032192
        >>> ServeConfig(max_record_bytes=4096).sample_limit(1 << 20)
        4096
        """
        return self.max_record_bytes or max_output_bytes - LABEL_REQUEST_ROOM

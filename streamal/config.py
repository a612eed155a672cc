"""Settings: one YAML file per deployment, overridden by ``STREAMAL_`` environment variables.

Precedence, highest first: environment (``STREAMAL_STRATEGY__BUDGET=0.05``; ``__`` nests),
the YAML file, the defaults below. Every model is frozen and rejects unknown fields, so a typo
is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from streamal.bridge.config import BridgeConfig
from streamal.errors import ConfigError
from streamal.logs import LogConfig
from streamal.model.config import ModelConfig
from streamal.pool.config import PoolJobConfig
from streamal.strategies import StrategyConfig
from streamal.stream.config import LABEL_REQUEST_ROOM, ServeConfig
from streamal.training.config import TrainConfig
from streamal.validation import one_line

CONFIG_ENV = "STREAMAL_CONFIG"
MAX_RECORD_BYTES = 1 << 20  # Kafka's default max.request.size

TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


def _split_commas(value: Any) -> Any:
    return (
        [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, str)
        else value
    )


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


class Section(BaseModel):
    """Base of every config section: frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalTransportConfig(Section):
    """The embedded transport: a durable log in one SQLite file shared by local processes."""

    path: Path = Path(".streamal/log.sqlite")
    partitions: int = Field(4, ge=1, le=1024, description="partitions of topics it creates")
    session_timeout_s: float = Field(
        10.0, gt=0, description="a silent consumer loses its partitions after this"
    )
    synchronous: Literal["full", "normal"] = Field(
        "full", description="full survives power loss; normal survives process crashes only"
    )


class KafkaTransportConfig(Section):
    """Apache Kafka through kafka-python; security settings are passed through."""

    bootstrap_servers: CommaList = Field(["localhost:9092"], min_length=1)
    client_id: str = "streamal"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    replica_id: str | None = Field(
        None,
        description="unique per replica of a group (default: hostname); transactional "
        "id = <group>-<replica_id>",
    )
    create_topics: bool = Field(True, description="create missing topics with the admin client")
    partitions: int = Field(6, ge=1, description="partitions of topics it creates")
    replication_factor: int = Field(1, ge=1, description="replication of topics it creates")
    connect_timeout_ms: int = Field(30_000, ge=100, description="wait for a first broker this long")
    request_timeout_ms: int = Field(
        30_000, ge=1_000, description="the longest a request, or a call of the client, waits"
    )
    session_timeout_ms: int = Field(
        45_000, ge=1_000,
        description="a consumer silent this long leaves its group (heartbeats: a third of it, "
        "at most 3 s)",
    )  # fmt: skip
    transaction_timeout_ms: int = Field(60_000, ge=1_000)
    linger_ms: int = Field(5, ge=0)


class TransportConfig(Section):
    """Which transport carries the topics, and the settings of each."""

    kind: Literal["local", "kafka"] = "local"
    max_record_bytes: int = Field(
        MAX_RECORD_BYTES,
        ge=1 << 15,
        description="largest record streamal produces (Kafka's max.request.size); at most the "
        "broker's message.max.bytes and each topic's max.message.bytes",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a consumer group without committed offsets starts"
    )
    local: LocalTransportConfig = LocalTransportConfig()
    kafka: KafkaTransportConfig = KafkaTransportConfig()


class TopicsConfig(Section):
    """Topic names, one per kind of message (see ``streamal.messages``)."""

    samples: TopicName = "samples"
    label_requests: TopicName = "label-requests"
    auto_labels: TopicName = "auto-labels"
    retractions: TopicName = "auto-label-retractions"
    labels: TopicName = "labels"
    models: TopicName = "models"
    dead_letter: TopicName = "dead-letter"


class Settings(BaseSettings):
    """The whole effective configuration of a streamal process."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMAL_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    transport: TransportConfig = TransportConfig()
    topics: TopicsConfig = TopicsConfig()
    model: ModelConfig = ModelConfig()
    strategy: StrategyConfig = StrategyConfig()
    serve: ServeConfig = ServeConfig()
    train: TrainConfig = TrainConfig()
    bridge: BridgeConfig = BridgeConfig()
    pool: PoolJobConfig = PoolJobConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _samples_leave_room(self) -> Settings:
        """A sample at serve's input cap must still fit in a label request."""
        wanted, most = self.serve.max_record_bytes, self.transport.max_record_bytes
        if wanted is not None and wanted > most - LABEL_REQUEST_ROOM:
            problem = PydanticCustomError(
                "no_room",
                "must leave {room} bytes of transport.max_record_bytes ({most}) for the rest of"
                " a label request",
                {"most": most, "room": LABEL_REQUEST_ROOM},
            )
            details = InitErrorDetails(
                type=problem, loc=("serve", "max_record_bytes"), input=wanted
            )
            raise ValidationError.from_exception_data(type(self).__name__, [details])
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the YAML file (passed as init values), which beats defaults."""
        return env_settings, init_settings, file_secret_settings


def load_settings(path: str | Path | None = None) -> Settings:
    """Load ``path`` (or ``$STREAMAL_CONFIG``, or nothing) plus the environment.

    Raises
    ------
    ConfigError
        With one line naming the file or field and what is allowed.
    """
    path = path or os.environ.get(CONFIG_ENV) or None
    data = _read_yaml(Path(path)) if path else {}
    try:
        return Settings(**data)
    except ValidationError as error:
        raise ConfigError(f"config error: {one_line(error, Settings)}") from None
    except SettingsError as error:  # an environment value that does not parse
        raise ConfigError(f"config error: {error}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"config error: {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config error: {path}: invalid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config error: {path}: the top level must be a mapping of sections")
    return data


def show(settings: Settings) -> str:
    """The effective configuration as YAML, secrets masked."""
    dumped = settings.model_dump(mode="json")
    return yaml.safe_dump(dumped, sort_keys=False, default_flow_style=False)

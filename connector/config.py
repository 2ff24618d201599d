"""Connector configuration: one YAML file, validated at start-up, with environment overrides.

The file (``config/connector.yaml``) names the Kafka settings, the topics (schema, encoding, DLQ, ordering
key), the Attentive settings, the delivery tuning and the rule-table file. Deployment-specific values can be
overridden by environment variables (see :class:`EnvOverrides`). Every error names the file, the key and
what to do about it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.attentive.endpoints import Endpoint
from connector.errors import ConfigError

DEFAULT_METRICS_PORT = 9400
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str | None) -> str | None:
    """A log level name, upper-cased; anything else is refused (``run`` would not know what to do)."""
    if value is None:
        return None
    level = value.strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Encoding(enum.StrEnum):
    """How producers encode a topic's values."""

    CONFLUENT = "confluent"  # magic byte 0 + 4-byte schema id; writer schema from the registry
    RAW = "raw"  # schemaless Avro; writer schema is the topic's schema file


def _is_secret_key(key: str) -> bool:
    return any(word in key for word in ("password", "secret", "sasl.jaas", "user.info", "token"))


class _RedactedClient(_Strict):
    """Hides credential-looking entries of the ``client`` pass-through map in reprs."""

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "client" and isinstance(value, dict):
                yield name, {k: ("**********" if _is_secret_key(k) else v) for k, v in value.items()}
            else:
                yield name, value


class SchemaRegistrySettings(_RedactedClient):
    url: str
    # Extra settings for confluent-kafka's SchemaRegistryClient (basic.auth.user.info, ssl.*, ...).
    client: dict[str, str | int | float | bool] = Field(default_factory=dict)


class KafkaSettings(_RedactedClient):
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "attentive-connector"
    # Passed through to librdkafka unchanged: security.protocol, sasl.*, ssl.*, and any tuning.
    client: dict[str, str | int | float | bool] = Field(default_factory=dict)
    schema_registry: SchemaRegistrySettings | None = None


class TopicSettings(_Strict):
    schema_file: Path = Field(validation_alias=AliasChoices("schema", "schema_file"))
    encoding: Encoding = Encoding.RAW
    dlq_topic: str | None = None
    # JMESPath over the decoded record giving the ordering key (e.g. ``customer.id``); default: Kafka key.
    key_field: str | None = None


class RetrySettings(_Strict):
    max_attempts: int = Field(default=8, ge=1)
    max_age_s: float = Field(default=900.0, gt=0)
    backoff_base_s: float = Field(default=0.2, gt=0)
    backoff_cap_s: float = Field(default=30.0, gt=0)


class CircuitSettings(_Strict):
    """Per-endpoint circuit: when most calls fail, stop dead-lettering and hold the backlog."""

    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    window_s: float = Field(default=10.0, gt=0)
    min_calls: int = Field(default=10, ge=1)
    open_s: float = Field(default=5.0, gt=0)


class DeliverySettings(_Strict):
    max_in_flight: int = Field(default=64, ge=1)
    max_buffered_records: int = Field(default=5000, ge=1)
    max_buffered_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    commit_interval_s: float = Field(default=2.0, gt=0)
    revoke_timeout_s: float = Field(default=15.0, gt=0)
    shutdown_grace_s: float = Field(default=25.0, gt=0)
    unmatched: Literal["skip", "dead_letter"] = "skip"
    retry: RetrySettings = Field(default_factory=RetrySettings)
    circuit: CircuitSettings = Field(default_factory=CircuitSettings)
    auth_check_interval_s: float = Field(default=5.0, gt=0)


class AttentiveSettings(_Strict):
    base_url: str = "https://api.attentivemobile.com"
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    default_region: str = "US"
    timeout_s: float = Field(default=10.0, gt=0)
    # Requests per second per endpoint name; endpoints not listed use Attentive's published limit.
    rate_limits: dict[Endpoint, float] = Field(default_factory=dict)
    # Slow down when x-ratelimit-remaining falls below this share of x-ratelimit-limit.
    rate_limit_headroom: float = Field(default=0.1, ge=0, lt=1)
    # Where the key came from (an environment variable, the file's key, a flag), for error messages.
    _key_origin: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_key_source(self) -> AttentiveSettings:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError(
                "api_key and api_key_file are both set: keep one (the key, or the file holding it)"
            )
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("api_key is empty: set the key, or remove the entry and use api_key_file")
        return self

    def with_key_origin(self, origin: str | None) -> AttentiveSettings:
        """Record where the key came from (e.g. ``ATTENTIVE_API_KEY``); returns ``self``."""
        self._key_origin = origin
        return self

    @property
    def key_source(self) -> str:
        """Where the key comes from, for messages: a variable, a config key or a flag (never the key)."""
        if self._key_origin is not None:
            return self._key_origin
        if self.api_key is not None:
            return "attentive.api_key"
        if self.api_key_file is not None:
            return "attentive.api_key_file"
        return "nowhere (no key configured)"

    def rate_limit(self, endpoint: Endpoint) -> float:
        return self.rate_limits.get(endpoint, endpoint.default_rate_limit)

    def resolved_api_key(self) -> SecretStr:
        """The key from ``api_key`` or the mounted secret file ``api_key_file`` (one of them, never both)."""
        if self.api_key is not None:
            return self.api_key
        if self.api_key_file is not None:
            try:
                text = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{self.key_source}: cannot read the API key file {self.api_key_file}: {exc.strerror}"
                ) from None
            if not text:
                raise ConfigError(
                    f"{self.key_source}: the API key file {self.api_key_file} is empty; "
                    "expected the key on one line"
                )
            return SecretStr(text)
        raise ConfigError(
            "attentive.api_key: no API key; set ATTENTIVE_API_KEY, attentive.api_key or attentive.api_key_file"
        )


class LoggingSettings(_Strict):
    format: Literal["json", "text"] = "json"
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        level = _log_level(v)
        assert level is not None
        return level


class MetricsSettings(_Strict):
    port: int = Field(default=DEFAULT_METRICS_PORT, ge=0, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - kubelet probes and Prometheus reach the pod IP


class ConnectorConfig(_Strict):
    """The whole connector configuration. ``source_file`` is where it was loaded from (for messages)."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: dict[str, TopicSettings]
    attentive: AttentiveSettings = Field(default_factory=AttentiveSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    rules_file: Path = Field(default=Path("rules.yaml"), validation_alias=AliasChoices("rules", "rules_file"))
    source_file: Path | None = None

    @field_validator("topics")
    @classmethod
    def _at_least_one_topic(cls, v: dict[str, TopicSettings]) -> dict[str, TopicSettings]:
        if not v:
            raise ValueError("name at least one topic")
        return v

    def dlq_topic(self, topic: str) -> str:
        return self.topics[topic].dlq_topic or f"{topic}.dlq"

    @property
    def base_dir(self) -> Path:
        return self.source_file.parent if self.source_file else Path.cwd()

    def resolve(self, path: Path) -> Path:
        """Paths in the file are relative to the file's folder."""
        return path if path.is_absolute() else self.base_dir / path


class EnvOverrides(BaseSettings):
    """Environment variables that override the file (deployment-specific values)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True)

    KAFKA_BOOTSTRAP_SERVERS: str | None = None
    KAFKA_GROUP_ID: str | None = None
    # Static group membership (KIP-345): a stable member name such as a StatefulSet pod's, written into
    # kafka.client as group.instance.id, so a restart inside session.timeout.ms causes no rebalance.
    KAFKA_GROUP_INSTANCE_ID: str | None = None
    SCHEMA_REGISTRY_URL: str | None = None
    ATTENTIVE_API_BASE_URL: str | None = None
    ATTENTIVE_API_KEY: SecretStr | None = None
    ATTENTIVE_API_KEY_FILE: str | None = None
    METRICS_PORT: int | None = Field(default=None, ge=0, le=65535)
    # Mounted from the chart's Kafka SASL secret; written into kafka.client (librdkafka settings).
    KAFKA_SASL_USERNAME: str | None = None
    KAFKA_SASL_PASSWORD: SecretStr | None = None
    LOG_FORMAT: Literal["json", "text"] | None = None
    LOG_LEVEL: str | None = None

    @field_validator("LOG_LEVEL")
    @classmethod
    def _known_level(cls, v: str | None) -> str | None:
        return _log_level(v)

    @model_validator(mode="after")
    def _one_key_variable(self) -> EnvOverrides:
        if self.ATTENTIVE_API_KEY is not None and self.ATTENTIVE_API_KEY_FILE is not None:
            raise ValueError("ATTENTIVE_API_KEY and ATTENTIVE_API_KEY_FILE are both set: unset one")
        if self.ATTENTIVE_API_KEY is not None and not self.ATTENTIVE_API_KEY.get_secret_value().strip():
            raise ValueError("ATTENTIVE_API_KEY is set but empty: set the key, or unset the variable")
        if self.KAFKA_GROUP_INSTANCE_ID is not None and not self.KAFKA_GROUP_INSTANCE_ID.strip():
            raise ValueError(
                "KAFKA_GROUP_INSTANCE_ID is set but empty: expected a stable member name, e.g. the pod name"
            )
        if self.ATTENTIVE_API_KEY_FILE is not None and not self.ATTENTIVE_API_KEY_FILE.strip():
            raise ValueError("ATTENTIVE_API_KEY_FILE is set but empty: expected the path of the key file")
        return self

    @property
    def key_origin(self) -> str | None:
        """The variable the API key comes from, if one is set."""
        if self.ATTENTIVE_API_KEY is not None:
            return "ATTENTIVE_API_KEY"
        if self.ATTENTIVE_API_KEY_FILE is not None:
            return "ATTENTIVE_API_KEY_FILE"
        return None

    def apply(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Return ``raw`` (the parsed YAML) with the set variables written into it."""
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}

        def put(section: str, key: str, value: Any) -> None:
            if value is not None:
                sec = out.get(section) or {}
                out[section] = {**sec, key: value}

        put("kafka", "bootstrap_servers", self.KAFKA_BOOTSTRAP_SERVERS)
        put("kafka", "group_id", self.KAFKA_GROUP_ID)
        if self.SCHEMA_REGISTRY_URL:
            reg = dict((out.get("kafka") or {}).get("schema_registry") or {})
            reg["url"] = self.SCHEMA_REGISTRY_URL
            put("kafka", "schema_registry", reg)
        if self.KAFKA_SASL_USERNAME is not None or self.KAFKA_SASL_PASSWORD is not None:
            client = dict((out.get("kafka") or {}).get("client") or {})
            if self.KAFKA_SASL_USERNAME is not None:
                client["sasl.username"] = self.KAFKA_SASL_USERNAME
            if self.KAFKA_SASL_PASSWORD is not None:
                client["sasl.password"] = self.KAFKA_SASL_PASSWORD.get_secret_value()
            put("kafka", "client", client)
        if self.KAFKA_GROUP_INSTANCE_ID is not None:
            client = dict((out.get("kafka") or {}).get("client") or {})
            client["group.instance.id"] = self.KAFKA_GROUP_INSTANCE_ID.strip()
            put("kafka", "client", client)
        put("attentive", "base_url", self.ATTENTIVE_API_BASE_URL)
        if self.ATTENTIVE_API_KEY is not None or self.ATTENTIVE_API_KEY_FILE is not None:
            # A key variable replaces the file's key source (api_key or api_key_file), never adds a second.
            attentive = {
                k: v for k, v in (out.get("attentive") or {}).items() if k not in ("api_key", "api_key_file")
            }
            if self.ATTENTIVE_API_KEY is not None:
                attentive["api_key"] = self.ATTENTIVE_API_KEY.get_secret_value()
            else:
                attentive["api_key_file"] = self.ATTENTIVE_API_KEY_FILE
            out["attentive"] = attentive
        put("metrics", "port", self.METRICS_PORT)
        put("logging", "format", self.LOG_FORMAT)
        put("logging", "level", self.LOG_LEVEL)
        return out


# What each variable must look like, for the one-line error (the value itself is never shown).
_ENV_FORMS = {
    "METRICS_PORT": "a port number from 0 to 65535",
    "LOG_FORMAT": "json or text",
    "LOG_LEVEL": f"one of {', '.join(LOG_LEVELS)}",
}


def env_overrides(env: Mapping[str, str] | None = None) -> EnvOverrides:
    """The override variables from ``env`` (default: the process environment), validated.

    Raises :class:`ConfigError` with one line per bad variable, naming it and the expected form.
    """
    source = dict(os.environ if env is None else env)
    try:
        return EnvOverrides.model_validate(source)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            if name in _ENV_FORMS:
                lines.append(f"environment variable {name}: expected {_ENV_FORMS[name]}")
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
                lines.append(f"environment variable {name}: {msg}" if name else f"environment: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> ConnectorConfig:
    """Load, override from the environment and validate. Raises :class:`ConfigError` naming file and key.

    ``env`` replaces the process environment (tests, the demo); by default ``os.environ`` is read.
    """
    p = Path(path)
    overrides = env_overrides(env)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the config file must be a mapping (key: value), not {type(raw).__name__}")
    raw = overrides.apply(raw)
    try:
        config = ConnectorConfig.model_validate({**raw, "source_file": p.resolve()})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(p, exc)) from None
    origin = overrides.key_origin
    if origin is None and config.attentive.api_key is not None:
        origin = f"attentive.api_key in {p}"
    elif origin is None and config.attentive.api_key_file is not None:
        origin = f"attentive.api_key_file in {p}"
    config.attentive.with_key_origin(origin)
    return config


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """One line per problem: ``file: key.path: message``. Input values are not echoed (they may be secrets)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see README's configuration reference)"
        lines.append(f"{path}: {loc}: {msg}")
    return "\n".join(lines)

"""Configuration: ``IMAGEGATE_*`` environment variables, plus an optional TOML file.

Built once by the CLI (or a test) and handed to ``build_runtime``; nothing reads the environment
at import time. Nested values use ``__``: ``IMAGEGATE_PROVIDERS__OPENAI__API_KEY=sk-…``. The TOML
file (``IMAGEGATE_CONFIG_FILE``, default ``./imagegate.toml`` when present) uses the same names:

    [providers.openai]
    api_key = "sk-…"

    [prices.gpt-image-1_5]     # model id → price point → credits
    low = 5
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["ProviderSettings", "Settings"]


class ProviderSettings(BaseModel):
    """One upstream vendor's configuration. ``options`` holds vendor-specific keys."""

    api_key: SecretStr | None = None
    base_url: str | None = None
    timeout: float = 120.0
    max_concurrency: int = 8
    """Calls in flight to this provider at once, across every worker process."""
    rate_per_minute: int | None = None
    """Calls per minute to this provider across every worker (``None``: no limit of ours)."""
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _parse_env_values(cls, value: Any) -> Any:
        """One option per environment variable arrives as text: read JSON values as JSON.

        ``…__OPTIONS__WATERMARK=false`` is then ``False`` and ``…__OPTIONS__MODELS={"a": "b"}`` a
        mapping; text that is not JSON (``…__OPTIONS__REGION=cn``) stays text.
        """
        if not isinstance(value, dict):
            return value
        parsed: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str):
                with contextlib.suppress(ValueError):
                    item = json.loads(item)
            parsed[key] = item
        return parsed

    @property
    def configured(self) -> bool:
        """Credentials are present: an API key, or Kling-style access and secret keys."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return True
        return bool(self.options.get("access_key") and self.options.get("secret_key"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IMAGEGATE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # Where things live.
    database_url: str = "sqlite+aiosqlite:///./data/imagegate.db"
    data_dir: Path = Path("./data")
    storage_url: str | None = None
    """``None`` = ``<data_dir>/files``; ``s3://bucket/prefix`` for S3-compatible storage."""
    storage_options: dict[str, str] = Field(default_factory=dict)
    """S3 only: ``endpoint``, ``region``, ``access_key_id``, ``secret_access_key``, ``path_style``,
    ``allow_http``."""
    storage_url_mode: Literal["presigned", "gateway"] = "presigned"
    """S3 only: hand out presigned S3 URLs, or gateway URLs signed like local files."""
    public_base_url: str = "http://127.0.0.1:8000"
    """How clients reach this gateway (in result URLs). Left unset, ``serve`` makes it the
    address it listens on (``listening_on``)."""
    host: str = "127.0.0.1"
    port: int = 8000

    # Secrets.
    signing_secret: SecretStr | None = None
    """Signs download URLs. Generated into ``<data_dir>/signing.key`` on first start when unset."""

    # Limits.
    max_body_bytes: int = 1_000_000
    max_queued_jobs_per_account: int = 100
    result_url_ttl_seconds: int = 3600
    output_max_bytes: int = 50_000_000
    output_retention_days: int = 30
    output_retention_max_days: int = 365
    """The longest retention a request may ask for with ``X-Retention-Days``."""
    upload_max_bytes: int = 25 * 1024 * 1024
    upload_ttl_seconds: int = 7200
    sweep_interval_seconds: float = 60.0
    idempotency_ttl_hours: int = 24
    job_deadline_seconds: int = 3600

    # Queue tuning.
    workers: int = 4
    """Concurrent jobs per worker process (asyncio tasks)."""
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0

    # Sandbox (the built-in renderer that test keys use).
    sandbox_latency_seconds: float = 1.5
    sandbox_progress_steps: int = 3

    # Upstreams and prices.
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    prices: dict[str, dict[str, int]] = Field(default_factory=dict)
    routes: dict[str, list[str]] = Field(default_factory=dict)
    """Operator route order per model id, as ``provider:upstream-model`` strings; replaces the
    catalog's routes for that model (e.g. ``{"flux-2-pro": ["fal:fal-ai/flux-2-pro"]}``)."""
    allow_substitutes: bool = True
    """Serve models retired upstream (DALL·E, Imagen) through documented substitutes."""
    redis_url: str | None = None
    """Optional: keep the provider gates' shared counters (rate windows, slots, circuit) in
    Redis instead of the database, e.g. ``redis://127.0.0.1:6379/0``."""
    redis_prefix: str = "imagegate"
    """Key prefix in Redis, so several gateways can share one server."""
    failover_after_seconds: float = 20.0
    """A provider asking us to wait longer than this (429 ``Retry-After``) is skipped for the
    next route when there is one."""
    circuit_failures: int = 5
    """Retryable failures in a row that open a provider's circuit."""
    circuit_open_seconds: float = 30.0
    """How long an open circuit keeps jobs away from the provider before one call tries it."""

    # Outbound URL guard (webhooks, input images).
    outbound_allow_http: bool = False
    outbound_allow_networks: list[str] = Field(default_factory=list)

    log_level: str = "INFO"
    log_json: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("IMAGEGATE_CONFIG_FILE", "imagegate.toml")
        if Path(config_file).is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def listening_on(self, host: str, port: int) -> Settings:
        """These settings for a gateway listening on ``host:port``.

        Unless ``public_base_url`` was set explicitly, result URLs name that address, so
        ``serve --port 8011`` hands out URLs that work; a wildcard bind (``0.0.0.0``, ``::``)
        is named by the loopback address, since no single public name can be guessed.
        """
        update: dict[str, Any] = {"host": host, "port": port}
        if "public_base_url" not in self.model_fields_set:
            shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
            update["public_base_url"] = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
        return self.model_copy(update=update)

    def provider(self, name: str) -> ProviderSettings:
        return self.providers.get(name) or ProviderSettings()

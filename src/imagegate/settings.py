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
import difflib
import json
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from limits import RateLimitItem, parse_many
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

__all__ = [
    "ProviderSettings",
    "SettingError",
    "SettingName",
    "Settings",
    "check_names",
    "config_file_path",
    "load_settings",
    "parse_rate",
    "read_config_file",
    "written_paths",
]


def parse_rate(text: str) -> list[RateLimitItem]:
    """``"120/minute"`` or ``"5/second;1000/hour"`` as ``limits`` items; ValueError when bad."""
    try:
        items = list(parse_many(text))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a rate like '120/minute' or '5/second;1000/hour'"
        ) from exc
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{text!r} is not a rate like '120/minute' or '5/second;1000/hour'")
    return items


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
    signing_secret_previous: SecretStr | None = None
    """The secret being rotated out: URLs it signed are still accepted (never used to sign), so
    links handed out before a rotation keep working until they expire."""

    # Limits.
    max_body_bytes: int = 1_000_000
    max_queued_jobs_per_account: int = 100
    result_url_ttl_seconds: int = 3600
    output_max_bytes: int = 50_000_000
    output_retention_days: int = 30
    output_retention_max_days: int = 365
    """The longest retention a request may ask for with ``X-Retention-Days``."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection that has not sent a request's headers within this time (after it opens, or
    after its last response) is closed: slow-header clients cannot hold connections open."""
    upload_max_bytes: int = 25 * 1024 * 1024
    upload_ttl_seconds: int = 7200
    sweep_interval_seconds: float = 60.0
    idempotency_ttl_hours: int = 24
    job_deadline_seconds: int = 3600
    openai_wait_seconds: float = Field(default=300.0, gt=0)
    """How long ``/v1/images/...`` waits for its job before answering 504 with the job id."""
    owner_email: str = "owner@localhost.localdomain"
    """The first account's email, and the one ``GET /v2/me`` shows for an account without one."""

    # Queue tuning.
    workers: int = Field(default=8, ge=1)
    """CPU-side concurrency per worker process: jobs decoding, checking and storing images at
    once. Jobs waiting on an upstream do not count (see ``jobs_in_flight``)."""
    jobs_in_flight: int | None = Field(default=None, ge=1)
    """Jobs one worker process holds at once, most of them waiting on an upstream (each costs
    a coroutine). ``None`` (the default) derives it: the sum of the configured providers'
    ``max_concurrency`` plus ``workers``, so raising a provider's cap is the only tuning."""
    provider_wait_seconds: float = Field(default=30.0, ge=0)
    """How long a claimed job waits in-process for a free lease of a provider at its
    ``max_concurrency`` before it is put back in the queue for later."""
    lease_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    events_heartbeat_seconds: float = 15.0
    """An idle ``GET /v2/jobs/{id}/events`` stream sends a comment this often (for proxies)."""
    events_poll_seconds: float = 2.0
    """Live streams and ``Prefer: wait`` re-read the job this often even without a signal."""

    # Background loops and outages (``imagegate.supervisor``, ``imagegate.queue.runner``).
    outage_backoff_seconds: float = 0.5
    """First wait before a loop retries a database or storage that is down; doubles per try."""
    outage_backoff_cap_seconds: float = 10.0
    """The longest wait between two tries during an outage."""
    loop_restart_budget: int = 5
    """Crashes of one background loop restarted within ``loop_restart_window_seconds``; one
    more and the process exits non-zero."""
    loop_restart_window_seconds: float = 60.0
    loop_restart_backoff_seconds: float = 1.0
    """First wait before a crashed loop is restarted; doubles per crash in the window."""
    interrupted_calls: Literal["resubmit_once", "fail"] = "resubmit_once"
    """A paid upstream call cut off by a crash before its answer arrived: submitted again once
    (counted on the job), or the job fails, refunded."""

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

    # Who may use what: per-key request rates (``imagegate.services.limits``). Per-account caps
    # on concurrent jobs and daily spend, per-key rates and allowed models are stored in the
    # database and set with ``imagegate accounts limits`` / ``imagegate keys limit``.
    rate_limit_submit: str = ""
    """Default requests per key that change something (POST: submits, actions, cancels,
    uploads), in the ``limits`` notation: ``"120/minute"``, ``"5/second;1000/hour"``; ``""``
    (the default) means no limit. Counted in Redis when ``redis_url`` is set, so every process
    shares it. Off by default: credits and the account caps already bound what a key can spend,
    and a gateway on one team's machine should take every request its hardware can."""
    rate_limit_read: str = ""
    """Default requests per key that only read (GET: polls, lists, downloads of metadata)."""

    # Outbound URL guard (webhooks, input images).
    outbound_allow_http: bool = False
    outbound_allow_networks: list[str] = Field(default_factory=list)

    log_level: str = "INFO"
    log_json: bool = False
    tracing: bool = False
    """OpenTelemetry traces of each job over OTLP/HTTP (``OTEL_*`` variables configure the
    exporter); needs ``pip install 'imagegate[otel]'``."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Where ``imagegate worker`` serves its own ``/metrics`` (on ``host``); unset: not at all.
    A worker's counters (upstream calls, retries, lease losses) live only in its process."""

    @field_validator("rate_limit_submit", "rate_limit_read")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        """A rate the ``limits`` library reads, so a typo stops start-up instead of a request."""
        if value.strip():
            parse_rate(value)
        return value.strip()

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
        config_file = config_file_path(os.environ)
        if config_file.is_file():
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

    @property
    def in_flight_limit(self) -> int:
        """``jobs_in_flight``, or the providers' caps plus the CPU-side ``workers``."""
        if self.jobs_in_flight is not None:
            return self.jobs_in_flight
        return sum(config.max_concurrency for config in self.providers.values()) + self.workers


# Names and values checked before a process starts. pydantic-settings ignores names it does not
# know, so a typo (``IMAGEGATE_WORKRES=8``) would otherwise be a silent default.

ENV_PREFIX = "IMAGEGATE_"
CONFIG_FILE_VARIABLE = "IMAGEGATE_CONFIG_FILE"
DEFAULT_CONFIG_FILE = "imagegate.toml"

OTHER_VARIABLES = frozenset(
    {
        CONFIG_FILE_VARIABLE,
        "IMAGEGATE_URL",  # the terminal client: which gateway to call
        "IMAGEGATE_API_KEY",  # the terminal client and the webhook receiver examples
        "IMAGEGATE_WEBHOOK_SECRET",  # the webhook receiver examples
        "IMAGEGATE_WEED_BIN",  # the test suite's SeaweedFS binary
        "IMAGEGATE_REQUIRE_SERVICES",  # the test suite: a missing service fails
    }
)
"""``IMAGEGATE_*`` variables that imagegate reads but that are not settings."""

OTHER_PREFIXES = ("IMAGEGATE_TEST_",)
"""The test suite's own variables (``IMAGEGATE_TEST_PG_URL``, …)."""

_FREE_FORM = frozenset({"storage_options", "prices", "routes"})
"""Mappings whose keys are data (model ids, S3 option names), not setting names."""


class SettingError(ValueError):
    """A setting a process cannot start with. ``str()`` is one line: which setting, and the fix."""


def config_file_path(environ: Mapping[str, str]) -> Path:
    """The TOML file settings are read from (it may not exist)."""
    return Path(environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))


def read_config_file(environ: Mapping[str, str]) -> dict[str, Any]:
    """The TOML file's content; ``{}`` when the default file is absent.

    A file named by ``IMAGEGATE_CONFIG_FILE`` must exist: naming a file and getting defaults is
    the kind of surprise this check is for.
    """
    path = config_file_path(environ)
    if not path.is_file():
        if CONFIG_FILE_VARIABLE in environ:
            raise SettingError(f"{CONFIG_FILE_VARIABLE}={path}: no such file")
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingError(f"{path}: not a readable TOML file ({exc})") from None


@dataclass(frozen=True)
class SettingName:
    """Where a name was written: ``env`` (``IMAGEGATE_A__B``) or ``toml`` (``a.b`` in a file)."""

    source: Literal["env", "toml"]
    path: tuple[str, ...]
    file: str = DEFAULT_CONFIG_FILE

    def render(self, path: tuple[str, ...] | None = None) -> str:
        parts = self.path if path is None else path
        if self.source == "env":
            return ENV_PREFIX + "__".join(part.upper() for part in parts)
        return ".".join(parts)

    def describe(self, path: tuple[str, ...] | None = None) -> str:
        if self.source == "env":
            return self.render(path)
        return f'"{self.render(path)}" in {self.file}'


def env_names(environ: Mapping[str, str]) -> list[tuple[SettingName, str]]:
    """Every ``IMAGEGATE_*`` variable that is meant as a setting, split on ``__``, lower case."""
    names = []
    for variable, value in sorted(environ.items()):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_VARIABLES:
            continue
        if upper.startswith(OTHER_PREFIXES):
            continue
        path = tuple(variable[len(ENV_PREFIX) :].lower().split("__"))
        names.append((SettingName("env", path), value))
    return names


def _leaf_paths(prefix: tuple[str, ...], value: Any) -> list[tuple[str, ...]]:
    if isinstance(value, Mapping) and value:
        return [
            path
            for key, item in value.items()
            for path in _leaf_paths((*prefix, str(key).lower()), item)
        ]
    return [prefix]


def _json_object(value: str) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        parsed = json.loads(value)
        if isinstance(parsed, dict):
            return parsed
    return None


def written_paths(
    environ: Mapping[str, str], toml: Mapping[str, Any], file: str = DEFAULT_CONFIG_FILE
) -> list[SettingName]:
    """Every setting path written in the environment or the file, JSON values opened up."""
    written = []
    for name, value in env_names(environ):
        parsed = _json_object(value) if _takes_nested(name.path) else None
        if parsed:
            for path in _leaf_paths(name.path, parsed):
                written.append(SettingName("env", path))
        else:
            written.append(name)
    for path in _leaf_paths((), toml):
        if path:  # an empty file has no paths
            written.append(SettingName("toml", path, file))
    return written


def _takes_nested(path: tuple[str, ...]) -> bool:
    """True where a JSON object value holds setting names: ``providers``, one provider."""
    return path in (("providers",),) or (len(path) == 2 and path[0] == "providers")


def _suggest(wrong: str, candidates: Collection[str]) -> str | None:
    close = difflib.get_close_matches(wrong, sorted(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(name: SettingName, depth: int, candidates: Collection[str], what: str) -> SettingError:
    """The error for ``name.path[depth]``, with the whole name corrected when one is close."""
    wrong = name.path[depth]
    guess = _suggest(wrong, candidates)
    message = f"unknown {what} {name.describe()}"
    if what != "setting":
        message += f' ("{wrong}")'
    if guess is not None:
        fixed = (*name.path[:depth], guess, *name.path[depth + 1 :])
        suggestion = name.render(fixed) if name.source == "env" else f'"{name.render(fixed)}"'
        return SettingError(f"{message}: did you mean {suggestion}?")
    return SettingError(f"{message}: remove it; `imagegate config check` lists every setting")


def check_name(name: SettingName, provider_names: Collection[str]) -> None:
    """Raise ``SettingError`` unless ``name`` is a setting (top level, provider and its field).

    What lies under ``providers.<name>.options`` and the free-form mappings (``prices``,
    ``routes``, ``storage_options``) is data, not checked here.
    """
    path = name.path
    fields = Settings.model_fields
    if path[0] not in fields:
        raise _unknown(name, 0, fields, "setting")
    if len(path) == 1 or path[0] in _FREE_FORM:
        return
    if path[0] != "providers":
        raise SettingError(
            f"{name.describe()}: {name.render(path[:1])} takes no nested names; "
            f"set {name.render(path[:1])} itself"
        )
    if path[1] not in provider_names:
        raise _unknown(name, 1, provider_names, "provider")
    if len(path) > 2 and path[2] not in ProviderSettings.model_fields:
        raise _unknown(name, 2, ProviderSettings.model_fields, "provider setting")


def check_names(
    environ: Mapping[str, str],
    toml: Mapping[str, Any],
    provider_names: Collection[str],
    file: str = DEFAULT_CONFIG_FILE,
) -> None:
    """Raise ``SettingError`` for the first name, env before file, that is not a setting."""
    for name in written_paths(environ, toml, file):
        check_name(name, provider_names)


def load_settings(
    provider_names: Collection[str], environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings for a process start: names checked, then values; any fault is one ``SettingError``.

    ``environ`` is what the names are checked in (``os.environ`` by default); the values come
    from the process environment as always.
    """
    environ = os.environ if environ is None else environ
    file = str(config_file_path(environ))
    toml = read_config_file(environ)
    check_names(environ, toml, provider_names, file)
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        path = tuple(str(part) for part in error["loc"])
        raise SettingError(f"invalid {_origin(path, environ, file)}: {error['msg']}") from None
    except SettingsError as exc:
        found = re.search(r'field "([^"]+)"', str(exc))
        origin = _origin((found[1],), environ, file) if found else "setting"
        raise SettingError(f"invalid {origin}: not valid JSON") from None


def _origin(path: tuple[str, ...], environ: Mapping[str, str], file: str) -> str:
    """``IMAGEGATE_A__B`` when the environment sets it, else ``"a.b" in <file>``."""
    for name, _ in env_names(environ):
        if path[: len(name.path)] == name.path or name.path[: len(path)] == path:
            return f"setting {SettingName('env', path).render()}"
    return f"setting {SettingName('toml', path, file).describe()}"

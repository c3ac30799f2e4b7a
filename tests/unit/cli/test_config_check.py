"""What ``imagegate config check`` shows: every setting, its source, and no secret."""

from __future__ import annotations

from imagegate.cli.config import effective_configuration, mask_url, provider_names
from imagegate.settings import Settings


def test_the_configurable_providers_are_the_catalogs_vendors_and_the_sandbox() -> None:
    names = provider_names()
    assert {"openai", "bfl", "replicate", "fal", "kling", "sandbox"} <= names
    assert not {"pool", "registry", "http", "port"} & names


def test_passwords_are_cut_out_of_urls_and_nothing_else_changes() -> None:
    assert mask_url("postgresql+psycopg://ig:s3cret@db:5432/ig") == (
        "postgresql+psycopg://ig:****@db:5432/ig"
    )
    assert mask_url("redis://:pw@cache:6379/0") == "redis://:****@cache:6379/0"
    assert mask_url("sqlite+aiosqlite:///./data/imagegate.db") == (
        "sqlite+aiosqlite:///./data/imagegate.db"
    )


def test_every_setting_is_listed_once_with_secrets_masked_and_its_source() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://ig:db-password@db/ig",
        signing_secret="signing-secret",
        storage_options={"endpoint": "http://s3:8333", "secret_access_key": "s3-secret"},
        providers={
            "openai": {"api_key": "sk-secret"},
            "kling": {"options": {"access_key": "ak-secret", "secret_key": "sk2-secret"}},
        },
    )
    environ = {"IMAGEGATE_DATABASE_URL": "x", "IMAGEGATE_PROVIDERS__OPENAI__API_KEY": "x"}
    toml = {"providers": {"kling": {"options": {"access_key": "x", "secret_key": "x"}}}}
    lines = effective_configuration(settings, environ, toml)
    shown = {name: (value, source) for name, value, source in lines}
    assert len(shown) == len(lines)
    assert set(Settings.model_fields) - {"providers"} <= {
        name.removeprefix("IMAGEGATE_").lower() for name in shown
    }
    text = repr(lines)
    for secret in ("db-password", "signing-secret", "s3-secret", "sk-secret", "ak-secret"):
        assert secret not in text
    assert shown["IMAGEGATE_DATABASE_URL"] == ("postgresql+psycopg://ig:****@db/ig", "env")
    assert shown["IMAGEGATE_PROVIDERS__OPENAI__API_KEY"] == ("****", "env")
    assert shown["IMAGEGATE_PROVIDERS__KLING__OPTIONS"][1] == "toml"
    assert shown["IMAGEGATE_STORAGE_OPTIONS"] == (
        '{"endpoint": "http://s3:8333", "secret_access_key": "****"}',
        "default",
    )
    assert shown["IMAGEGATE_WORKERS"] == ("8", "default")

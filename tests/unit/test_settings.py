"""Settings read from the environment the way operators write them."""

from __future__ import annotations

import pytest

from imagegate.errors import UpstreamMisconfigured
from imagegate.providers.pool import ProviderPool
from imagegate.providers.port import ProviderContext
from imagegate.settings import ProviderSettings, Settings


async def no_fetch(url: str) -> object:
    raise AssertionError(url)


def test_one_option_per_variable_is_read_as_json_when_it_is_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEGATE_PROVIDERS__ARK__API_KEY", "k")
    monkeypatch.setenv("IMAGEGATE_PROVIDERS__ARK__OPTIONS__WATERMARK", "false")
    monkeypatch.setenv("IMAGEGATE_PROVIDERS__ARK__OPTIONS__REGION", "volcengine")
    monkeypatch.setenv("IMAGEGATE_PROVIDERS__GEMINI__OPTIONS__MODELS", '{"nano-banana-2": "x"}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.provider("ark").options == {"watermark": False, "region": "volcengine"}
    assert settings.provider("gemini").options == {"models": {"nano-banana-2": "x"}}


def test_access_and_secret_keys_count_as_credentials() -> None:
    assert not ProviderSettings().configured
    assert ProviderSettings(api_key="k").configured
    assert ProviderSettings(options={"access_key": "a", "secret_key": "s"}).configured
    assert not ProviderSettings(options={"access_key": "a"}).configured


def test_an_adapter_that_cannot_be_built_is_a_misconfigured_provider() -> None:
    settings = Settings(providers={"ark": {"api_key": "k", "options": {"region": "mars"}}})
    pool = ProviderPool(settings, ProviderContext(fetch_input=no_fetch))  # type: ignore[arg-type]
    with pytest.raises(UpstreamMisconfigured, match="ark is misconfigured"):
        pool.get("ark")


def test_result_urls_follow_the_listening_address_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAGEGATE_PUBLIC_BASE_URL", raising=False)
    assert Settings().listening_on("127.0.0.1", 8011).public_base_url == "http://127.0.0.1:8011"
    assert Settings().listening_on("0.0.0.0", 9000).public_base_url == "http://127.0.0.1:9000"
    assert Settings().listening_on("::", 9000).public_base_url == "http://[::1]:9000"
    explicit = Settings(public_base_url="https://images.example.com")
    moved = explicit.listening_on("0.0.0.0", 9000)
    assert moved.public_base_url == "https://images.example.com" and moved.port == 9000


def test_a_public_base_url_from_the_environment_counts_as_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEGATE_PUBLIC_BASE_URL", "http://gateway.internal")
    assert Settings().listening_on("127.0.0.1", 8011).public_base_url == "http://gateway.internal"

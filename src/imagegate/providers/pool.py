"""The adapters of one process, created on first use from settings and closed at shutdown."""

from __future__ import annotations

from collections.abc import Mapping

from imagegate.errors import UpstreamMisconfigured
from imagegate.providers.port import ProviderAdapter, ProviderContext
from imagegate.providers.registry import check_options, create_adapter
from imagegate.settings import ProviderSettings, Settings

__all__ = ["SANDBOX", "ProviderPool"]

SANDBOX = "sandbox"


class ProviderPool:
    """Provider name → adapter. ``overrides`` lets tests and demos supply ready adapters.

    Every configured provider's ``options`` are checked here, when the runtime is built, so a
    misspelt option stops start-up with a message naming it instead of being ignored.
    """

    def __init__(
        self,
        settings: Settings,
        context: ProviderContext,
        overrides: Mapping[str, ProviderAdapter] | None = None,
    ) -> None:
        self._settings = settings
        self._context = context
        self._adapters: dict[str, ProviderAdapter] = dict(overrides or {})
        for name in settings.providers:
            if name not in self._adapters:
                check_options(name, self._config(name))

    @property
    def context(self) -> ProviderContext:
        """What adapters of this process are built with (input fetcher, transport, clock)."""
        return self._context

    def _config(self, name: str) -> ProviderSettings:
        if name == SANDBOX:
            config = self._settings.provider(SANDBOX).model_copy(deep=True)
            config.options.setdefault("latency", self._settings.sandbox_latency_seconds)
            config.options.setdefault("steps", self._settings.sandbox_progress_steps)
            return config
        return self._settings.provider(name)

    def configured(self, name: str) -> bool:
        """True when jobs can be sent to ``name`` (credentials present, or an override)."""
        return name == SANDBOX or name in self._adapters or self._config(name).configured

    def get(self, name: str) -> ProviderAdapter:
        adapter = self._adapters.get(name)
        if adapter is None:
            try:
                adapter = create_adapter(name, self._config(name), self._context)
            except ValueError as exc:  # a bad option (unknown region, missing base_url, …)
                raise UpstreamMisconfigured(
                    f"{name} is misconfigured: {exc}", provider=name
                ) from exc
            self._adapters[name] = adapter
        return adapter

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()

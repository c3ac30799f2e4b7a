"""Provider name → adapter, built from settings.

Each vendor module ``imagegate.providers.<name>`` exposes
``create_adapter(config: ProviderSettings, context: ProviderContext) -> ProviderAdapter`` and its
``Options`` (a ``providers.base.ProviderOptions``); adding a vendor is adding that module (and its
fake in ``imagegate.testing``), nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import imagegate.providers
from imagegate.providers.base import ProviderOptions, read_options
from imagegate.providers.port import ProviderAdapter, ProviderContext
from imagegate.settings import ProviderSettings

__all__ = ["check_options", "create_adapter", "module_name", "vendors"]

_NOT_VENDORS = frozenset({"base", "http", "pool", "port", "registry"})


def module_name(provider: str) -> str:
    return "imagegate.providers." + re.sub(r"[^0-9a-z]+", "_", provider.lower())


def vendors() -> list[str]:
    """Every provider name a setting may configure (one module each)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(imagegate.providers.__path__)
        if info.name not in _NOT_VENDORS
    )


def _module(provider: str) -> ModuleType:
    try:
        return importlib.import_module(module_name(provider))
    except ModuleNotFoundError:
        raise ValueError(
            f"providers.{provider}: unknown provider (known: {', '.join(vendors())})"
        ) from None


def check_options(provider: str, config: ProviderSettings) -> None:
    """Raise ``ValueError`` naming the provider and option when ``config.options`` is not what
    the vendor module declares (a misspelt or unknown option, a value of the wrong type)."""
    options: type[ProviderOptions] = _module(provider).Options
    read_options(provider, options, config.options)


def create_adapter(
    provider: str, config: ProviderSettings, context: ProviderContext
) -> ProviderAdapter:
    adapter: ProviderAdapter = _module(provider).create_adapter(config, context)
    return adapter

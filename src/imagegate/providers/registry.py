"""Provider name → adapter, built from settings.

Each vendor module ``imagegate.providers.<name>`` exposes
``create_adapter(config: ProviderSettings, context: ProviderContext) -> ProviderAdapter``; adding a
vendor is adding that module (and its fake in ``imagegate.testing``), nothing here changes.
"""

from __future__ import annotations

import importlib
import re

from imagegate.providers.port import ProviderAdapter, ProviderContext
from imagegate.settings import ProviderSettings

__all__ = ["create_adapter", "module_name"]


def module_name(provider: str) -> str:
    return "imagegate.providers." + re.sub(r"[^0-9a-z]+", "_", provider.lower())


def create_adapter(
    provider: str, config: ProviderSettings, context: ProviderContext
) -> ProviderAdapter:
    module = importlib.import_module(module_name(provider))
    adapter: ProviderAdapter = module.create_adapter(config, context)
    return adapter

"""Upstream providers: one module per vendor, all behind the ``ProviderAdapter`` port."""

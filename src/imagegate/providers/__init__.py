"""Upstream providers: one module per vendor, all behind the ``ProviderAdapter`` port.

Adapters reach the network through ``imagegate.net`` and never import the catalog: the
``Route`` they are handed (an ``imagegate.types`` value) carries what they need of it.
"""

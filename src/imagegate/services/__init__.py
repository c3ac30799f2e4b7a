"""Use-cases. Every transaction boundary of the gateway is in this package."""

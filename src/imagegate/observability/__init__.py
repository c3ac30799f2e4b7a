"""Logging (structlog) and metrics."""

"""FastAPI's own OpenTelemetry stays off unless something in the process sets it up."""

from __future__ import annotations

import pytest

from imagegate.api.app import fastapi_telemetry


def test_off_when_no_provider_is_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    assert fastapi_telemetry() == {"tracing": False, "metrics": False, "logs": False}


def test_kept_when_fastapi_is_asked_to_set_it_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert fastapi_telemetry() == {}


def test_kept_when_a_global_provider_is_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``opentelemetry-instrument`` leaves the process (the global is set once per process,
    so the lookup is replaced here rather than the global set)."""
    from opentelemetry import metrics
    from opentelemetry.metrics import NoOpMeterProvider

    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    monkeypatch.setattr(metrics, "get_meter_provider", NoOpMeterProvider)
    assert fastapi_telemetry() == {}

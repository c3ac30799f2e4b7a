"""``Gateway`` hands an HTTP request straight to the edge only when nothing outside the edge has
work to do: FastAPI's telemetry off, no app-wide ``max_body_size``, no ``root_path``."""

from __future__ import annotations

import inspect
from typing import Any

import httpx2
from fastapi import Request
from prometheus_client import CollectorRegistry, Counter

from imagegate.api.app import TELEMETRY_OFF, Gateway
from imagegate.api.middleware import EdgeMiddleware


def gateway(*, edge_first: bool = True, **kwargs: Any) -> Gateway:
    app = Gateway(edge_first=edge_first, telemetry=TELEMETRY_OFF, **kwargs)
    counter = Counter("requests", "", ["method", "route", "status"], registry=CollectorRegistry())
    app.add_middleware(EdgeMiddleware, counter=counter, limit=1024)

    @app.post("/where")
    async def where(request: Request) -> dict[str, Any]:
        await request.body()
        layers = {frame.filename.rsplit("/", 1)[-1] for frame in inspect.stack()}
        return {"serverErrors": "errors.py" in layers, "rootPath": request.scope["root_path"]}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    return app


async def post_twice(app: Gateway, body: bytes = b"{}") -> httpx2.Response:
    """The second answer: the first request builds the middleware stack."""
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.post("/where", content=body)
        return await http.post("/where", content=body)


async def test_a_request_skips_the_layers_outside_the_edge() -> None:
    answer = await post_twice(gateway())
    assert answer.json() == {"serverErrors": False, "rootPath": ""}
    assert answer.headers["x-request-id"]


async def test_without_edge_first_a_request_takes_fastapis_whole_way() -> None:
    answer = await post_twice(gateway(edge_first=False))
    assert answer.json()["serverErrors"] is True


async def test_an_app_wide_body_limit_keeps_fastapis_whole_way() -> None:
    app = gateway(max_body_size=10)
    assert (await post_twice(app, b"{}")).json()["serverErrors"] is True
    assert (await post_twice(app, b"[" + b"1," * 20 + b"1]")).status_code == 413


async def test_a_root_path_keeps_fastapis_whole_way() -> None:
    app = gateway()
    app.root_path = "/api"  # as a server's root path is set (the parameter is deprecated)
    answer = await post_twice(app)
    assert answer.json() == {"serverErrors": True, "rootPath": "/api"}


async def test_an_error_no_handler_took_is_answered_by_the_edge() -> None:
    transport = httpx2.ASGITransport(app=gateway(), raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/fail")
        answer = await http.get("/fail")
    assert answer.status_code == 500
    assert answer.headers["x-request-id"]

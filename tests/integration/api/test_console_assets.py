"""The console page, its static files, the local API docs and the price endpoint."""

from __future__ import annotations

import re

from tests.integration.conftest import Gateway


def _local_references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


async def test_the_console_page_loads_only_files_of_its_own_and_holds_no_key(
    gateway: Gateway,
) -> None:
    page = await gateway.http.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "ig_live_" not in page.text and "ig_test_" not in page.text
    references = _local_references(page.text)
    assert "/console/app.js" in references and "/console/console.css" in references
    for reference in references:
        assert reference.startswith("/"), f"{reference} is not served by imagegate"
        assert (await gateway.http.get(reference)).status_code == 200, reference


async def test_every_console_module_import_is_served(gateway: Gateway) -> None:
    seen: set[str] = set()
    pending = ["/console/app.js"]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await gateway.http.get(path)
        assert response.status_code == 200, path
        assert "javascript" in response.headers["content-type"]
        assert "http://" not in response.text and "https://" not in response.text.replace(
            'placeholder: "https://… or upload"', ""
        ), path
        for module in re.findall(r'from "\./([\w.]+)"', response.text):
            pending.append(f"/console/{module}")
    assert {"/console/playground.js", "/console/gallery.js", "/console/account.js"} <= seen


async def test_the_api_docs_page_loads_swagger_ui_from_the_gateway(gateway: Gateway) -> None:
    page = await gateway.http.get("/docs")

    assert page.status_code == 200
    references = _local_references(page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in references
    for reference in references:
        assert reference.startswith("/"), f"{reference} comes from another host"
        assert (await gateway.http.get(reference)).status_code == 200, reference


async def test_no_page_that_loads_from_another_host_is_served(gateway: Gateway) -> None:
    redoc = await gateway.http.get("/redoc")  # FastAPI's default: a CDN script and web fonts

    assert redoc.status_code == 404


async def test_price_of_a_params_object_uses_the_catalog_price(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v2/models/gpt-image-1.5/price", json={"quality": "high", "number_of_images": 3}
    )
    default = await gateway.http.post("/v2/models/gpt-image-1.5/price", json={})

    assert response.status_code == 200
    assert response.json() == {"model": "gpt-image-1.5", "credits": 3 * 24, "outputs": 3}
    assert default.json()["credits"] == 24  # quality "auto", one image


async def test_price_names_each_offending_param(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v2/models/gpt-image-1.5/price", json={"quality": "best", "number_of_images": 11}
    )

    assert response.status_code == 400
    assert set(response.json()["details"]) == {
        "gptImageParams.quality",
        "gptImageParams.number_of_images",
    }


async def test_price_of_an_unknown_model_is_a_404(gateway: Gateway) -> None:
    response = await gateway.http.post("/v2/models/nope/price", json={})

    assert response.status_code == 404


async def test_models_carry_their_family_for_grouping(gateway: Gateway) -> None:
    models = (await gateway.http.get("/v2/models")).json()["models"]

    families = {m["id"]: m["family"] for m in models}
    assert families["gpt-image-1.5"] == "gpt-image"
    assert families["flux-2-pro"] == "flux"

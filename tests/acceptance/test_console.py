"""The web console in a real browser (Debian's Chromium through Playwright) against a live
``imagegate serve``: sign in, generate and watch, upload, gallery, cancel, keys, errors.

The last test takes a screenshot of every page at desktop and phone widths. It writes them to a
temporary folder, or, with ``IMAGEGATE_UPDATE_SCREENSHOTS=1``, over the set in
``docs/screenshots/`` that the README shows (so an ordinary run leaves the work tree clean).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.acceptance.conftest import free_port, wait_until_healthy
from tests.acceptance.test_serve import Served
from tests.images import image_bytes

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 30_000
"""Generous: the machine running the suite may be busy; a passing step returns at once."""

expect.set_options(timeout=TIMEOUT_MS)


class Gateway:
    """The served gateway with its two printed keys and an HTTP client for setting up jobs."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.base_url = served.base_url
        self.test_key = served.key("test")
        self.live_key = served.key("live")
        self.http = httpx2.Client(base_url=self.base_url, timeout=10)

    def submit(self, prompt: str, key: str | None = None) -> str:
        response = self.http.post(
            "/v2/images/generate",
            headers={"X-API-Key": key or self.test_key},
            json={"model": "gpt-image-1.5", "prompt": prompt},
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["jobId"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(
            f"/v2/jobs/{job_id}", headers={"X-API-Key": self.test_key}
        ).json()
        return body


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    served = Served(tmp_path_factory.mktemp("console"), free_port())
    try:
        gateway = Gateway(served)
        wait_until_healthy(served.base_url, served.process)
        yield gateway
        gateway.http.close()
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: scripts/test installs it with apt-get"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, gateway: Gateway) -> Iterator[Page]:
    """A fresh browser tab; the test fails if the page asks any other host for anything or
    throws a script error."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    foreign: list[str] = []
    errors: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((gateway.base_url, "data:", "blob:"))
            else foreign.append(request.url)
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert foreign == [], "requests to other hosts"
    assert errors == [], "script errors"


def sign_in(page: Page, gateway: Gateway, key: str | None = None) -> None:
    page.goto(gateway.base_url + "/", wait_until="commit")
    page.get_by_label("API key").fill(key or gateway.test_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()


def test_a_wrong_key_is_refused_with_a_sentence_next_to_the_field(
    page: Page, gateway: Gateway
) -> None:
    page.goto(gateway.base_url + "/", wait_until="commit")
    page.get_by_label("API key").fill("ig_test_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()

    error = page.locator("#api-key-error")
    expect(error).to_have_text("That key was not accepted: it is unknown or revoked.")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.length") == 0


def test_sign_in_keeps_the_key_in_the_session_only_and_shows_the_sandbox_badge(
    page: Page, gateway: Gateway
) -> None:
    sign_in(page, gateway)

    expect(page.locator(".topbar .badge-sandbox")).to_be_visible()
    expect(page.get_by_role("link", name="Operator")).to_be_visible()  # first account
    assert page.evaluate("sessionStorage.getItem('imagegate.apiKey')") == gateway.test_key
    assert page.evaluate("localStorage.length") == 0
    assert gateway.test_key not in page.url
    assert gateway.test_key not in page.content()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_generate_on_the_sandbox_shows_progress_then_the_image(
    page: Page, gateway: Gateway
) -> None:
    sign_in(page, gateway)
    page.get_by_label("Search models").fill("gpt image 1.5")
    page.get_by_role("radio", name=re.compile("GPT Image 1.5")).check()
    expect(page.get_by_role("heading", name="GPT Image 1.5")).to_be_visible()
    expect(page.locator("#price")).to_have_text("0 credits")
    page.get_by_label("Quality").select_option("high")
    expect(page.locator("#price-note")).to_have_text("sandbox: free (a live key pays 24)")
    page.get_by_label("Prompt").fill("a lighthouse at dusk [[latency:2]]")

    page.get_by_role("button", name="Generate").click()

    expect(page.get_by_role("progressbar", name="Job progress")).to_be_visible()
    image = page.get_by_role("img", name=re.compile("Image 1 of 1"))
    expect(image).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 0
    expect(page.get_by_role("link", name="Download image 1")).to_have_attribute(
        "href", re.compile(re.escape(gateway.base_url) + "/files/")
    )
    page.get_by_text("Copy this request as code").click()
    expect(page.locator("#snippet-code")).to_contain_text('"quality": "high"')
    expect(page.locator("#snippet-code")).to_contain_text("$IMAGEGATE_API_KEY")


def test_an_uploaded_input_image_shows_a_thumbnail_and_feeds_the_job(
    page: Page, gateway: Gateway, tmp_path: Path
) -> None:
    picture = tmp_path / "input.png"
    picture.write_bytes(image_bytes((64, 48), (200, 40, 40)))
    sign_in(page, gateway)
    page.get_by_role("radio", name=re.compile("GPT Image 1.5")).check()

    page.locator("#param-input_images-file").set_input_files(str(picture))

    url_box = page.locator("#param-input_images")
    expect(url_box).to_have_value(re.compile(re.escape(gateway.base_url) + "/files/uploads/"))
    thumbnail = page.locator(".image-input img.thumb").first
    expect(thumbnail).to_be_visible()
    assert thumbnail.get_attribute("src") == url_box.input_value()
    page.get_by_label("Prompt").fill("make it blue")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("img", name=re.compile("Image 1 of 1"))).to_be_visible()
    job_id = page.locator(".result-pane code").inner_text()
    assert gateway.job(job_id)["input"]["gptImageParams"]["input_images"] == [url_box.input_value()]


def test_a_validation_error_shows_next_to_its_field(page: Page, gateway: Gateway) -> None:
    sign_in(page, gateway)
    page.get_by_role("radio", name=re.compile("GPT Image 1.5")).check()
    page.get_by_label("Prompt").fill("too many")
    page.get_by_role("spinbutton", name="Number Of Images").fill("11")

    page.get_by_role("button", name="Generate").click()

    error = page.locator('.field[data-field="number_of_images"] .field-error')
    expect(error).to_have_text("Number Of Images must be ≤ 10.")
    expect(page.get_by_role("spinbutton", name="Number Of Images")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.locator(".result-pane .empty")).to_be_visible()  # nothing was submitted


def test_a_job_opens_from_the_gallery_with_its_details(page: Page, gateway: Gateway) -> None:
    job_id = gateway.submit("a red fox in the snow")
    sign_in(page, gateway)
    page.get_by_role("link", name="Gallery").click()

    page.locator(f'a.card[href="#/jobs/{job_id}"]').click()

    expect(page.get_by_role("heading", name="Details")).to_be_visible()
    expect(page.locator(".prompt-text")).to_have_text("a red fox in the snow")
    expect(page.get_by_role("img", name=re.compile("Image 1 of 1"))).to_be_visible()
    outputs = page.get_by_role("table").filter(has_text="Size")
    expect(outputs).to_contain_text("1024×1024")
    expect(outputs).to_contain_text("image/webp")
    expect(page.locator("dl.facts")).to_contain_text("sandbox renderer")


def test_a_running_job_is_cancelled_from_its_page(page: Page, gateway: Gateway) -> None:
    job_id = gateway.submit("a slow one [[latency:60]]")
    sign_in(page, gateway)
    page.goto(f"{gateway.base_url}/#/jobs/{job_id}", wait_until="commit")

    page.get_by_role("button", name="Cancel job").click()

    expect(page.get_by_text("Cancelled", exact=True)).to_be_visible()
    expect(page.get_by_text("The job was cancelled and its credits refunded.")).to_be_visible()
    assert gateway.job(job_id)["status"] == "CANCELLED"


def test_the_gallery_filters_by_status_and_date(page: Page, gateway: Gateway) -> None:
    cancelled = gateway.submit("cancel me [[latency:60]]")
    gateway.http.post(f"/v2/jobs/{cancelled}/cancel", headers={"X-API-Key": gateway.test_key})
    sign_in(page, gateway)
    page.get_by_role("link", name="Gallery").click()
    expect(page.locator("a.card").first).to_be_visible()

    page.get_by_label("Status").select_option("CANCELLED")
    page.get_by_role("button", name="Apply").click()

    expect(page.locator(f'a.card[href="#/jobs/{cancelled}"]')).to_be_visible()
    chips = page.locator("a.card .chip").all_inner_texts()
    assert chips and set(chips) == {"Cancelled"}
    page.get_by_label("To").fill("2001-01-01")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No job matches these filters.")).to_be_visible()


def test_run_again_from_a_job_page_submits_the_same_request(page: Page, gateway: Gateway) -> None:
    first = gateway.submit("the same fox twice")
    sign_in(page, gateway)
    page.goto(f"{gateway.base_url}/#/jobs/{first}", wait_until="commit")
    expect(page.get_by_role("heading", name="Outputs")).to_be_visible()

    page.get_by_role("button", name="Run again").click()

    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Image 1 of 1"))).to_be_visible()
    second = page.locator(".result-pane code").inner_text()
    assert second != first
    assert gateway.job(second)["input"] == gateway.job(first)["input"]


def test_the_model_list_works_from_the_keyboard(page: Page, gateway: Gateway) -> None:
    sign_in(page, gateway)
    page.get_by_role("radio", name=re.compile("GPT Image 1.5")).focus()

    page.keyboard.press("ArrowDown")

    gpt2 = page.get_by_role("radio", name=re.compile("GPT Image 2"))
    expect(gpt2).to_be_focused()
    expect(gpt2).to_be_checked()
    expect(page.get_by_role("heading", name="GPT Image 2")).to_be_visible()


def test_focus_moved_into_the_page_while_it_loads_stays_where_the_user_put_it(
    page: Page, gateway: Gateway
) -> None:
    held: list[Route] = []
    page.route(re.compile(r"/v2/models/gpt-image-1\.5$"), lambda route: held.append(route))
    sign_in(page, gateway)
    radio = page.get_by_role("radio", name=re.compile("GPT Image 1.5"))
    radio.focus()
    expect(page.get_by_text("Loading the model…")).to_be_visible()
    assert len(held) == 1, "the model's form should still be loading"

    held[0].continue_()

    expect(page.get_by_role("button", name="Generate")).to_be_visible()
    expect(radio).to_be_focused()


def test_a_live_key_sees_models_without_a_provider_greyed_with_the_reason(
    page: Page, gateway: Gateway
) -> None:
    sign_in(page, gateway, gateway.live_key)

    expect(page.locator(".topbar .badge-sandbox")).to_be_hidden()
    expect(page.get_by_role("radio", name=re.compile("Midjourney"))).to_be_disabled()
    reason = page.locator(".model-option", has_text="Midjourney").locator(".reason")
    expect(reason).to_have_text("Unavailable: no upstream provider is configured for this model.")


def test_a_key_is_created_shown_once_and_revoked(page: Page, gateway: Gateway) -> None:
    sign_in(page, gateway)
    page.get_by_role("link", name="Account").click()
    page.get_by_label("Name").fill("ci runner")
    page.get_by_role("button", name="Create key").click()

    new_key = page.locator("#new-key-value").inner_text()
    assert new_key.startswith("ig_test_")
    assert gateway.http.get("/v2/me", headers={"X-API-Key": new_key}).status_code == 200

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke ci runner").click()

    row = page.get_by_role("row").filter(has_text="ci runner")
    expect(row.locator(".chip")).to_have_text("revoked")
    assert gateway.http.get("/v2/me", headers={"X-API-Key": new_key}).status_code == 401


def test_an_empty_key_name_is_refused_next_to_the_field(page: Page, gateway: Gateway) -> None:
    sign_in(page, gateway)
    page.get_by_role("link", name="Account").click()

    page.get_by_role("button", name="Create key").click()

    expect(page.locator('.field[data-field="name"] .field-error')).to_have_text(
        "The name is required."
    )


def test_midjourney_results_offer_their_follow_up_actions(page: Page, gateway: Gateway) -> None:
    sign_in(page, gateway)
    page.get_by_label("Search models").fill("midjourney")
    page.get_by_role("radio", name=re.compile("Midjourney")).check()
    page.get_by_label("Prompt").fill("a castle in the clouds")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("img", name=re.compile("Image 4 of 4"))).to_be_visible()

    page.get_by_role("button", name="Upscale image 2").click()

    expect(page.get_by_role("img", name=re.compile("Image 1 of 1"))).to_be_visible()
    expect(page.get_by_role("button", name="Pan left")).to_be_visible()
    job_id = page.locator(".result-pane code").inner_text()
    assert gateway.job(job_id)["input"]["action"] == "upsample"


def test_the_api_docs_render_from_the_gateway_alone(page: Page, gateway: Gateway) -> None:
    page.goto(gateway.base_url + "/docs", wait_until="commit")

    expect(page.get_by_role("heading", name=re.compile("imagegate"))).to_be_visible()
    expect(page.get_by_text("/v2/images/generate").first).to_be_visible()


def test_screenshots_of_every_page_at_desktop_and_phone_widths(
    browser: Browser, gateway: Gateway, tmp_path: Path
) -> None:
    """Writes <page>-<desktop|phone>.png for every page (see the module docstring for where)."""
    update = os.environ.get("IMAGEGATE_UPDATE_SCREENSHOTS") == "1"
    folder = SCREENSHOTS if update else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    finished = gateway.submit("a lighthouse at dusk, volumetric light")
    deadline = time.monotonic() + 30
    while gateway.job(finished)["status"] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.2)
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport, device_scale_factor=1)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(gateway.base_url + "/", wait_until="commit")
        expect(page.get_by_label("API key")).to_be_visible()
        page.screenshot(path=folder / f"sign-in-{label}.png")
        sign_in(page, gateway)
        page.get_by_label("Prompt").fill("a lighthouse at dusk, volumetric light")
        page.get_by_role("button", name="Generate").click()
        expect(page.get_by_role("img", name=re.compile("Image 1 of 1"))).to_be_visible()
        page.screenshot(path=folder / f"playground-{label}.png", full_page=True)
        page.get_by_role("link", name="Gallery").click()
        expect(page.locator("a.card").first).to_be_visible()
        page.screenshot(path=folder / f"gallery-{label}.png", full_page=True)
        page.goto(f"{gateway.base_url}/#/jobs/{finished}", wait_until="commit")
        expect(page.get_by_role("heading", name="Outputs")).to_be_visible()
        page.screenshot(path=folder / f"job-{label}.png", full_page=True)
        page.get_by_role("link", name="Account").click()
        expect(page.locator("#balance")).not_to_have_text("…")
        page.screenshot(path=folder / f"account-{label}.png", full_page=True)
        page.get_by_role("link", name="Operator").click()
        expect(page.get_by_role("heading", name="Providers")).to_be_visible()
        page.screenshot(path=folder / f"operator-{label}.png", full_page=True)
        context.close()
    written = sorted(path.name for path in folder.glob("*.png"))
    assert len(written) >= 12, written

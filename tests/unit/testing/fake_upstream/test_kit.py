"""The kit the fake vendors share: switches, recording, auth, refusals, the task book, images."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass

import httpx2
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image

from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch


def test_steer_answers_the_first_switch_of_the_fakes_table_not_of_the_prompt() -> None:
    built: list[Switch] = []

    def answer(switch: Switch) -> str:
        built.append(switch)
        return switch.name

    table = {
        Switch.RATE_LIMIT: lambda: answer(Switch.RATE_LIMIT),
        Switch.SERVER_ERROR: lambda: answer(Switch.SERVER_ERROR),
    }
    assert kit.steer("server-error then rate-limit-me", table) == "RATE_LIMIT"
    assert kit.steer("a plain server-error", table) == "SERVER_ERROR"
    assert kit.steer("a lighthouse", table) is None
    assert built == [Switch.RATE_LIMIT, Switch.SERVER_ERROR]  # only the answers given


def test_a_switch_the_table_does_not_list_means_nothing() -> None:
    assert kit.steer("moderate-me", {Switch.RATE_LIMIT: lambda: "refused"}) is None
    assert kit.switched("moderate-me please", Switch.FAIL, Switch.MODERATE) is Switch.MODERATE
    assert kit.switched("moderate-me", Switch.FAIL) is None


def test_refuse_raises_the_refusal_of_the_switch_that_is_on() -> None:
    refusal = kit.Refusal(Response(status_code=429))
    kit.refuse("a lighthouse", {Switch.RATE_LIMIT: lambda: refusal})
    with pytest.raises(kit.Refusal) as caught:
        kit.refuse("rate-limit-me", {Switch.RATE_LIMIT: lambda: refusal})
    assert caught.value.response.status_code == 429


@pytest.mark.parametrize("switch", list(Switch))
def test_every_switch_is_documented_in_the_kits_table(switch: Switch) -> None:
    assert kit.__doc__ is not None
    rows = [line for line in kit.__doc__.splitlines() if line.startswith(f"``{switch}``")]
    assert len(rows) == 1, f"{switch} needs one row in the switch table"


def _app(**options: object) -> tuple[FastAPI, list[object]]:
    app = FastAPI()
    requests = kit.record_requests(app, **options)  # type: ignore[arg-type]

    @app.post("/v1/things")
    async def things(request: Request) -> Response:
        record = kit.recorded(request)
        if record.json == {"refuse": True}:
            raise kit.Refusal(JSONResponse({"error": "refused"}, status_code=400))
        body = {"json": record.json, "form": record.form}
        return JSONResponse(
            body | {"files": [(f.name, f.filename, len(f.data)) for f in record.files]}
        )

    @app.post("/v1/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body())

    @app.get("/files/{name}")
    async def file(name: str) -> Response:
        return Response(name)

    return app, requests


async def _client(app: FastAPI) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://vendor.test"
    )


async def test_every_request_is_recorded_with_its_json_body() -> None:
    app, requests = _app()
    async with await _client(app) as http:
        answer = await http.post(
            "/v1/things?page=2", json={"prompt": "a fox"}, headers={"x-a": "1"}
        )
        await http.get("/files/one.png")
    assert answer.json()["json"] == {"prompt": "a fox"}
    assert app.state.requests is requests
    posted, fetched = requests
    assert isinstance(posted, dict) and isinstance(fetched, dict)
    assert posted["method"] == "POST" and posted["path"] == "/v1/things"
    assert posted["query"] == {"page": "2"} and posted["headers"]["x-a"] == "1"
    assert posted["json"] == {"prompt": "a fox"}
    assert fetched["method"] == "GET" and fetched["json"] is None


async def test_a_handler_reading_the_body_itself_gets_the_bytes_the_recorder_read() -> None:
    app, requests = _app()
    body = b'{"prompt": "a fox"}' * 5_000
    async with await _client(app) as http:
        answer = await http.post("/v1/echo", content=body)
    assert answer.content == body
    assert requests[0]["json"] is None  # type: ignore[index]


async def test_without_keep_requests_are_parsed_for_the_handler_but_not_kept() -> None:
    app, requests = _app(keep=False)
    async with await _client(app) as http:
        answer = await http.post("/v1/things", json={"prompt": "a fox"})
        refused = await http.post("/v1/things", json={"refuse": True})
    assert answer.json()["json"] == {"prompt": "a fox"} and refused.status_code == 400
    assert requests == [] and app.state.requests is requests


async def test_a_body_that_is_not_json_is_recorded_without_one() -> None:
    app, requests = _app()
    async with await _client(app) as http:
        answer = await http.post("/v1/things", content=b"{not json")
    assert answer.status_code == 200 and answer.json()["json"] is None
    assert requests[0]["json"] is None  # type: ignore[index]


async def test_multipart_fields_and_files_are_recorded_and_reach_the_handler() -> None:
    app, requests = _app(view=lambda record: record)
    async with await _client(app) as http:
        answer = await http.post(
            "/v1/things",
            data={"prompt": "a fox", "n": "2"},
            files=[
                ("image[]", ("a.png", b"first", "image/png")),
                ("mask", ("m.png", b"m", "image/png")),
            ],
        )
    assert answer.json() == {
        "json": None,
        "form": {"prompt": "a fox", "n": "2"},
        "files": [["image[]", "a.png", 5], ["mask", "m.png", 1]],
    }
    (record,) = requests
    assert isinstance(record, kit.RecordedRequest) and record.multipart
    assert record.files[0] == kit.Upload("image[]", "a.png", "image/png", b"first")


async def test_a_refused_request_is_recorded_and_answered_with_the_vendors_refusal() -> None:
    authenticate = kit.require_key(
        "secret", header="x-key", missing=lambda: JSONResponse({"detail": "no"}, status_code=401)
    )
    app, requests = _app(authenticate=authenticate, guarded=lambda path: path.startswith("/v1/"))
    async with await _client(app) as http:
        refused = await http.post("/v1/things", json={"prompt": "a fox"})
        unguarded = await http.get("/files/one.png")
        allowed = await http.post("/v1/things", json={}, headers={"x-key": "secret"})
    assert (refused.status_code, refused.json()) == (401, {"detail": "no"})
    assert unguarded.status_code == 200 and allowed.status_code == 200
    assert len(requests) == 3


async def test_paths_that_are_not_recorded_are_not_guarded_either() -> None:
    authenticate = kit.require_key("secret", missing=lambda: Response(status_code=401))
    app, requests = _app(
        authenticate=authenticate, recorded=lambda path: not path.startswith("/files/")
    )
    async with await _client(app) as http:
        assert (await http.get("/files/one.png")).status_code == 200
        assert (await http.post("/v1/things", json={})).status_code == 401
    assert [r["path"] for r in requests] == ["/v1/things"]  # type: ignore[index]


async def test_a_refusal_raised_by_a_handler_is_sent_as_it_is() -> None:
    app, _ = _app()
    async with await _client(app) as http:
        answer = await http.post("/v1/things", json={"refuse": True})
    assert (answer.status_code, answer.json()) == (400, {"error": "refused"})


def _request(headers: dict[str, str], query: bytes = b"") -> Request:
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "headers": raw, "query_string": query})


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({}, b"", "missing"),
        ({"authorization": "Bearer "}, b"", "missing"),
        ({"authorization": "Basic sk-1"}, b"", "missing"),
        ({"authorization": "Bearer sk-2"}, b"", "wrong sk-2"),
        ({"authorization": "Bearer  sk-1 "}, b"", None),
        ({}, b"key=sk-1", None),
        ({}, b"key=sk-3", "wrong sk-3"),
    ],
)
def test_require_key_tells_a_missing_key_from_a_wrong_one(
    headers: dict[str, str], query: bytes, expected: str | None
) -> None:
    check = kit.require_key(
        "sk-1",
        scheme="Bearer",
        query="key",
        missing=lambda: Response("missing"),
        wrong=lambda key: Response(f"wrong {key}"),
    )
    refused = check(_request(headers, query))
    assert (None if refused is None else bytes(refused.body).decode()) == expected


def test_require_key_without_a_scheme_compares_the_whole_header() -> None:
    check = kit.require_key("Key fal-1", missing=lambda: Response("no"))
    assert check(_request({"authorization": "Key fal-1"})) is None
    wrong = check(_request({"authorization": "Key fal-2"}))
    assert wrong is not None and bytes(wrong.body) == b"no"  # wrong defaults to missing


@dataclass(kw_only=True)
class _Job(kit.Task):
    status: str = "queued"


def test_the_task_book_keeps_tasks_by_id_in_the_vendors_id_format() -> None:
    book = kit.TaskBook(_Job, slow_polls=2, ids=(f"job-{n}" for n in itertools.count(1)))
    first, second = book.open("a fox"), book.open("a hare", status="held")
    assert (first.id, second.id) == ("job-1", "job-2")
    assert book["job-2"] is second and second.status == "held"
    assert book.get("job-3") is None


def test_the_task_book_makes_uuid_ids_by_default() -> None:
    task = kit.TaskBook(_Job, slow_polls=2).open("a fox")
    assert len(task.id) == 36 and task.id.count("-") == 4


def test_a_task_finishes_on_its_first_poll_unless_the_prompt_says_slow() -> None:
    book = kit.TaskBook(_Job, slow_polls=3)
    quick, slow = book.open("a fox"), book.open("a slow fox")
    assert quick.poll() is True and quick.finished and quick.percent == 100
    assert [slow.poll() for _ in range(5)] == [False, False, False, True, False]
    assert slow.finished and slow.polls == 5


def test_slow_task_progress_grows_with_each_poll() -> None:
    task = kit.TaskBook(_Job, slow_polls=3).open("slow")
    assert task.percent == 0 and not task.finished
    seen = []
    while not task.finished:
        task.poll()
        seen.append(task.percent)
    assert seen == [25, 50, 75, 100]


def test_one_task_may_wait_longer_than_the_books_slow_polls() -> None:
    task = kit.TaskBook(_Job, slow_polls=2).open("slow", slow_polls=4)
    assert task.polls_needed == 5


async def test_the_shelf_serves_images_at_the_path_of_their_url() -> None:
    app = FastAPI()
    shelf = kit.ImageShelf()
    shelf.serve(app, "/results/", missing=lambda: Response("gone", status_code=403))

    @app.post("/make")
    async def make(request: Request) -> dict[str, str]:
        path = shelf.put("/results/a/1.png", b"png-bytes", "image/png")
        once = shelf.put("/results/b/1.png", b"once", "image/png", once=True)
        return {"url": shelf.url(request, path), "once": shelf.url(request, once)}

    async with await _client(app) as http:
        urls = (await http.post("/make")).json()
        assert urls["url"] == "https://vendor.test/results/a/1.png"
        for _ in range(2):
            kept = await http.get(urls["url"])
            assert (kept.status_code, kept.content) == (200, b"png-bytes")
            assert kept.headers["content-type"] == "image/png"
        assert (await http.get(urls["once"])).content == b"once"
        expired = await http.get(urls["once"])
        assert (expired.status_code, expired.text) == (403, "gone")
        assert (await http.get("/results/never.png")).status_code == 403


async def test_a_download_the_guard_refuses_does_not_use_up_a_once_image() -> None:
    app = FastAPI()
    shelf = kit.ImageShelf()
    shelf.serve(app, "/r/", guard=lambda request: request.query_params.get("sig") == "ok")
    shelf.put("/r/x.png", b"x", "image/png", once=True)
    async with await _client(app) as http:
        assert (await http.get("/r/x.png?sig=bad")).status_code == 404
        assert (await http.get("/r/x.png?sig=ok")).status_code == 200
        assert (await http.get("/r/x.png?sig=ok")).status_code == 404
    assert "/r/x.png" not in shelf


def test_fit_scales_the_longest_side_and_keeps_a_floor() -> None:
    assert kit.fit((16, 9), 128) == (128, 72)
    assert kit.fit((1, 100), 50, floor=8) == (8, 50)
    assert kit.fit((4096, 2048), 256) == (256, 128)


def test_picture_is_a_real_image_of_the_size_and_colour_asked() -> None:
    data = kit.picture((40, 20), (200, 10, 10), "label", "JPEG")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("JPEG", (40, 20))
        red, green, blue = image.convert("RGB").getpixel((39, 19))  # type: ignore[misc]
        assert red > 180 and green < 40 and blue < 40


def test_ratios_reads_width_and_height_from_each_name_in_order() -> None:
    assert kit.ratios("16:9", "9:19.5") == {"16:9": (16.0, 9.0), "9:19.5": (9.0, 19.5)}
    assert list(kit.ratios("3:2", "1:1")) == ["3:2", "1:1"]


def test_pick_gives_the_value_of_the_first_switch_on_in_the_tables_order() -> None:
    reasons = {Switch.FILTER: "filtered", Switch.FAIL: "failed"}
    assert kit.pick("fail-me and filter-me", reasons) == "filtered"
    assert kit.pick("fail-me", reasons) == "failed"
    assert kit.pick("a fox", reasons) is None


def test_shrunk_only_ever_scales_down() -> None:
    assert kit.shrunk((2048, 1024), 256) == (256, 128)
    assert kit.shrunk((100, 50), 256) == (100, 50)

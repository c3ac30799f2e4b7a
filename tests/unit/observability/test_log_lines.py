"""What a log line may hold: a bounded traceback without locals, no secrets, in both formats;
and writing it never makes the caller wait."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from imagegate.observability.logging import (
    MAX_TRACEBACK_CHARS,
    LogPipeline,
    configure_logging,
    scrub,
)

SECRETS = {
    "imagegate key": "ig_live_Zq3xR8sK1pVn5TbW0yLc7HdF2uJm9AeG4oNi6XsQ1rE",
    "test key": "ig_test_Aa0Bb1Cc2Dd3Ee4Ff5Gg6Hh7Ii8Jj9Kk0Ll1Mm2Nn3Oo",
    "webhook secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
    "provider key": "sk-proj-4f9c1e7b2a8d",
    "url signature": "3f1e9c0d8b7a6f5e4d3c2b1a0f9e8d7c",
    "password": "hunter2-correct-horse",
}


@pytest.fixture
def capture() -> Iterator[Callable[[bool], tuple[LogPipeline, io.StringIO]]]:
    """``capture(json)`` configures logging into a buffer; the process set-up comes back after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    pipelines: list[LogPipeline] = []

    def configure(as_json: bool, **options: Any) -> tuple[LogPipeline, io.StringIO]:
        buffer = io.StringIO()
        pipelines.append(configure_logging("DEBUG", as_json, stream=buffer, **options))
        return pipelines[-1], buffer

    yield configure
    for pipeline in pipelines:
        pipeline.close()
    structlog.reset_defaults()
    root.handlers[:], root.level = saved


def fail_deep(depth: int, secret: str) -> None:
    api_key = secret  # a local variable holding a secret: must never be rendered
    padding = "p" * 50_000  # a large local: rendering locals would blow up the line
    if depth == 0:
        raise RuntimeError(f"upstream refused after {len(padding)} bytes")
    fail_deep(depth - 1, api_key)


def lines_of(pipeline: LogPipeline, buffer: io.StringIO) -> str:
    pipeline.flush()
    return buffer.getvalue()


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
def test_traceback_is_present_bounded_and_shows_no_locals(
    capture: Callable[..., tuple[LogPipeline, io.StringIO]], as_json: bool
) -> None:
    pipeline, buffer = capture(as_json)
    try:
        fail_deep(300, SECRETS["imagegate key"])
    except RuntimeError:
        structlog.get_logger("t").exception("job.failed", job_id="j1")
    try:
        fail_deep(300, SECRETS["test key"])
    except RuntimeError as exc:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=exc)

    out = lines_of(pipeline, buffer)
    if as_json:
        records = [json.loads(line) for line in out.splitlines()]
        tracebacks = [record["exception"] for record in records]
        assert [record["event"] for record in records] == [
            "job.failed",
            "Exception in ASGI application",
        ]
    else:
        tracebacks = out.split("Traceback (most recent call last):")[1:]
    assert len(tracebacks) == 2
    for text in tracebacks:
        assert "RuntimeError: upstream refused after 50000 bytes" in text
        assert 'raise RuntimeError(f"upstream refused' in text  # the innermost frame is kept
        assert len(text) <= MAX_TRACEBACK_CHARS + 200
    assert len(out) < 4 * MAX_TRACEBACK_CHARS
    assert "ppppp" not in out
    assert "api_key" not in out.replace("api_key)", "")
    assert SECRETS["imagegate key"] not in out
    assert SECRETS["test key"] not in out


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
def test_no_secret_reaches_a_line_from_structlog_or_stdlib(
    capture: Callable[..., tuple[LogPipeline, io.StringIO]], as_json: bool
) -> None:
    pipeline, buffer = capture(as_json)
    log = structlog.get_logger("imagegate.test")
    url = (
        f"https://gw.example/files/o/1.png?expires=1900000000&signature={SECRETS['url signature']}"
    )

    log.info("auth.checked", api_key=SECRETS["imagegate key"], x_api_key=SECRETS["test key"])
    log.info("webhook.secret", secret=SECRETS["webhook secret"], nested={"token": "tok-123456"})
    log.info(
        "upstream.call",
        headers={"Authorization": f"Bearer {SECRETS['provider key']}", "x-key": "bfl-9876"},
        raw_headers=[(b"x-api-key", SECRETS["imagegate key"].encode())],
        url=url,
    )
    log.warning(f"free text naming {SECRETS['test key']} and {SECRETS['webhook secret']}")
    logging.getLogger("uvicorn.error").warning("GET %s failed", url)
    logging.getLogger("sqlalchemy.engine").warning(
        "connect failed: password=%s", SECRETS["password"]
    )
    logging.getLogger("httpx").info("headers: %r", {"authorization": "Basic dXNlcjpwYXNz"})

    out = lines_of(pipeline, buffer)
    for name, secret in {**SECRETS, "token": "tok-123456", "bfl": "bfl-9876"}.items():
        assert secret not in out, f"the {name} leaked into: {out}"
    assert "dXNlcjpwYXNz" not in out
    assert out.count("[REDACTED]") >= 10
    assert "https://gw.example/files/o/1.png?expires=1900000000&signature=[REDACTED]" in out


def test_scrub_keeps_ordinary_text() -> None:
    text = "job 0192 finished in 3.2 s on openai (gpt-image-1) with 4 outputs"
    assert scrub(text) == text
    assert scrub("Authorization: Bearer abc.def") == "Authorization: Bearer [REDACTED]"


def test_standard_library_record_keeps_the_request_id(
    capture: Callable[..., tuple[LogPipeline, io.StringIO]],
) -> None:
    pipeline, buffer = capture(True)
    with structlog.contextvars.bound_contextvars(request_id="req-42"):
        logging.getLogger("uvicorn.error").warning("slow client")

    (record,) = [json.loads(line) for line in lines_of(pipeline, buffer).splitlines()]
    assert record["request_id"] == "req-42"
    assert record["event"] == "slow client"


class StuckStream(io.StringIO):
    """A stream whose writes wait until released, like a full pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(timeout=30)
        return super().write(text)


def test_a_stuck_log_stream_drops_records_instead_of_blocking_the_caller() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = StuckStream()
    pipeline = configure_logging("INFO", True, stream=stream, queue_size=10)
    try:
        log = structlog.get_logger("imagegate.test")
        started = time.perf_counter()
        for index in range(2000):
            log.info("request.done", index=index)
        elapsed = time.perf_counter() - started

        assert elapsed < 2.0
        assert pipeline.dropped >= 1900

        stream.release.set()
        pipeline.flush()
        log.info("after.release")
        pipeline.flush()
        out = stream.getvalue()
        assert "records dropped (log queue full)" in out
        assert '"event": "after.release"' in out
    finally:
        stream.release.set()
        pipeline.close()
        structlog.reset_defaults()
        root.handlers[:], root.level = saved


def test_scrub_masks_a_password_inside_a_url() -> None:
    line = "cannot connect to postgresql+psycopg://imagegate:hunter2@db:5432/imagegate"
    assert scrub(line) == (
        "cannot connect to postgresql+psycopg://imagegate:[REDACTED]@db:5432/imagegate"
    )
    assert scrub("see http://127.0.0.1:8000/v2/jobs") == "see http://127.0.0.1:8000/v2/jobs"


def test_a_scrubbed_json_line_stays_valid_json() -> None:
    line = json.dumps(
        {
            "exception": "KeyError: token=\"abc123\" password: 'hunter2' url?signature=ff",
            "headers": str([(b"x-api-key", b"vvv-secret")]),
        }
    )

    record = json.loads(scrub(line))

    assert record["exception"] == (
        "KeyError: token=\"[REDACTED]\" password: '[REDACTED]' url?signature=[REDACTED]"
    )
    assert record["headers"] == "[(b'x-api-key', b'[REDACTED]')]"

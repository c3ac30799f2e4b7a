"""What the benchmark reads from wrk, and the Lua scripts it gives wrk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import wrk
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SUMMARY = """Running 8s test @ http://127.0.0.1:8000/v2/images/generate
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.29ms    2.10ms  40.00ms   89.00%
  Latency Distribution
     50%    9.00ms
     99%   20.00ms
  2000 requests in 8.00s, 4.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 400
Requests/sec:    250.00
WRK_JSON {"requests":2000,"duration_us":8000000,"bytes":4718592,"connect_errors":0,\
"read_errors":2,"write_errors":0,"status_errors":400,"timeouts":3,"mean_us":9290.5,\
"max_us":40000,"p50_us":9000,"p75_us":9800,"p90_us":11000,"p99_us":20000}
"""


def test_the_done_line_gives_exact_counts_and_latencies_in_ms() -> None:
    result = wrk.parse_output(SUMMARY)

    assert result.requests == 2000
    assert result.seconds == 8.0
    assert result.ok == 1600
    assert result.status_errors == 400
    assert result.socket_errors == 5
    assert result.timeouts == 3
    assert result.p50_ms == 9.0
    assert result.p99_ms == 20.0
    assert result.max_ms == 40.0
    assert result.mean_ms == pytest.approx(9.2905)


def test_throughput_counts_only_successful_answers() -> None:
    assert wrk.parse_output(SUMMARY).rps == 200.0
    assert wrk.parse_output(SUMMARY).as_dict()["rps"] == 200.0


def test_output_without_the_done_line_is_an_error_that_quotes_it() -> None:
    with pytest.raises(ValueError, match="unable to connect"):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_threads_never_outnumber_connections() -> None:
    argv = wrk.command("wrk", "http://x/", Path("s.lua"), connections=1, seconds=5)

    assert argv[1:4] == ["-t1", "-c1", "-d5s"]
    assert "--latency" in argv


def test_a_script_escapes_the_body_as_a_lua_string() -> None:
    body = json.dumps({"prompt": 'say "hi"'})

    text = wrk.script(method="POST", body=body, headers={"X-API-Key": "k"})

    assert f"wrk.body = {json.dumps(body)}" in text
    assert 'wrk.headers["X-API-Key"] = "k"' in text
    assert "function request()" not in text


@pytest.mark.slow
def test_real_wrk_sends_a_unique_idempotency_key_per_request_and_reports(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    keys: list[str] = []

    def record(request: Request) -> Response:
        keys.append(request.headers["Idempotency-Key"])
        assert request.get_json() == {"model": "m"}
        return Response("{}", status=202 if len(keys) % 5 else 400)

    httpserver.expect_request("/submit", method="POST").respond_with_handler(record)
    script = wrk.script(
        method="POST",
        body='{"model": "m"}',
        headers={"Content-Type": "application/json"},
        idempotency_prefix="run7",
    )

    result = wrk.run(
        wrk.ensure_wrk(), httpserver.url_for("/submit"), script, tmp_path,
        connections=2, seconds=1,
    )  # fmt: skip

    assert result.requests >= 10
    assert len(keys) == len(set(keys)) >= result.requests
    assert all(key.startswith("run7-") for key in keys)
    assert result.status_errors == pytest.approx(result.requests / 5, abs=2)

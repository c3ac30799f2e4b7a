"""``wrk`` as the load generator: its Lua scripts, its command line and its output.

wrk (a compiled HTTP load generator, in its own process) keeps the client from being the
bottleneck. Every script ends with a ``done`` hook that prints one ``WRK_JSON {...}`` line with
exact counts and latency percentiles in microseconds, so nothing is parsed from wrk's rounded
human summary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "command", "ensure_wrk", "parse_output", "script"]

MARKER = "WRK_JSON "

_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p75_us":%d,"p90_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(75), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. ``ok`` counts answers that were 2xx/3xx; latencies are in milliseconds."""

    requests: int
    seconds: float
    ok: int
    status_errors: int
    socket_errors: int
    timeouts: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Answered 2xx/3xx per second: error answers are not throughput."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "status_errors": self.status_errors,
            "socket_errors": self.socket_errors,
            "timeouts": self.timeouts,
            "mean_ms": round(self.mean_ms, 3),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


def parse_output(stdout: str) -> WrkResult:
    """The ``WRK_JSON`` line that the ``done`` hook of :func:`script` prints.

    Raises ``ValueError`` when it is missing (wrk failed before its summary) or malformed.
    """
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"no {MARKER.strip()} line in wrk output: {stdout[-500:]!r}")
    sockets = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        ok=max(0, raw["requests"] - raw["status_errors"]),
        status_errors=raw["status_errors"],
        socket_errors=sockets,
        timeouts=raw["timeouts"],
        mean_ms=raw["mean_us"] / 1000,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII


def script(
    *,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    idempotency_prefix: str | None = None,
    stop_after: int | None = None,
) -> str:
    """A wrk Lua script.

    ``idempotency_prefix`` gives each request a unique ``Idempotency-Key`` (prefix, thread
    number, request number). ``stop_after`` stops each thread once it has seen that many
    2xx answers (so a run submits a known number of jobs, give or take the requests in flight).
    """
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    lines += [
        "local made = 0",
        "function setup(thread) made = made + 1; thread:set('tid', made) end",
        "counter = 0",
        "answered = 0",
    ]
    if idempotency_prefix is not None:
        lines += [
            "function request()",
            "  counter = counter + 1",
            f"  wrk.headers['Idempotency-Key'] = {_lua_string(idempotency_prefix)}"
            " .. '-' .. tid .. '-' .. counter",
            "  return wrk.format()",
            "end",
        ]
    if stop_after is not None:
        lines += [
            "function response(status, headers, body)",
            "  if status < 300 then answered = answered + 1 end",
            f"  if answered >= {int(stop_after)} then wrk.thread:stop() end",
            "end",
        ]
    return "\n".join(lines) + "\n" + _DONE


def command(
    wrk: str, url: str, script_path: Path, *, connections: int, seconds: float, threads: int = 2
) -> list[str]:
    """wrk's argv: at most ``threads`` threads (never more than connections), a 30 s timeout
    so slow answers are counted rather than dropped, the latency histogram on."""
    return [
        wrk,
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script_path),
        url,
    ]


def ensure_wrk() -> str:
    """The ``wrk`` binary, installed from the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def run(
    wrk: str, url: str, lua: str, workdir: Path, *, connections: int, seconds: float
) -> WrkResult:
    """Run wrk once against ``url`` with the script text ``lua``."""
    path = workdir / "wrk.lua"
    path.write_text(lua)
    done = subprocess.run(
        command(wrk, url, path, connections=connections, seconds=seconds),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    return parse_output(done.stdout)

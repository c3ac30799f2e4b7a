"""imagegate's ``/v1/images/generations`` beside LiteLLM's proxy, before one fake OpenAI upstream.

Three targets, the same load, one run:

- **upstream**: the fake OpenAI Images API (``python -m imagegate.testing.fake_upstream --vendor
  openai``), called directly; it adds no latency of its own, only the time it takes to draw a
  small picture;
- **litellm**: LiteLLM's proxy (``litellm[proxy]`` from PyPI, installed by this script into its own
  virtualenv, ``bench/.venv-litellm``; never a dependency of imagegate) in front of it;
- **imagegate**: ``imagegate serve`` (SQLite, workers in-process, a live key with credits) with
  its ``openai`` provider pointed at it.

Each is driven with ``wrk`` (a Lua script sends the POST body): 32 connections for throughput,
then 1 connection for latency; "added" latency is a gateway's mean minus the upstream's. With
``--profile`` (py-spy, installed into that virtualenv) imagegate is sampled during its 32-
connection run and the functions with the most samples are printed.

Run: ``.venv/bin/python bench/openai_vs_litellm.py`` (about 2 minutes; ``wrk`` comes from the
Debian package of that name). Results go to ``bench/results/openai_vs_litellm.json``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV = BENCH / ".venv-litellm"
PYTHON = Path(sys.executable)
IMAGEGATE = PYTHON.parent / "imagegate"
UPSTREAM_KEY = "sk-fake-openai"
LITELLM_KEY = "sk-" + secrets.token_hex(32)
MODEL = "gpt-image-1.5"
BODY = {"model": MODEL, "prompt": "a lighthouse at dusk", "size": "1024x1024", "quality": "low"}

LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("installing wrk with apt-get …")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def ensure_litellm_venv(profile: bool) -> None:
    """LiteLLM (and py-spy for ``--profile``) in ``bench/.venv-litellm``, apart from imagegate."""
    pip = VENV / "bin" / "pip"
    if not pip.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    packages = ["litellm[proxy]"] + (["py-spy"] if profile else [])
    wanted = [VENV / "bin" / "litellm"] + ([VENV / "bin" / "py-spy"] if profile else [])
    if not all(path.exists() for path in wanted):
        say(f"installing {', '.join(packages)} into {VENV} …")
        subprocess.run([str(pip), "install", "-q", *packages], check=True)


def wait_until_up(url: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(url, timeout=2.0).status_code < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {seconds:.0f} s")


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` in the log's folder (so no config file of the caller's is picked up)."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            args, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield child
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_wrk(
    wrk: str, url: str, key: str, connections: int, seconds: int, work: Path
) -> dict[str, Any]:
    script = work / f"post-{connections}.lua"
    script.write_text(LUA.format(body=json.dumps(BODY), key=key))
    threads = min(connections, 2)
    result = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "60s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    return parse_wrk(result.stdout)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    mean = re.search(r"^\s+Latency\s+(\S+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests_per_second": float(rps[1]) if rps else 0.0,
        "latency_mean_ms": _ms(mean[1]) if mean else None,
        "latency_p50_ms": _ms(p50[1]) if p50 else None,
        "latency_p99_ms": _ms(p99[1]) if p99 else None,
        "requests": int(total[1]) if total else 0,
        "non_2xx": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1].strip() if socket_errors else None,
        "raw": output,
    }


def imagegate_env(data: Path, upstream: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("IMAGEGATE_"):
            del env[name]
    env.update(
        {
            "IMAGEGATE_DATA_DIR": str(data),
            "IMAGEGATE_DATABASE_URL": f"sqlite+aiosqlite:///{data}/imagegate.db",
            "IMAGEGATE_PROVIDERS__OPENAI__API_KEY": UPSTREAM_KEY,
            "IMAGEGATE_PROVIDERS__OPENAI__BASE_URL": upstream,
            "IMAGEGATE_PROVIDERS__OPENAI__MAX_CONCURRENCY": "64",
            "IMAGEGATE_OUTBOUND_ALLOW_HTTP": "true",
            "IMAGEGATE_OUTBOUND_ALLOW_NETWORKS": '["127.0.0.0/8"]',
            "IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT": "1000000",
            "IMAGEGATE_LOG_LEVEL": "WARNING",
        }
    )
    return env


def imagegate_live_key(env: dict[str, str]) -> str:
    """A fresh account with a live key and plenty of credits, made with the operator's CLI."""

    def cli(*args: str) -> str:
        return subprocess.run(
            [str(IMAGEGATE), *args],
            env=env,
            cwd=env["IMAGEGATE_DATA_DIR"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    cli("migrate")
    cli("accounts", "create", "bench", "--email", "bench@localhost.localdomain")
    created = cli("keys", "create", "--name", "bench")
    key = re.search(r"(ig_live_\S+)", created)
    if key is None:
        raise RuntimeError(f"no live key in: {created}")
    cli("credits", "grant", "1000000000")
    return key[1]


def profile_top(raw: Path, limit: int = 15) -> list[tuple[str, float]]:
    """Functions by share of samples in which they were on the stack top (self time)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frame = stack.split(";")[-1]
        counts[frame] += int(count)
        total += int(count)
    return [(frame, 100.0 * n / total) for frame, n in counts.most_common(limit)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="each 32-connection run")
    parser.add_argument("--latency-seconds", type=int, default=6, help="each 1-connection run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="py-spy imagegate under load")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "openai_vs_litellm.json")
    args = parser.parse_args()

    wrk = ensure_wrk()
    ensure_litellm_venv(args.profile)
    litellm_version = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    results: dict[str, Any] = {}
    profile: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-") as tmp:
        work = Path(tmp)
        up_port, lite_port, gate_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}/v1"
        base_env = dict(os.environ)
        lite_env = {**base_env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}

        litellm_config = work / "litellm.yaml"
        litellm_config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {upstream}\n"
            f"      api_key: {UPSTREAM_KEY}\n"
            "general_settings:\n"
            f"  master_key: {LITELLM_KEY}\n"
            "litellm_settings:\n"
            "  drop_params: false\n"
        )
        gate_data = work / "imagegate"
        gate_data.mkdir()
        gate_env = imagegate_env(gate_data, upstream)
        gate_key = imagegate_live_key(gate_env)
        gate_env["IMAGEGATE_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{gate_port}"

        fake = [str(PYTHON), "-m", "imagegate.testing.fake_upstream", "--vendor", "openai"]
        lite = [str(VENV / "bin" / "litellm"), "--config", str(litellm_config)]
        gate = [str(IMAGEGATE), "serve", "--port", str(gate_port)]
        with (
            process([*fake, "--port", str(up_port)], base_env, work / "upstream.log"),
            process([*lite, "--port", str(lite_port)], lite_env, work / "litellm.log"),
            process(gate, gate_env, work / "imagegate.log") as gate_process,
        ):
            wait_until_up(f"http://127.0.0.1:{up_port}/docs")
            wait_until_up(f"http://127.0.0.1:{gate_port}/healthz")
            wait_until_up(f"http://127.0.0.1:{lite_port}/health/liveliness")
            targets = {
                "upstream": (f"{upstream}/images/generations", UPSTREAM_KEY),
                "litellm": (f"http://127.0.0.1:{lite_port}/v1/images/generations", LITELLM_KEY),
                "imagegate": (f"http://127.0.0.1:{gate_port}/v1/images/generations", gate_key),
            }
            for name, (url, key) in targets.items():
                check = httpx2.post(
                    url, json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=60
                )
                if check.status_code != 200:
                    raise RuntimeError(f"{name}: {check.status_code} {check.text[:500]}")
                say(f"{name}: warm")
                spy: subprocess.Popen[bytes] | None = None
                if args.profile and name == "imagegate":
                    spy = subprocess.Popen(
                        [
                            str(VENV / "bin" / "py-spy"), "record", "--format", "raw",
                            "-d", str(args.seconds), "-r", "200", "-p", str(gate_process.pid),
                            "-o", str(work / "profile.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                loaded = run_wrk(wrk, url, key, args.connections, args.seconds, work)
                if spy is not None:
                    spy.wait(60)
                    if (work / "profile.txt").exists():
                        profile = profile_top(work / "profile.txt")
                single = run_wrk(wrk, url, key, 1, args.latency_seconds, work)
                results[name] = {"loaded": loaded, "single": single}
                say(
                    f"{name}: {loaded['requests_per_second']:.1f} req/s at {args.connections}, "
                    f"{single['latency_mean_ms']:.2f} ms mean at 1"
                )

    base = results["upstream"]["single"]["latency_mean_ms"]
    summary = {
        name: {
            "rps_32": r["loaded"]["requests_per_second"],
            "non_2xx_32": r["loaded"]["non_2xx"],
            "mean_ms_1": r["single"]["latency_mean_ms"],
            "p50_ms_1": r["single"]["latency_p50_ms"],
            "added_ms_1": r["single"]["latency_mean_ms"] - base,
        }
        for name, r in results.items()
    }
    ratio = summary["imagegate"]["rps_32"] / max(summary["litellm"]["rps_32"], 1e-9)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "litellm": litellm_version,
        "body": BODY,
        "connections": args.connections,
        "seconds": args.seconds,
        "latency_seconds": args.latency_seconds,
        "summary": summary,
        "imagegate_over_litellm": ratio,
        "profile_top": profile,
        "raw": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    say(f"\n| target | req/s at {args.connections} | non-2xx | mean ms at 1 | added ms at 1 |")
    say("|:--|--:|--:|--:|--:|")
    for name, row in summary.items():
        say(
            f"| {name} | {row['rps_32']:.1f} | {row['non_2xx_32']} | {row['mean_ms_1']:.2f} "
            f"| {row['added_ms_1']:+.2f} |"
        )
    say(f"\nimagegate / litellm throughput: {ratio:.2f}×")
    for frame, share in profile:
        say(f"{share:5.1f}%  {frame}")


if __name__ == "__main__":
    main()

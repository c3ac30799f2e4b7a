"""imagegate's ``/v1/images/generations`` beside LiteLLM's proxy, before one upstream.

Three targets, the same load, one run: the zero-latency OpenAI-protocol upstream
(``bench/upstream.py``) called directly; LiteLLM's proxy in front of it (``litellm[proxy]``
from PyPI, installed here into its own virtualenv ``bench/.litellm-venv``, never a dependency of
imagegate); ``imagegate serve`` (SQLite, in-process workers, a live key with credits) with its
``openai`` provider pointed at it. Each is loaded by wrk at 32 connections for throughput, then
at 1 connection for latency; "added" is a gateway's mean latency minus the upstream's.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

from bench import wrk
from bench.gateway import (
    BENCH,
    UPSTREAM_KEY,
    engine,
    free_port,
    gateway,
    log,
    upstream,
    wait_until_up,
    workdir,
)

VENV = BENCH / ".litellm-venv"
MODEL = "gpt-image-1.5"
BODY = {"model": MODEL, "prompt": "a lighthouse at dusk", "size": "1024x1024", "quality": "low"}


def ensure_litellm() -> str:
    """LiteLLM in ``bench/.litellm-venv``, apart from imagegate; its version."""
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "litellm").exists():
        log(f"installing litellm[proxy] into {VENV.relative_to(BENCH.parent)} …")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
    return subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


@contextlib.contextmanager
def litellm_proxy(work: Path, upstream_url: str, master_key: str) -> Iterator[str]:
    port = free_port()
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream_url}\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "general_settings:\n"
        f"  master_key: {master_key}\n"
        "litellm_settings:\n"
        "  drop_params: false\n"
    )
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "PATH": "/usr/bin:/bin"}
    with (work / "litellm.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "litellm"), "--config", str(config), "--port", str(port)],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/liveliness", seconds=180, proc=proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(wrk_bin: str, seconds: float, latency_seconds: float) -> dict[str, Any]:
    version = ensure_litellm()
    master_key = "sk-" + secrets.token_hex(16)
    results: dict[str, Any] = {}
    with workdir("igbench-litellm-") as work:
        home = work / "imagegate"
        home.mkdir()
        with (
            upstream(work) as up,
            litellm_proxy(work, up, master_key) as lite,
            engine("sqlite", home) as db,
            gateway(db, home, in_process_workers=True, upstream_url=up) as gw,
        ):
            targets = {
                "upstream": (f"{up}/images/generations", UPSTREAM_KEY),
                "litellm": (f"{lite}/images/generations", master_key),
                "imagegate": (f"{gw.base_url}/v1/images/generations", gw.live_key),
            }
            for name, (url, key) in targets.items():
                check = httpx2.post(
                    url, json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=60
                )
                if check.status_code != 200:
                    raise RuntimeError(f"{name}: {check.status_code} {check.text[:500]}")
                lua = wrk.script(
                    method="POST",
                    body=json.dumps(BODY),
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                )
                marks = gw.marks()
                loaded = wrk.run(wrk_bin, url, lua, work, connections=32, seconds=seconds)
                single = wrk.run(wrk_bin, url, lua, work, connections=1, seconds=latency_seconds)
                results[name] = {"loaded": loaded.as_dict(), "single": single.as_dict()}
                if name == "imagegate":
                    results[name]["slow_callbacks"] = gw.slow_since(marks)
                log(
                    f"{name}: {loaded.rps:.1f} req/s at 32 (non-2xx {loaded.status_errors}), "
                    f"{single.mean_ms:.2f} ms mean at 1"
                )

    def mean(run: dict[str, Any]) -> float | None:
        return run["mean_ms"] if run["requests"] else None  # nothing finished within the run

    base = mean(results["upstream"]["single"]) or 0.0
    summary = {}
    for name, r in results.items():
        single = mean(r["single"])
        summary[name] = {
            "rps_32": r["loaded"]["rps"],
            "non_2xx_32": r["loaded"]["status_errors"],
            "p50_ms_32": r["loaded"]["p50_ms"],
            "p99_ms_32": r["loaded"]["p99_ms"],
            "mean_ms_1": single,
            "added_ms_1": None if single is None else round(single - base, 3),
        }
    return {
        "litellm_version": version,
        "body": BODY,
        "summary": summary,
        "raw": results,
        "slow_callbacks": results["imagegate"]["slow_callbacks"],
    }

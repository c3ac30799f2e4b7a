"""Turn bench/results/<name>.json into bench/plots/*.svg and BENCHMARKS.md.

    python bench/report.py              # reads bench/results/full.json
    python bench/report.py quick        # reads bench/results/quick.json

Every target is listed with what was measured, pass or miss and by how much. Why a target is
missed is written by hand in bench/notes.md, one ``## <scenario>`` section per scenario
(``submit``, ``submit-tail``, ``read``, ``e2e``, ``inflight``, ``completion``, ``litellm``,
``slow-callbacks``), and copied under each miss, so regenerating never loses it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import Check, checks, slow_callbacks

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "bench" / "plots"
NOTES = ROOT / "bench" / "notes.md"
OUT = ROOT / "BENCHMARKS.md"


def note_sections(text: str) -> dict[str, str]:
    """``## <scenario>`` sections of bench/notes.md, by scenario; text before the first is
    under ``""``."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        else:
            sections[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|:---|" + "|".join("---:" for _ in header[1:]) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def targets_table(found: list[Check]) -> str:
    return table(
        ["target", "measured", "goal", "verdict", "by how much"],
        [
            [c.name, "—" if c.measured is None else c.show(c.measured), c.target,
             f"**{c.verdict}**" if c.passed is False else c.verdict, c.gap]
            for c in found
        ],
    )  # fmt: skip


def _slow(run: dict[str, Any]) -> str:
    slow = run.get("slow_callbacks")
    if not slow:
        return "—"
    return f"{slow['count']} ({slow['longest_ms']:.0f} ms)" if slow["count"] else "0"


def submit_section(sc: dict[str, Any]) -> str:
    runs = sc.get("submit", {}).get("runs", [])
    if not runs:
        return "_Not run._"
    rows = [
        [r["engine"], r["connections"], "yes" if r["idempotency_key"] else "no",
         _f(r["wrk"]["rps"]), _f(r["anchor_rps"]), f"{100 * r['ratio']:.1f} %",
         _f(r["wrk"]["p50_ms"]), _f(r["wrk"]["p99_ms"]), r["wrk"]["status_errors"],
         r["wrk"]["socket_errors"], _slow(r)]
        for r in runs
    ]  # fmt: skip
    return table(
        ["engine", "connections", "Idempotency-Key", "req/s", "anchor req/s", "share",
         "p50 ms", "p99 ms", "non-2xx", "socket errors", "slow callbacks (longest)"],
        rows,
    )  # fmt: skip


def read_section(sc: dict[str, Any]) -> str:
    runs = sc.get("read", {}).get("runs", [])
    if not runs:
        return "_Not run._"
    rows = [
        [r["engine"], r["connections"], _f(r["wrk"]["rps"]), _f(r["anchor_rps"]),
         f"{100 * r['ratio']:.1f} %", _f(r["wrk"]["p50_ms"]), _f(r["wrk"]["p99_ms"]),
         r["wrk"]["status_errors"], _slow(r)]
        for r in runs
    ]  # fmt: skip
    return table(
        ["engine", "connections", "req/s", "bare GET req/s", "share", "p50 ms", "p99 ms",
         "non-2xx", "slow callbacks (longest)"],
        rows,
    )  # fmt: skip


def e2e_section(sc: dict[str, Any]) -> str:
    runs = sc.get("e2e", {}).get("runs", [])
    if not runs:
        return "_Not run._"
    rows = [
        [r["engine"], r["mode"], f"{r['completed']} / {r['jobs']}", _f(r["seconds"], 2),
         _f(r["jobs_per_s"]) + (" (timed out)" if r["timed_out"] else ""),
         " / ".join(_f(rate) for rate in r.get("rounds_jobs_per_s", [r["jobs_per_s"]])),
         _f(r["rss_peak_mb"]), _slow(r)]
        for r in runs
    ]  # fmt: skip
    return table(
        ["engine", "processes", "COMPLETED", "seconds", "jobs/s", "rounds jobs/s",
         "peak RSS MB (all)", "slow callbacks (longest)"],
        rows,
    )  # fmt: skip


def inflight_section(sc: dict[str, Any]) -> str:
    r = sc.get("inflight")
    if not r or "seconds" not in r:
        return "_Not run._"
    seconds = (f"> {r['seconds']:.0f} (stopped waiting)" if r["timed_out"]
               else _f(r["seconds"], 1))  # fmt: skip
    return table(
        ["jobs", "upstream latency s", "COMPLETED", "seconds", "peak RSS MB (all)",
         "slow callbacks (longest)"],
        [[r["jobs"], f"{r['latency_s']:g}", r["completed"], seconds, _f(r["rss_peak_mb"]),
          _slow(r)]],
    )  # fmt: skip


def completion_section(sc: dict[str, Any]) -> str:
    r = sc.get("completion")
    if not r:
        return "_Not run._"
    return table(
        ["jobs", "→ COMPLETED p50 ms", "→ COMPLETED max ms", "→ webhook p50 ms",
         "→ webhook max ms", "slow callbacks (longest)"],
        [[r["jobs"], _f(r["completed_p50_ms"]), _f(r["completed_max_ms"]),
          _f(r["webhook_p50_ms"]), _f(r["webhook_max_ms"]), _slow(r)]],
    )  # fmt: skip


def litellm_section(sc: dict[str, Any]) -> str:
    r = sc.get("litellm")
    if not r:
        return "_Not run._"
    names = {"upstream": "upstream alone", "litellm": f"LiteLLM {r['litellm_version']} proxy",
             "imagegate": "imagegate `/v1`"}  # fmt: skip
    rows = [
        [names[name], _f(s["rps_32"]), f"{_f(s['p50_ms_32'])} / {_f(s['p99_ms_32'])}",
         s["non_2xx_32"], _f(s["mean_ms_1"], 2) if s["mean_ms_1"] is not None else "none finished",
         "—" if name == "upstream" or s["added_ms_1"] is None else f"{s['added_ms_1']:+.2f}"]
        for name, s in r["summary"].items()
    ]  # fmt: skip
    return table(
        ["target", "req/s at 32", "p50 / p99 ms at 32", "non-2xx", "mean ms at 1",
         "added ms at 1"],
        rows,
    )  # fmt: skip


def memory_section(sc: dict[str, Any]) -> str:
    rows = [
        [m["engine"], m["process"], _f(m["rss_idle_mb"]), _f(m["rss_peak_mb"])]
        for m in sc.get("submit", {}).get("memory", [])
    ]
    if not rows:
        return "_Not run._"
    return table(["engine", "process", "idle RSS MB", "peak RSS MB under submit load"], rows)


def slow_section(results: dict[str, Any]) -> str:
    rows = [
        [s["scenario"], s["run"], s["count"], s.get("mostly_gc", "—"),
         s.get("mostly_waiting", "—"), _f(s["longest_ms"]),
         f"`{s['longest'][:120]}`" if s.get("longest") else "—"]
        for s in slow_callbacks(results)
    ]  # fmt: skip
    if not rows:
        return "_Not run._"
    header = [
        "scenario", "run", "callbacks ≥ 20 ms", "of which mostly in GC",
        "of which mostly waiting (CPU < half)", "longest ms",
    ]  # fmt: skip
    return table([*header, "longest callback"], rows)


def why_section(found: list[Check], notes: dict[str, str]) -> str:
    missed: list[str] = []
    for check in found:
        if check.passed is False and check.scenario not in missed:
            missed.append(check.scenario)
    if not missed:
        return "Every target that ran was met."
    parts = []
    for scenario in missed:
        names = "; ".join(c.name for c in found if c.scenario == scenario and c.passed is False)
        text = notes.get(scenario) or "_No note yet in bench/notes.md._"
        parts.append(f"### {scenario}\n\nMissed: {names}.\n\n{text}")
    return "\n\n".join(parts)


def _rounds(cfg: dict[str, Any]) -> str:
    """How the rows with a target were measured: in rounds, or (older results) in one run."""
    if "rounds" not in cfg:
        return f"Each run lasted {cfg.get('seconds')} s."
    return (
        f"The rows with a target are measured in {cfg['rounds']} rounds of "
        f"{cfg['round_seconds']} s, each the anchor then every variant right after it, and show "
        "the round with the median share (the results file keeps every round); the 1- and "
        f"8-connection rows run once, {cfg.get('extra_seconds')} s each."
    )


def render(results: dict[str, Any], name: str, notes: str, plots: dict[str, str]) -> str:
    """BENCHMARKS.md for one results file (pure: the plots are made beforehand)."""
    m = results["machine"]
    sc = results.get("scenarios", {})
    cfg = results.get("config", {})
    found = checks(results)
    sections = note_sections(notes)
    packages = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
    load = ", ".join(f"{x:.2f}" for x in m.get("loadavg_start", []))
    stolen = m.get("cpu_stolen_percent")
    stolen_row = (
        f"| CPU time the host took (steal) during the run | {stolen:.1f} % |\n"
        if stolen is not None
        else ""
    )

    earlier = (
        f"\n## Compared with the earlier table\n\n{sections['earlier']}\n"
        if sections.get("earlier")
        else ""
    )

    def img(key: str, alt: str) -> str:
        return f"![{alt}]({plots[key]})\n\n" if key in plots else ""

    machine_note = sections.get("machine") or (
        "The machine is shared: other engineers' test suites run on the same cores during the "
        "benchmark, so absolute numbers are low and noisy. What counts are the ratios, each "
        "measured against its baseline in the same run, minutes apart."
    )
    return f"""# Benchmarks

How fast is imagegate, next to what the same machine does with the least possible code?
`bench/run.py` starts the real `imagegate serve` / `imagegate worker` processes on free ports
and loads them over HTTP with `wrk` (a compiled load generator, the Debian package, in its
own process). Every throughput is reported as a share of a baseline measured in the same run: a
bare FastAPI + pydantic app (`bench/anchor.py`) served the way `imagegate serve` serves, or
LiteLLM's proxy. Results: `bench/results/{name}.json`. Plots: `bench/plots/`.

## Targets

{targets_table(found)}

## Machine

| | |
|:---|:---|
| Date | {m["date"]} |
| CPU | {m["cpu_count"]} × {m["cpu_model"] or "unknown"} |
| Memory | {m["memory_mb"]} MB |
| Load average at start (1/5/15 min) | {load} |
{stolen_row}| OS | {m["os"]} |
| Python | {m["python"]} |
| SQLite | {m["sqlite"]} |
| PostgreSQL | {m["postgresql"]} (local, default config, TCP on 127.0.0.1) |
| Load generator | {m.get("wrk", "wrk")} |
| imagegate | commit {m.get("git_commit")} |
| Packages | {packages} |
| Run | {"quick (smoke)" if results.get("quick") else "full"}, {results.get("wall_seconds")} s |

{machine_note}

## How to reproduce

```bash
.venv/bin/pip install -e '.[bench]'             # matplotlib, for the plots
.venv/bin/python bench/run.py                   # < 10 min → bench/results/full.json
.venv/bin/python bench/run.py --only submit     # one scenario, merged into that file
.venv/bin/python bench/run.py --quick           # smoke run → bench/results/quick.json
.venv/bin/python bench/report.py                # → bench/plots/*.svg and this file
```

Standalone scripts, not part of this run: `bench/openai_vs_litellm.py --profile` (the LiteLLM
comparison with a py-spy profile of imagegate), `bench/completion_latency.py` (which this run
calls) and `bench/memory_large_images.py` (memory under 45–60 MB upstream images).

`wrk` comes from the Debian package (the script installs it when missing); LiteLLM is installed
by the script into `bench/.litellm-venv` (`--no-litellm` skips it). PostgreSQL must accept
`postgres@127.0.0.1:5432` without a password (`BENCH_PG_DSN` / `BENCH_PG_URL` override it);
each gateway gets a fresh database, dropped afterwards.

How it measures:

- Every gateway process and the anchor run under `bench/loopwatch.py`: an event loop that times
  each callback as asyncio's debug mode does, with `loop.slow_callback_duration` = 20 ms (but
  without debug mode's per-handle stack capture, which would cost more than half the anchor's
  throughput). It counts asyncio's "Executing … took …" warnings, so each run reports how many
  callbacks held the event loop ≥ 20 ms and the longest.
- **Submit**: `POST /v2/images/generate` with the test key and
  `{{"model":"gpt-image-1.5","prompt":"bench","gptImageParams":{{"quality":"low"}}}}` on
  `serve --no-workers`, `wrk -t2 -c<N>`, with and without a unique `Idempotency-Key` per
  request (a wrk Lua script numbers them per thread); the anchor's POST with the same body is
  measured right before, at the same connections. {_rounds(cfg)}
- **Read**: `GET /v2/jobs/{{id}}` beside the anchor's bare GET, {cfg.get("read_connections")}
  connections, in rounds as the submits.
- **End to end**: {cfg.get("e2e_jobs")} jobs with a live key through a zero-latency fake
  OpenAI upstream (`bench/upstream.py`: imagegate.testing's fake, answering one 64 KB PNG),
  submitted by wrk at 32 connections; timed from the first submit until that many are
  `COMPLETED` (counted in the database every 50 ms). {cfg.get("e2e_rounds", 1)} rounds one
  after the other on the same gateway, each once the last one's jobs have finished; the round
  with the median rate is the row. The provider's `max_concurrency` is 2,000
  (the vendor account's cap); everything else is the default.
- **In flight**: {cfg.get("inflight_jobs")} jobs against the same upstream answering after
  {cfg.get("inflight_latency")} s; defaults except the provider's `max_concurrency` (2,000) and
  the per-account queued-jobs cap; peak RSS is the sum over the gateway's processes.
- **Completion latency**: `bench/completion_latency.py`, as it is: {cfg.get("completion_jobs")}
  jobs one at a time on `imagegate serve` (SQLite, defaults) before the fake OpenAI upstream,
  each with a webhook to a receiver in the script; from the moment the upstream's answer left
  to the job's `completedAt` and to the webhook's arrival (that gateway is not under
  `loopwatch`).
- **LiteLLM**: the same upstream called directly, through LiteLLM's proxy and through
  imagegate's `/v1/images/generations`: wrk at 32 connections, then at 1.

## Results

### Submit: `POST /v2/images/generate`

{img("shares", "throughput as a share of the anchor")}{img("submit_latency", "submit latency")}\
{submit_section(sc)}

### Read: `GET /v2/jobs/{{id}}`

{read_section(sc)}

### End to end

{img("e2e", "end-to-end jobs/s")}{e2e_section(sc)}

### In flight

{inflight_section(sc)}

### Completion latency

{completion_section(sc)}

### OpenAI-compatible API beside LiteLLM

{litellm_section(sc)}

### Memory

{memory_section(sc)}

### Event loop: callbacks ≥ 20 ms

{slow_section(results)}

## Why targets are missed

{why_section(found, sections)}
{earlier}"""


def main() -> None:
    from bench import plots

    name = sys.argv[1] if len(sys.argv) > 1 else "full"
    results = json.loads((RESULTS / f"{name}.json").read_text())
    made = plots.all_plots(results, PLOTS)
    notes = NOTES.read_text() if NOTES.exists() else ""
    OUT.write_text(render(results, name, notes, made))
    print(f"wrote {OUT.relative_to(ROOT)} and {len(made)} plots")  # noqa: T201


if __name__ == "__main__":
    main()

"""Turn bench/results/<name>.json into bench/plots/*.svg and BENCHMARKS.md.

    python bench/report.py              # reads bench/results/full.json
    python bench/report.py quick        # reads bench/results/quick.json

The hand-written reading of the numbers lives in bench/notes.md and is copied into BENCHMARKS.md
below the generated tables, so regenerating never loses it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "bench" / "plots"
NOTES = ROOT / "bench" / "notes.md"
OUT = ROOT / "BENCHMARKS.md"

plt.rcParams.update({"svg.hashsalt": "imagegate-bench", "figure.dpi": 100, "font.size": 9})
COLORS = {"sqlite": "#3b7dd8", "postgres": "#d8813b"}


def save(fig: Any, name: str) -> str:
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / f"{name}.svg"
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return f"bench/plots/{name}.svg"


def series(data: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(label, scenario, submit runs) for every submit series."""
    out = []
    for scenario in data["api"]:
        for idem in (False, True):
            runs = [r for r in scenario["submit"] if r["idempotency_key"] is idem]
            if not runs:
                continue
            label = f"{scenario['engine']}, {'workers' if scenario['workers'] else 'API only'}"
            if idem:
                label += ", Idempotency-Key"
            out.append((label, scenario, runs))
    return out


def plot_submit(data: dict[str, Any]) -> tuple[str, str]:
    all_series = series(data)
    concurrency = data["config"]["concurrency"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(all_series)
    for n, (label, scenario, runs) in enumerate(all_series):
        xs = [
            concurrency.index(r["concurrency"]) + (n - len(all_series) / 2 + 0.5) * width
            for r in runs
        ]
        hatch = "//" if "Idempotency" in label else ("" if scenario["workers"] else "..")
        alpha = 1.0 if scenario["workers"] else 0.55
        ax.bar(
            xs,
            [r["rps"] for r in runs],
            width,
            label=label,
            hatch=hatch,
            alpha=alpha,
            color=COLORS[scenario["engine"]],
            edgecolor="black",
            linewidth=0.4,
        )
    ax.set_xticks(range(len(concurrency)), [f"{c} clients" for c in concurrency])
    ax.set_ylabel("accepted submits / s (202)")
    ax.set_title("POST /v2/images/generate throughput")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    throughput = save(fig, "submit_throughput")

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), sharey=True)
    for ax, key in zip(axes, ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        for label, scenario, runs in all_series:
            style = "--" if "Idempotency" in label else ("-" if scenario["workers"] else ":")
            ax.plot(
                [r["concurrency"] for r in runs],
                [r[key] for r in runs],
                style,
                marker="o",
                color=COLORS[scenario["engine"]],
                label=label,
                markersize=3,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(concurrency, [str(c) for c in concurrency])
        ax.set_title(key.replace("_ms", ""))
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("submit latency, ms (log)")
    axes[0].legend(fontsize=6)
    latency = save(fig, "submit_latency")
    return throughput, latency


def plot_read(data: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels, p50, p99, colors = [], [], [], []
    for scenario in data["api"]:
        for run in scenario["read"]:
            mode = "workers" if scenario["workers"] else "API only"
            labels.append(f"{scenario['engine']}\n{mode}\nc={run['concurrency']}")
            p50.append(run["p50_ms"])
            p99.append(run["p99_ms"])
            colors.append(COLORS[scenario["engine"]])
    xs = range(len(labels))
    ax.bar(
        [x - 0.2 for x in xs], p50, 0.4, color=colors, label="p50", edgecolor="black", linewidth=0.4
    )
    ax.bar(
        [x + 0.2 for x in xs],
        p99,
        0.4,
        color=colors,
        alpha=0.5,
        hatch="//",
        label="p99",
        edgecolor="black",
        linewidth=0.4,
    )
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title("GET /v2/jobs/{id} latency")
    ax.legend()
    ax.grid(axis="y", alpha=0.3, which="both")
    return save(fig, "read_latency")


def plot_e2e(data: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = [f"{r['engine']}\n{r['mode']}" for r in data["e2e"]]
    values = [r["jobs_per_s"] for r in data["e2e"]]
    bars = ax.bar(
        range(len(values)),
        values,
        color=[COLORS[r["engine"]] for r in data["e2e"]],
        edgecolor="black",
        linewidth=0.4,
    )
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("jobs / s (submit → COMPLETED)")
    ax.set_title(f"End-to-end: {data['config']['jobs']} sandbox jobs")
    ax.grid(axis="y", alpha=0.3)
    return save(fig, "e2e_throughput")


def plot_memory(data: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    for scenario in data["api"]:
        samples = scenario["rss_samples"]
        style = "-" if scenario["workers"] else ":"
        ax.plot(
            [t for t, _ in samples],
            [v / 1024 for _, v in samples],
            style,
            color=COLORS[scenario["engine"]],
            linewidth=1,
            label=f"{scenario['engine']}, {scenario['mode']}",
        )
    ax.set_xlabel("seconds into the load (submit runs, then reads)")
    ax.set_ylabel("serve VmRSS, MB")
    ax.set_title("Memory of the serve process under load (100 ms samples)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, "memory")


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines[1] = "|:---" + lines[1][5:]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(data: dict[str, Any], name: str) -> str:
    m = data["machine"]
    cfg = data["config"]
    throughput, latency = plot_submit(data)
    read_plot = plot_read(data)
    e2e_plot = plot_e2e(data)
    memory_plot = plot_memory(data)

    submit_rows = []
    for scenario in data["api"]:
        for r in scenario["submit"]:
            others = {k: v for k, v in r["statuses"].items() if k != "202"}
            submit_rows.append(
                [
                    scenario["engine"],
                    "workers" if scenario["workers"] else "API only",
                    "yes" if r["idempotency_key"] else "no",
                    r["concurrency"],
                    r["requests"],
                    r["rps"],
                    r["p50_ms"],
                    r["p95_ms"],
                    r["p99_ms"],
                    r["max_ms"],
                    r["server_cpu_ms_per_request"],
                    ", ".join(f"{k}: {v}" for k, v in others.items()) or "none",
                ]
            )
    read_rows = []
    for scenario in data["api"]:
        for r in scenario["read"]:
            read_rows.append(
                [
                    scenario["engine"],
                    "workers" if scenario["workers"] else "API only",
                    r["concurrency"],
                    r["requests"],
                    r["rps"],
                    r["p50_ms"],
                    r["p95_ms"],
                    r["p99_ms"],
                    r["server_cpu_ms_per_request"],
                ]
            )
    e2e_rows = []
    for r in data["e2e"]:
        e2e_rows.append(
            [
                r["engine"],
                r["mode"],
                r["accepted"],
                r["submit_seconds"],
                r["total_seconds"],
                r["jobs_per_s"],
                ", ".join(f"{k} {v}" for k, v in r["rss_peak_mb"].items()),
            ]
        )
    memory_rows = []
    for scenario in data["api"]:
        memory_rows.append(
            [
                scenario["engine"],
                scenario["mode"],
                scenario["startup_seconds"],
                scenario["rss_idle_start_mb"],
                scenario["rss_peak_mb"],
                scenario["rss_idle_after_mb"],
            ]
        )
    packages = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
    notes = NOTES.read_text().strip() if NOTES.exists() else "_(no notes)_"
    return f"""# Benchmarks

How fast is one imagegate gateway, and how much memory does it use? These numbers come from
`bench/run.py`, which starts the real `imagegate serve` (and `imagegate worker`) processes on a
free port and drives them over HTTP, on SQLite and on PostgreSQL. The jobs run on the built-in
sandbox with no latency and 64 px images, so what is measured is the gateway itself (HTTP, auth,
validation, the database, the queue), not image rendering or upstream vendors.

Results file: `bench/results/{name}.json`. Plots: `bench/plots/`.

## Machine

| | |
|:---|:---|
| Date | {m["date"]} |
| CPU | {m["cpu_count"]} × {m["cpu_model"] or "unknown"} |
| Memory | {m["memory_mb"]} MB |
| OS | {m["os"]} |
| Python | {m["python"]} |
| SQLite | {m["sqlite"]} (WAL, synchronous=NORMAL) |
| PostgreSQL | {m["postgresql"]} (local, default config, TCP on 127.0.0.1) |
| imagegate | commit {m.get("git_commit")} (working tree as of the run) |
| Packages | {packages} |

The load generator (httpx2, one Python process) runs on the same {m["cpu_count"]} CPUs as the
gateway and PostgreSQL, so everything competes for the same cores; absolute numbers are low for
that reason and should be read relative to each other.

## How to reproduce

```bash
.venv/bin/pip install -e '.[bench]'          # or: .venv/bin/pip install matplotlib
.venv/bin/python bench/run.py --quick        # smoke run, ~1.5 min → bench/results/quick.json
.venv/bin/python bench/run.py                # full run, ~7 min → bench/results/full.json
.venv/bin/python bench/report.py             # → bench/plots/*.svg and this file
```

PostgreSQL must accept `postgres@127.0.0.1:5432` without a password (override with
`BENCH_PG_DSN` / `BENCH_PG_URL`); the script creates a fresh database per gateway and drops it.
Each gateway gets a temp data dir, `IMAGEGATE_SANDBOX_LATENCY_SECONDS=0`,
`IMAGEGATE_PROVIDERS__SANDBOX__OPTIONS__MAX_SIDE=64`, `IMAGEGATE_LOG_LEVEL=WARNING` and
`IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT=1000000` (the default cap of 100 queued jobs would turn a
burst into 429s). Everything else is the default, including `IMAGEGATE_WORKERS=4`.

What each run does:

- **Submit**: `N` clients (closed loop: each sends its next request when the last one answered)
  POST `/v2/images/generate` with the test key and
  `{{"model":"gpt-image-1.5","prompt":"bench","gptImageParams":{{"quality":"low"}}}}` for
  {cfg["duration"]} s after a 0.5 s warm-up, without and with a unique `Idempotency-Key` per
  request. "workers" is plain `imagegate serve` (its 4 in-process job slots run the submitted jobs
  meanwhile; between runs the script waits until the backlog is COMPLETED, so each run starts with
  an empty queue); "API only" is `imagegate serve --no-workers` (jobs stay QUEUED).
  "CPU ms/req" is the serve process's user+system CPU time during the run divided by the
  requests answered: with workers it includes running the jobs.
- **Read**: `GET /v2/jobs/{{id}}` over the jobs just created, {cfg["read_concurrency"]} clients.
- **End-to-end**: {cfg["jobs"]} jobs submitted by {cfg["e2e_concurrency"]} clients on a fresh
  gateway, timed from the first submit until all of them are COMPLETED (counted with a
  `SELECT count(*)` straight on the database every 50 ms, so polling does not load the API).
  Once as one `serve` process, once as `serve --no-workers` + {cfg["worker_processes"]}
  `imagegate worker` processes (4 slots each).
- **Memory**: VmRSS from `/proc/<pid>/status` of every gateway process, idle 1 s after start and
  every 100 ms under load.

## Results

### Submit: `POST /v2/images/generate`

![submit throughput]({throughput})

![submit latency]({latency})

{
        md_table(
            [
                "engine",
                "process",
                "Idempotency-Key",
                "clients",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "CPU ms/req",
                "non-202",
            ],
            submit_rows,
        )
    }

### Read: `GET /v2/jobs/{{id}}`

![read latency]({read_plot})

{
        md_table(
            [
                "engine",
                "process",
                "clients",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "CPU ms/req",
            ],
            read_rows,
        )
    }

### End-to-end job throughput

![end-to-end]({e2e_plot})

{
        md_table(
            ["engine", "processes", "jobs", "submit s", "all COMPLETED s", "jobs/s", "peak RSS MB"],
            e2e_rows,
        )
    }

### Memory

![memory]({memory_plot})

{
        md_table(
            ["engine", "process", "start s", "idle RSS MB", "peak RSS MB", "RSS after MB"],
            memory_rows,
        )
    }

## Reading the results

{notes}
"""


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "full"
    data = json.loads((RESULTS / f"{name}.json").read_text())
    OUT.write_text(render(data, name))
    print(f"wrote {OUT.relative_to(ROOT)} and {len(list(PLOTS.glob('*.svg')))} plots")  # noqa: T201


if __name__ == "__main__":
    main()

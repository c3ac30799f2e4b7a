"""The plots of BENCHMARKS.md (matplotlib, SVG, reproducible bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams.update({"svg.hashsalt": "imagegate-bench", "figure.dpi": 100, "font.size": 8})
COLORS = {"sqlite": "#3b7dd8", "postgres": "#d8813b"}


def _save(fig: Any, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.svg", format="svg", metadata={"Date": None})
    plt.close(fig)
    return f"bench/plots/{name}.svg"


def shares(results: dict[str, Any], folder: Path) -> str | None:
    """Each throughput run as a share of its anchor, against the 50 % target."""
    sc = results.get("scenarios", {})
    rows = [("submit " + r["label"], r) for r in sc.get("submit", {}).get("runs", [])]
    rows += [("GET " + r["label"], r) for r in sc.get("read", {}).get("runs", [])]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    labels = [label for label, _ in rows]
    values = [100 * r["ratio"] for _, r in rows]
    bars = ax.barh(
        range(len(rows)),
        values,
        color=[COLORS.get(r["engine"], "grey") for _, r in rows],
        edgecolor="black",
        linewidth=0.4,
    )
    ax.bar_label(bars, fmt="%.1f %%", fontsize=7, padding=2)
    ax.axvline(50, color="black", linestyle="--", linewidth=1, label="target ≥ 50 %")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("req/s as % of the bare FastAPI anchor, same run")
    ax.set_xlim(0, max(110, max(values) * 1.15))
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, folder, "throughput_share")


def submit_latency(results: dict[str, Any], folder: Path) -> str | None:
    runs = results.get("scenarios", {}).get("submit", {}).get("runs", [])
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    xs = range(len(runs))
    colors = [COLORS.get(r["engine"], "grey") for r in runs]
    ax.bar([x - 0.2 for x in xs], [max(r["wrk"]["p50_ms"], 0.01) for r in runs], 0.4,
           color=colors, edgecolor="black", linewidth=0.4, label="p50")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [max(r["wrk"]["p99_ms"], 0.01) for r in runs], 0.4,
           color=colors, alpha=0.5, hatch="//", edgecolor="black", linewidth=0.4,
           label="p99")  # fmt: skip
    ax.set_xticks(list(xs), [r["label"].replace(", ", "\n") for r in runs], fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title("POST /v2/images/generate latency (wrk)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3, which="both")
    return _save(fig, folder, "submit_latency")


def e2e(results: dict[str, Any], folder: Path) -> str | None:
    runs = results.get("scenarios", {}).get("e2e", {}).get("runs", [])
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6, 2.8))
    bars = ax.bar(
        range(len(runs)),
        [r["jobs_per_s"] for r in runs],
        color=[COLORS.get(r["engine"], "grey") for r in runs],
        edgecolor="black",
        linewidth=0.4,
    )
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.axhline(300, color="black", linestyle="--", linewidth=1, label="target ≥ 300 jobs/s")
    ax.set_xticks(range(len(runs)), [r["label"].replace(", ", "\n") for r in runs], fontsize=7)
    ax.set_ylabel("jobs/s, first submit → all COMPLETED")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, folder, "e2e_throughput")


def all_plots(results: dict[str, Any], folder: Path) -> dict[str, str]:
    made = {
        "shares": shares(results, folder),
        "submit_latency": submit_latency(results, folder),
        "e2e": e2e(results, folder),
    }
    return {name: path for name, path in made.items() if path is not None}

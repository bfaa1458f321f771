"""Writing a run down: ``results.md`` (the tables) and ``results.png`` (the plot)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib.metadata import version
from itertools import groupby
from pathlib import Path

from ._results import Results, Row

__all__ = ["machine", "plot", "readme_block", "to_markdown", "update_readme"]

_VERSIONED = ("aiokeys", "aiohttp", "attrs", "cattrs", "orjson")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the machine, the interpreter and the libraries measured."""
    libs = ", ".join(f"{name} {version(name)}" for name in _VERSIONED)
    return (
        f"{os.cpu_count()} cores ({_cpu_model()}), {platform.system()},"
        f" Python {platform.python_version()}; {libs}"
    )


def _fmt(value: float, unit: str) -> str:
    if unit == "keys/s":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.1f}"


def _row(row: Row) -> str:
    stats = row.stats
    spread = (
        "-"
        if stats.runs == 1 and row.label.startswith("ideal")
        else f"{_fmt(stats.low, row.unit)} - {_fmt(stats.high, row.unit)}"
    )
    return (
        f"| {row.label} | {_fmt(stats.median, row.unit)} {row.unit} | {spread} "
        f"| {stats.runs} | {row.compare} |"
    )


def _aims(results: Results) -> list[str]:
    lines = ["## Aims", "", "| aim | measured | met |", "|---|---|---|"]
    lines += [
        f"| {a.aim} | {a.measured} | {'yes' if a.met else '**no**'} |"
        for a in results.aims
    ]
    return [*lines, ""]


def _sections(results: Results) -> list[str]:
    lines: list[str] = []
    # Sections numbered as in the plan, whatever order the scenarios ran in.
    ordered = sorted(results.rows, key=lambda r: int(r.section.split(".", 1)[0]))
    for section, rows in groupby(ordered, key=lambda r: r.section):
        lines += [f"### {section}", ""]
        lines += ["| contender | median | min - max | runs | compared |"]
        lines += ["|---|---|---|---|---|"]
        lines += [_row(row) for row in rows]
        lines.append("")
    return lines


def to_markdown(results: Results, *, command: str) -> str:
    """The whole report: how it was made, the aims, then one table per scenario."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# aiokeys benchmarks",
        "",
        f"`{command}` ({results.settings.name} settings), {stamp}, "
        f"{results.elapsed / 60:.1f} min in all.",
        "",
        f"Machine: {machine()}. Load average (1 min) {results.load_before:.2f}"
        f" before the run, {results.load_after:.2f} after.",
        "",
        *(f"- {note}" for note in results.notes),
        "",
        *_aims(results),
        "## Scenarios",
        "",
        *_sections(results),
    ]
    if results.profile:
        lines += ["## Profile", "", results.profile]
    return "\n".join(lines).rstrip() + "\n"


def plot(results: Results, path: Path) -> None:
    """Wall time against pages, one line per contender, the ideal dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, series in results.scaling.items():
        pages = sorted(series)
        medians = [series[p].median for p in pages]
        errors = [
            [series[p].median - series[p].low for p in pages],
            [series[p].high - series[p].median for p in pages],
        ]
        ax.errorbar(pages, medians, yerr=errors, marker="o", capsize=3, label=name)
    ideal_pages = sorted(results.ideal)
    ax.plot(ideal_pages, [results.ideal[p] for p in ideal_pages], "k--", label="ideal")
    settings = results.settings
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="pages",
        ylabel="wall time (s), median and min-max",
        title=(
            f"Listing one org: {settings.page_size} keys a page, "
            f"{settings.latency * 1000:g} ms a request, concurrency {settings.concurrency}"
        ),
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


_README_START = "<!-- bench:start -->"
_README_END = "<!-- bench:end -->"


def readme_block(results: Results) -> str:
    """The README's headline: scenario 1's table, peak memory, the plot."""
    settings = results.settings
    head = [r for r in results.rows if r.section.startswith("1.")]
    memory = {
        r.label: r.stats.median for r in results.rows if r.section.startswith("4.")
    }
    small, big = settings.memory_keys
    lines = [
        f"**Benchmarks** (`nox -s bench`; {os.cpu_count()} cores, simulator in its own"
        f" process; full tables in [benchmarks/results.md](benchmarks/results.md)):"
        f" {settings.headline_pages} pages of {settings.page_size} keys,"
        f" {settings.latency * 1000:g} ms a request, concurrency {settings.concurrency}.",
        "",
        "| contender | wall time, median (min - max) | compared |",
        "|---|---|---|",
        *(
            f"| {r.label} | {_fmt(r.stats.median, 's')} s"
            + (
                ""
                if r.label == "ideal"
                else f" ({_fmt(r.stats.low, 's')} - {_fmt(r.stats.high, 's')})"
            )
            + f" | {r.compare} |"
            for r in head
        ),
        "",
    ]
    if memory:
        lines += [
            f"Peak RSS listing {small:,} / {big:,} keys: aiokeys"
            f" {memory.get(f'aiokeys, {small:,} keys', 0):.0f} / {memory.get(f'aiokeys, {big:,} keys', 0):.0f} MiB,"
            f" gather {memory.get(f'gather, {small:,} keys', 0):.0f} / {memory.get(f'gather, {big:,} keys', 0):.0f} MiB.",
            "",
        ]
    lines.append("![wall time against pages](benchmarks/results.png)")
    return "\n".join(lines)


def update_readme(results: Results, readme: Path) -> bool:
    """Replace the README's block between the bench markers; ``False`` if it has none."""
    text = readme.read_text()
    start, end = text.find(_README_START), text.find(_README_END)
    if start < 0 or end < start:
        return False
    block = f"{_README_START}\n{readme_block(results)}\n{_README_END}"
    readme.write_text(text[:start] + block + text[end + len(_README_END) :])
    return True

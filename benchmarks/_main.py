"""``python -m benchmarks``: run every scenario, write the tables and the plot."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ._config import FULL, QUICK
from ._report import plot, to_markdown, update_readme
from ._results import Results
from ._scenarios import run_all

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent

_NOTES = (
    "Simulator: `python -m aiokeys.testing` in its own process, one per scenario;"
    " client and server share the machine's cores, not an event loop.",
    "Each row: median of the runs shown, with the min-max spread; contenders"
    " interleaved run by run; one discarded warm-up per simulator.",
    "Wall times include creating the session or client and connecting.",
    "Walk and gather are plain aiohttp with `response.json()` into dicts: they"
    " decode less than aiokeys (no classes, no datetimes, no validation).",
    "Gather lifts aiohttp's connector limit (100 by default) to be truly unbounded.",
    "Ideal: latency x (1 + ceil((pages - 1) / concurrency)).",
)


def _scenario_list(text: str) -> frozenset[int]:
    numbers = frozenset(int(part) for part in text.split(",") if part.strip())
    if not numbers or not numbers <= set(range(1, 8)):
        raise argparse.ArgumentTypeError("expected scenario numbers 1-7, e.g. 1,4")
    return numbers


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        "--smoke",
        action="store_true",
        help="run every scenario tiny (seconds): checks the scripts, measures nothing",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where results.md and results.png go (default: benchmarks/, or a"
        " temporary directory with --quick)",
    )
    parser.add_argument(
        "--only",
        type=_scenario_list,
        default=None,
        metavar="N,N",
        help="run only these scenarios (numbers 1-7; 1, 2 and 7 share runs, as do 3 and 5)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile the decoder and one listing; appended to results.md",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the report; return the exit status."""
    args = _parser().parse_args(argv)
    settings = QUICK if args.quick else FULL
    out: Path = args.out or (
        Path(tempfile.mkdtemp(prefix="aiokeys-bench-")) if args.quick else _HERE
    )
    out.mkdir(parents=True, exist_ok=True)

    results = run_all(settings, only=args.only, with_profile=args.profile)
    results.notes.extend(_NOTES)
    if settings.big_runs != settings.runs:
        results.notes.append(
            f"The walk over {max(settings.scaling_pages)} pages: {settings.big_runs}"
            f" runs (about a minute each); memory: {settings.memory_runs} runs"
            " (peak RSS barely varies)."
        )
    command = " ".join(
        ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
    )
    report = to_markdown(results, command=command)
    _write(results, report, out, headline=not args.quick and args.only is None)
    print(report)
    return 0


def _write(results: Results, report: str, out: Path, *, headline: bool) -> None:
    """Write results.md and results.png; refresh the README's headline block.

    Only a full run of every scenario, written where it is committed, speaks
    for the README.
    """
    (out / "results.md").write_text(report)
    if results.scaling:
        plot(results, out / "results.png")
    print(f"wrote results.md and results.png in {out}", file=sys.stderr)
    readme = _HERE.parent / "README.md"
    if headline and out == _HERE and update_readme(results, readme):
        print("updated the benchmark block of README.md", file=sys.stderr)

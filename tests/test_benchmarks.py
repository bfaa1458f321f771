"""The benchmark scripts still run: every scenario, tiny, end to end.

This is a smoke test of the harness, not a measurement: nothing here looks at a
timing. It runs ``python -m benchmarks --quick`` in a subprocess, as ``nox -s
bench`` would, and checks that every scenario made it into the report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = (
    "1. latency-bound",
    "2. scaling",
    "3. CPU-bound",
    "4. memory",
    "5. event-loop stall",
    "6. many orgs",
    "7. time to first key",
)


def test_quick_run_writes_every_scenario(tmp_path: Path) -> None:
    """`python -m benchmarks --quick` exits 0 and reports all seven scenarios."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "results.md").read_text()
    missing = [section for section in SECTIONS if f"### {section}" not in report]
    assert missing == []
    assert "## Aims" in report
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
    assert "| aiokeys ordered |" in done.stdout

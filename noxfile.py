"""Developer tasks: `nox -s tests`, `nox -s lint typecheck`, `nox -s bench`, `nox -s demo`."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.13"]


def _expose_pyenv_interpreters() -> None:
    """Put every pyenv-installed CPython on PATH so nox finds python3.13 too.

    pyenv's shims answer only for the selected version; nox looks interpreters
    up by name, so without this a machine with 3.13 installed under pyenv but
    not selected would report it missing.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    bins = sorted(str(p / "bin") for p in root.glob("3.*") if (p / "bin").is_dir())
    if bins:
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *bins])


_expose_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against the in-process Atlas simulator."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Run benchmarks/, write benchmarks/results.md and results.png, print the table."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """List a few thousand keys from the embedded Atlas simulator."""
    session.install("-e", ".[cli]")
    session.run("aiokeys", "demo", *session.posargs)

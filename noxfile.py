"""Developer tasks: `nox -s tests`, `nox -s lint typecheck`, `nox -s bench`, `nox -s demo`."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against the in-process Atlas simulator."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
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

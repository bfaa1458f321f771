"""Entry point of ``python -m benchmarks`` (and ``nox -s bench``)."""

from __future__ import annotations

from ._main import main

raise SystemExit(main())

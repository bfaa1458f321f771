"""An in-process MongoDB Atlas for tests, benchmarks and demos: :class:`FakeAtlas`.

It serves the seven AI model API keys operations over real HTTP on loopback,
with Atlas' pagination, versioned media types, error shapes, Digest and OAuth
authentication, rate limits, injected faults (:class:`Fault`) and data drift,
and logs every request (:class:`LoggedRequest`) for tests to assert on.

Use it directly (``async with FakeAtlas() as atlas``), as the ``fake_atlas``
pytest fixture (``pytest_plugins = ["aiokeys.testing.pytest_plugin"]``), or
standalone: ``python -m aiokeys.testing --orgs 2 --keys 1000``.
"""

from __future__ import annotations

from ._atlas import FakeAtlas
from ._faults import Fault, FaultKind
from ._log import LoggedRequest
from ._ratelimit import RateLimit

__all__ = ["FakeAtlas", "Fault", "FaultKind", "LoggedRequest", "RateLimit"]

"""pytest fixtures for :class:`~aiokeys.testing.FakeAtlas`.

Enable with ``pytest_plugins = ["aiokeys.testing.pytest_plugin"]`` in a
``conftest.py``. Fixtures:

* ``fake_atlas``: a started ``FakeAtlas()`` with default settings, closed after
  the test;
* ``fake_atlas_factory``: ``await fake_atlas_factory(**kwargs)`` starts one with
  custom settings; all are closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from ._atlas import FakeAtlas

__all__ = ["FakeAtlasFactory", "fake_atlas", "fake_atlas_factory"]

#: Type of the ``fake_atlas_factory`` fixture: ``await factory(**FakeAtlas kwargs)``.
FakeAtlasFactory = Callable[..., Awaitable[FakeAtlas]]


@pytest_asyncio.fixture
async def fake_atlas() -> AsyncIterator[FakeAtlas]:
    """A started simulator with default settings."""
    async with FakeAtlas() as atlas:
        yield atlas


@pytest_asyncio.fixture
async def fake_atlas_factory() -> AsyncIterator[FakeAtlasFactory]:
    """Start simulators with custom settings; each is closed after the test."""
    started: list[FakeAtlas] = []

    async def factory(**kwargs: Any) -> FakeAtlas:
        atlas = FakeAtlas(**kwargs)
        await atlas.start()
        started.append(atlas)
        return atlas

    yield factory
    for atlas in reversed(started):
        await atlas.aclose()

"""Listings against servers that answer differently from the simulator.

Each server is a tiny aiohttp.web app on loopback, written for one test: a
server that caps its pages, one that repeats a key on every read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import aiokeys
from aiokeys import Client, DriftError, KeyStream

ORG = "ab" * 12
MEDIA_TYPE = "application/vnd.atlas.2025-03-12+json"

Pages = Callable[[int, int], tuple[list[int], int | None]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
REQUESTED = web.AppKey("requested", list[int])


def _key(n: int) -> dict[str, Any]:
    return {"apiKeyId": f"k{n:05d}", "name": f"key {n}", "status": "ACTIVE"}


async def _serve(aiohttp_server: ServerFactory, pages: Pages) -> TestServer:
    """Serve ``pages(page_num, page_size) -> (key numbers, totalCount)``; log pages."""
    requested: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        page_num = int(request.query["pageNum"])
        requested.append(page_num)
        numbers, total = pages(page_num, int(request.query["itemsPerPage"]))
        body: dict[str, Any] = {"links": [], "results": [_key(n) for n in numbers]}
        if total is not None:
            body["totalCount"] = total
        return web.json_response(body, content_type=MEDIA_TYPE)

    app = web.Application()
    app.router.add_get(f"/api/atlas/v2/orgs/{ORG}/aiModelApiKeys", handler)
    app[REQUESTED] = requested
    return await aiohttp_server(app)


def _client(server: TestServer) -> Client:
    return Client(
        auth=aiokeys.BearerToken("token"), base_url=str(server.make_url("/"))[:-1]
    )


def _requested(server: TestServer) -> list[int]:
    assert server.app is not None
    return server.app[REQUESTED]


def _capped(n_keys: int, cap: int, *, offsets_by_cap: bool) -> Pages:
    """A server answering at most ``cap`` keys a page, with a true totalCount.

    ``offsets_by_cap`` counts offsets in pages of ``cap`` (the rest of the
    list stays reachable); otherwise offsets use the size asked and the keys
    between ``cap`` and the page size are never served at that size.
    """

    def pages(page_num: int, page_size: int) -> tuple[list[int], int | None]:
        step = cap if offsets_by_cap else page_size
        first = (page_num - 1) * step
        return list(range(first, min(n_keys, first + min(cap, page_size)))), n_keys

    return pages


async def test_capped_pages_hiding_keys_raise_naming_the_cap(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 keys, pages of 500 capped at 100: 200 keys, then DriftError, never quiet."""
    server = await _serve(aiohttp_server, _capped(1000, 100, offsets_by_cap=False))
    got: list[str | None] = []

    async def collect(stream: KeyStream) -> None:
        async for key in stream:
            got.append(key.api_key_id)

    async with _client(server) as client:
        stream = client.org_keys(ORG, page_size=500)
        with pytest.raises(DriftError) as info:
            await collect(stream)
    message = str(info.value)
    assert "totalCount says 1000 but the list ended after 200 keys" in message
    assert "returned 100 items for pages of 500" in message
    assert "page_size=100" in message
    assert info.value.keys_yielded == 200 == len(set(got))
    assert stream.progress.repair_passes == 1
    assert any("totalCount said 1000" in note for note in stream.progress.drift)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("200 keys" in r.getMessage() for r in warnings)
    # The re-read stops where the first pass ended (page 3, empty after short).
    assert _requested(server).count(1) == _requested(server).count(3) == 2


@pytest.mark.parametrize("on_drift", ["warn", "raise"])
async def test_capped_pages_under_warn_and_raise(
    aiohttp_server: ServerFactory, on_drift: str, caplog: pytest.LogCaptureFixture
) -> None:
    """warn: the shortfall is recorded and logged; raise: DriftError at once."""
    server = await _serve(aiohttp_server, _capped(1000, 100, offsets_by_cap=False))
    async with _client(server) as client:
        stream = client.org_keys(ORG, page_size=500, on_drift=on_drift)  # type: ignore[arg-type]
        if on_drift == "raise":
            with pytest.raises(DriftError, match="page 1 short"):
                [key async for key in stream]
            return
        keys = [key async for key in stream]
    assert len(keys) == 200
    note = "totalCount said 1000, but the list ended at page 3 after 200 keys"
    assert note in stream.progress.drift
    assert note in [r.getMessage().split(": ", 1)[1] for r in caplog.records]


async def test_capped_pages_still_reachable_are_all_read(
    aiohttp_server: ServerFactory,
) -> None:
    """A cap with offsets by the cap: reading goes on past the expected end."""
    server = await _serve(aiohttp_server, _capped(1000, 100, offsets_by_cap=True))
    async with _client(server) as client:
        stream = client.org_keys(ORG, page_size=500)
        ids = [key.api_key_id async for key in stream]
    assert ids == [f"k{n:05d}" for n in range(1000)]
    assert stream.progress.drift_seen


async def test_a_key_repeated_on_every_read_costs_one_re_read(
    aiohttp_server: ServerFactory,
) -> None:
    """The same repeat on the re-read is steady: one re-read, no more."""

    def pages(page_num: int, page_size: int) -> tuple[list[int], int | None]:
        return {1: [1, 2, 1], 2: [3]}.get(page_num, []), 4

    server = await _serve(aiohttp_server, pages)
    async with _client(server) as client:
        stream = client.org_keys(ORG, page_size=3)
        ids = [key.api_key_id async for key in stream]
    assert ids == ["k00001", "k00002", "k00003"]
    assert stream.progress.repair_passes == 1
    assert sorted(_requested(server)) == [1, 1, 2, 2]
    assert stream.progress.drift == ("key k00001 seen twice",)

"""The contenders: aiokeys, the page-by-page walk, the unbounded gather, the ideal.

The walk and the gather are written the way people write them today on plain
aiohttp: ``await response.json()`` and dicts, no retries, no validation. They
therefore decode less than aiokeys does (no datetimes, no classes); the CPU-bound
scenario measures that difference on its own.

Every listing times itself from before its session (or client) exists to after
its last key, so connection setup is inside the measurement for everyone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp
import attrs

import aiokeys

__all__ = [
    "CONTENDERS",
    "Outcome",
    "Target",
    "aiokeys_listing",
    "aiokeys_many_orgs",
    "gather_listing",
    "ideal_seconds",
    "walk_listing",
]

_ACCEPT = "application/vnd.atlas.2025-03-12+json"


@attrs.frozen(kw_only=True)
class Target:
    """One listing to run: which simulator, which org(s), how."""

    url: str
    token: str = attrs.field(repr=False)
    org_ids: tuple[str, ...]
    page_size: int
    concurrency: int

    @property
    def org_id(self) -> str:
        """The first org: single-org scenarios seed exactly one."""
        return self.org_ids[0]


@attrs.frozen(kw_only=True)
class Outcome:
    """What one run of a contender saw."""

    seconds: float
    first_key: float
    keys: int


class _Clock:
    """Counts keys and notes when the first one arrived."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.keys = 0

    def saw(self, count: int = 1) -> None:
        if self.first is None and count:
            self.first = time.perf_counter() - self.start
        self.keys += count

    def outcome(self) -> Outcome:
        elapsed = time.perf_counter() - self.start
        first = elapsed if self.first is None else self.first
        return Outcome(seconds=elapsed, first_key=first, keys=self.keys)


def ideal_seconds(*, latency: float, pages: int, concurrency: int) -> float:
    """The floor for a bounded concurrent listing: page 1, then full rounds.

    ``latency x (1 + ceil((pages - 1) / concurrency))``: the first page must come
    back before the page count is known; the rest go ``concurrency`` at a time.
    """
    return latency * (1 + math.ceil(max(pages - 1, 0) / concurrency))


def _client(target: Target) -> aiokeys.Client:
    return aiokeys.Client(
        auth=aiokeys.BearerToken(target.token),
        base_url=target.url,
        concurrency=target.concurrency,
    )


async def aiokeys_listing(target: Target, *, ordered: bool) -> Outcome:
    """Stream one org's keys through aiokeys, counting them."""
    clock = _Clock()
    async with _client(target) as client:
        stream = client.org_keys(
            target.org_id, page_size=target.page_size, ordered=ordered
        )
        async with stream:
            async for _key in stream:
                clock.saw()
    return clock.outcome()


async def aiokeys_many_orgs(target: Target, *, bulk: bool) -> Outcome:
    """List every org of ``target``: through ``keys_for_orgs`` or one stream per org.

    With ``bulk=False`` the orgs' streams run side by side in a task group on one
    client, sharing its concurrency budget.
    """
    clock = _Clock()
    async with _client(target) as client:
        if bulk:
            async for _pair in client.keys_for_orgs(
                list(target.org_ids), page_size=target.page_size
            ):
                clock.saw()
        else:
            async with asyncio.TaskGroup() as group:
                for org_id in target.org_ids:
                    group.create_task(_drain_org(client, org_id, target, clock))
    return clock.outcome()


async def _drain_org(
    client: aiokeys.Client, org_id: str, target: Target, clock: _Clock
) -> None:
    async with client.org_keys(org_id, page_size=target.page_size) as stream:
        async for _key in stream:
            clock.saw()


def _session(target: Target, *, limit: int = 100) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {target.token}", "Accept": _ACCEPT}
    connector = aiohttp.TCPConnector(limit=limit)
    return aiohttp.ClientSession(headers=headers, connector=connector)


async def _get_page(
    session: aiohttp.ClientSession, target: Target, page_num: int
) -> dict[str, Any]:
    url = f"{target.url}/api/atlas/v2/orgs/{target.org_id}/aiModelApiKeys"
    params = {"pageNum": str(page_num), "itemsPerPage": str(target.page_size)}
    async with session.get(url, params=params) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


def _has_next(body: dict[str, Any]) -> bool:
    return any(link.get("rel") == "next" for link in body.get("links", ()))


async def walk_listing(target: Target) -> Outcome:
    """Page 1, then page 2, ... until no ``next`` link: how the official tools page."""
    clock = _Clock()
    async with _session(target) as session:
        page_num = 1
        while True:
            body = await _get_page(session, target, page_num)
            for _key in body["results"]:
                clock.saw()
            if not _has_next(body):
                break
            page_num += 1
    return clock.outcome()


async def gather_listing(target: Target) -> Outcome:
    """Page 1 for ``totalCount``, then every other page at once, all held in memory.

    The connector limit is lifted (aiohttp's default caps a session at 100
    connections), so this really is unbounded.
    """
    clock = _Clock()
    async with _session(target, limit=0) as session:
        first = await _get_page(session, target, 1)
        pages = math.ceil(first["totalCount"] / target.page_size)
        rest = await asyncio.gather(
            *(_get_page(session, target, num) for num in range(2, pages + 1))
        )
        keys = [key for body in (first, *rest) for key in body["results"]]
        clock.saw(len(keys))
    return clock.outcome()


async def _aiokeys_ordered(target: Target) -> Outcome:
    return await aiokeys_listing(target, ordered=True)


async def _aiokeys_unordered(target: Target) -> Outcome:
    return await aiokeys_listing(target, ordered=False)


Contender = Callable[[Target], Coroutine[Any, Any, Outcome]]

#: The single-org contenders by the name the tables use, in table order.
CONTENDERS: Sequence[tuple[str, Contender]] = (
    ("aiokeys ordered", _aiokeys_ordered),
    ("aiokeys unordered", _aiokeys_unordered),
    ("walk (aiohttp)", walk_listing),
    ("gather (unbounded)", gather_listing),
)

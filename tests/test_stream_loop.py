"""The event loop keeps turning while a listing decodes and delivers keys."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

from aiokeys import ApiKey, Page
from aiokeys._decode import YIELD_EVERY, decode_page_yielding
from aiokeys._models import make_converter
from aiokeys._stream import KeyStream, ListingSpec

PAGE_SIZE = 100
N_KEYS = 1_000


def _raw_key(i: int) -> dict[str, Any]:
    return {
        "apiKeyId": f"k{i:023d}",
        "name": f"key {i}",
        "createdAt": "2026-01-15T16:47:49.855000+00:00",
        "lastUsedAt": None,
    }


class Ticker:
    """A task that counts the turns the event loop gives it."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_page_decoding_gives_the_loop_turns() -> None:
    """A 500-key page is decoded in slices, with a loop turn between slices."""
    raw = [_raw_key(i) for i in range(500)]
    body = {"results": raw, "totalCount": 500}
    async with Ticker() as ticker:
        before = ticker.turns
        page = await decode_page_yielding(
            make_converter(), body, page_num=1, page_size=500
        )
        turns = ticker.turns - before
    assert len(page.items) == 500
    assert page.items[499].api_key_id == raw[499]["apiKeyId"]
    assert turns >= 500 // YIELD_EVERY - 1


def _instant_fetch() -> Callable[..., Coroutine[Any, Any, Page]]:
    """Pages answered without ever suspending, so they pile up in the buffer."""
    keys = [ApiKey(api_key_id=f"k{i:023d}") for i in range(N_KEYS)]

    async def fetch(page_num: int, deadline: float | None, on_retry: Any) -> Page:
        start = (page_num - 1) * PAGE_SIZE
        return Page(
            items=tuple(keys[start : start + PAGE_SIZE]),
            total_count=N_KEYS,
            page_num=page_num,
            page_size=PAGE_SIZE,
        )

    return fetch


def _spawn(coro: Coroutine[Any, Any, Page], name: str) -> asyncio.Task[Page]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def test_consumer_of_buffered_pages_yields_once_per_page() -> None:
    """Racing through buffered pages still lets other tasks run between pages."""
    spec = ListingSpec(
        label="memory",
        page_size=PAGE_SIZE,
        max_items=None,
        ordered=True,
        on_drift="warn",
        start_page=1,
        deadline=None,
        concurrency=10,
        window=10,
    )
    turns_at_page: list[int] = []
    async with KeyStream(spec=spec, fetch=_instant_fetch(), spawn=_spawn) as stream:
        first = await stream.__anext__()
        await asyncio.sleep(0.01)  # the window fills: every page is buffered
        async with Ticker() as ticker:
            count = 1
            async for _ in stream:  # no await in the body
                count += 1
                if count % PAGE_SIZE == 1:
                    turns_at_page.append(ticker.turns)
    assert first.api_key_id == f"k{0:023d}"
    assert count == N_KEYS
    assert len(turns_at_page) == N_KEYS // PAGE_SIZE - 1
    assert all(b > a for a, b in itertools.pairwise(turns_at_page))

"""Early exit, cancellation and back-pressure: nothing left running, nothing extra sent."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

import aiokeys
from aiokeys import Client, ClientClosedError, KeyStream
from aiokeys.testing import FakeAtlas


def _client(atlas: FakeAtlas, **kwargs: Any) -> Client:
    return Client(
        auth=aiokeys.BearerToken(atlas.add_bearer_token()), base_url=atlas.url, **kwargs
    )


def _others() -> set[asyncio.Task[Any]]:
    """The client's tasks still alive (the in-process simulator has its own)."""
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("aiokeys")}


async def _quiet_for(atlas: FakeAtlas, seconds: float) -> None:
    """Assert that no request arrives from now on, for ``seconds``.

    The simulator shares our event loop, so a request written just before a
    close is read a moment later: a short grace comes first.
    """
    await asyncio.sleep(0.05)
    now = time.monotonic()
    await asyncio.sleep(seconds)
    assert all(r.time < now for r in atlas.requests)


async def _answered(atlas: FakeAtlas, count: int) -> None:
    """Wait (up to 5 s) until the simulator has answered ``count`` requests."""
    async with asyncio.timeout(5):
        while len(atlas.requests) < count:
            await asyncio.sleep(0.01)


async def _all_pages_work(client: Client, org: str, pages: int) -> None:
    """Fetch ``pages`` pages at once: hangs if a connection leaked."""
    await asyncio.wait_for(
        asyncio.gather(
            *(
                client.org_keys_page(org, page_num=n, page_size=10)
                for n in range(1, pages + 1)
            )
        ),
        timeout=5,
    )


async def test_leaving_async_with_cancels_in_flight(fake_atlas: FakeAtlas) -> None:
    """Leaving early: quick, no task left, no further request, no leaked connection."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 2000, seed=1)
    connector = aiohttp.TCPConnector(limit=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = _client(fake_atlas, session=session, concurrency=4)
        async with client.org_keys(org, page_size=100) as keys:
            async for _ in keys:
                fake_atlas.latency = 0.5  # pages 2.. are now slow, in flight
                await asyncio.sleep(0.05)
                started = time.monotonic()
                break
        assert time.monotonic() - started < 1.0
        assert _others() == set()
        await _quiet_for(fake_atlas, 0.6)
        fake_atlas.latency = 0.0
        await _all_pages_work(client, org, 4)
        await client.aclose()
        assert not session.closed  # a given session is never closed


async def test_cancelling_the_consumer_cancels_requests(fake_atlas: FakeAtlas) -> None:
    """Cancelling the consuming task (no async with) stops everything."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 2000, seed=1)
    got_one = asyncio.Event()

    async def consume(stream: KeyStream) -> None:
        async for _ in stream:
            fake_atlas.latency = 0.5
            got_one.set()

    async with _client(fake_atlas, concurrency=4) as client:
        stream = client.org_keys(org, page_size=100)
        task = asyncio.create_task(consume(stream))
        await got_one.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        started = time.monotonic()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert time.monotonic() - started < 1.0
        assert _others() == set()
        await _quiet_for(fake_atlas, 0.6)
        assert [k async for k in stream] == []


async def test_aclose_twice_and_after_exhaustion(fake_atlas: FakeAtlas) -> None:
    """aclose is idempotent; an exhausted stream stays exhausted and sends nothing."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 30, seed=1)
    async with _client(fake_atlas) as client:
        stream = client.org_keys(org, page_size=10)
        assert len([k async for k in stream]) == 30
        sent = len(fake_atlas.requests)
        await stream.aclose()
        await stream.aclose()
        assert [k async for k in stream] == []
        assert len(fake_atlas.requests) == sent


async def test_unused_stream_sends_nothing(fake_atlas: FakeAtlas) -> None:
    """Creating a stream sends no request; closing the client is clean."""
    org = fake_atlas.add_org()
    async with _client(fake_atlas) as client:
        client.org_keys(org)
    assert fake_atlas.requests == []


async def test_bare_break_fetches_the_window_and_no_more(fake_atlas: FakeAtlas) -> None:
    """A bare break: the window fills, then nothing; closing the client reaps."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 5000, seed=1)
    fake_atlas.latency = 0.05
    client = _client(fake_atlas, concurrency=2, window=4)
    stream = client.org_keys(org, page_size=100)
    async for _ in stream:
        break
    assert _others()  # pages of the window are still in flight
    await _answered(fake_atlas, 5)
    await _quiet_for(fake_atlas, 0.3)
    pages = sorted(r.page_num for r in fake_atlas.requests if r.page_num)
    assert pages == [1, 2, 3, 4, 5]  # page 1, then the window of 4, no more
    await client.aclose()
    assert _others() == set()
    assert stream.progress.keys_yielded == 1


async def test_client_close_reaps_abandoned_stream(fake_atlas: FakeAtlas) -> None:
    """A stream dropped mid-flight is cancelled and awaited when the client closes."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 3000, seed=1)
    client = _client(fake_atlas, concurrency=4)

    async def first_key() -> None:
        stream = client.org_keys(org, page_size=100)
        await stream.__anext__()
        fake_atlas.latency = 2.0

    await first_key()  # the stream object is now unreferenced
    await asyncio.sleep(0.05)
    assert _others()
    started = time.monotonic()
    await client.aclose()
    assert time.monotonic() - started < 1.0
    assert _others() == set()


async def test_slow_consumer_bounds_pages_ahead(fake_atlas: FakeAtlas) -> None:
    """A consumer that stops: exactly `window` pages fetched beyond its own."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 5000, seed=1)
    client = _client(fake_atlas, concurrency=4, window=6)
    async with client, client.org_keys(org, page_size=100) as keys:
        seen = 0
        async for _ in keys:
            seen += 1
            if seen == 1:
                await _answered(fake_atlas, 7)
                await _quiet_for(fake_atlas, 0.2)
                pages = sorted(r.page_num for r in fake_atlas.requests if r.page_num)
                assert pages == list(range(1, 8))  # page 1 + window of 6
                assert keys.progress.pages_done == 7
            if seen == 150:  # now consuming page 2: exactly one more page
                await _answered(fake_atlas, 8)
                await _quiet_for(fake_atlas, 0.2)
                assert len(fake_atlas.requests) == 8
                break


async def test_memory_bounded_by_window(fake_atlas: FakeAtlas) -> None:
    """Held pages never exceed the window while the consumer dawdles page by page."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 3000, seed=1)
    client = _client(fake_atlas, concurrency=8, window=3)
    async with client, client.org_keys(org, page_size=100) as keys:
        n = 0
        async for _ in keys:
            n += 1
            if n % 100 == 1:
                await asyncio.sleep(0.01)
                requested = len(fake_atlas.requests)
                consumed_page = (n - 1) // 100 + 1
                assert requested <= consumed_page + 3
    assert n == 3000


async def test_client_close_ends_a_consumer_in_another_task(
    fake_atlas: FakeAtlas,
) -> None:
    """Closing the client under a waiting consumer raises ClientClosedError there."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 1000, seed=1)
    client = _client(fake_atlas, concurrency=2)
    got: list[object] = []
    first = asyncio.Event()

    async def consume() -> None:
        async for key in client.org_keys(org, page_size=100):
            got.append(key)
            fake_atlas.latency = 2.0
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await asyncio.wait_for(task, timeout=1.0)  # raises, does not hang
    assert caught.value.keys_yielded == 100
    assert len(got) == 100
    assert _others() == set()


async def test_a_second_task_iterating_the_same_stream_is_refused(
    fake_atlas: FakeAtlas,
) -> None:
    """Two consumers of one stream would each lose keys: the second one is refused."""
    org = fake_atlas.add_org()
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 30, seed=1)]
    fake_atlas.latency = 0.2
    async with (
        _client(fake_atlas) as client,
        client.org_keys(org, page_size=10) as stream,
    ):
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)  # the first task now waits for page 1
        assert not first.done()
        with pytest.raises(aiokeys.AiokeysError, match="already being iterated"):
            await anext(stream)
        fake_atlas.latency = 0.0
        ids = [(await first).api_key_id] + [k.api_key_id async for k in stream]
    assert ids == seeded

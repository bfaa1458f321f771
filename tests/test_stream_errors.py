"""A listing that gives up: where it stopped, resuming, deadlines, retries counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import aiokeys
from aiokeys import (
    ApiKey,
    Client,
    KeyStream,
    NotFoundError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from aiokeys.testing import FakeAtlas, Fault

FAST_RETRY = RetryPolicy(max_tries=2, base=0.0, cap=0.0, max_time=5.0)


def _client(atlas: FakeAtlas, **kwargs: Any) -> Client:
    kwargs.setdefault("retry", FAST_RETRY)
    return Client(
        auth=aiokeys.BearerToken(atlas.add_bearer_token()), base_url=atlas.url, **kwargs
    )


async def _collect(stream: KeyStream, into: list[ApiKey]) -> None:
    async with stream:
        async for key in stream:
            into.append(key)


def _tasks_left() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("aiokeys")}


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_give_up_names_page_and_resume_is_exact(
    fake_atlas: FakeAtlas, concurrency: int
) -> None:
    """Page 4 keeps failing: the error says page 4 and 300 keys; resuming completes."""
    org = fake_atlas.add_org()
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 1000, seed=1)]
    fake_atlas.add_fault(Fault(kind="status", status=500, page_num=4, times=2))
    got: list[ApiKey] = []
    async with _client(fake_atlas, concurrency=concurrency) as client:
        stream = client.org_keys(org, page_size=100)
        with pytest.raises(ServerError) as info:
            await _collect(stream, got)
        error = info.value
        assert error.page_num == 4
        assert error.keys_yielded == 300 == len(got)
        assert stream.progress.retries == 1
        assert _tasks_left() == set()
        rest: list[ApiKey] = []
        await _collect(
            client.org_keys(org, page_size=100, start_page=error.page_num), rest
        )
    ids = [k.api_key_id for k in got + rest]
    assert ids == seeded
    resumed = [
        r.page_num for r in fake_atlas.requests if r.page_num and r.status == 200
    ]
    assert resumed.count(1) == 1  # the resumed listing starts at page 4


async def test_retried_page_completes_in_order(fake_atlas: FakeAtlas) -> None:
    """A 500 once on page 2: retried, counted, listing complete and ordered."""
    org = fake_atlas.add_org()
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 500, seed=2)]
    fake_atlas.add_fault(Fault(kind="status", status=503, page_num=2, times=1))
    got: list[ApiKey] = []
    async with _client(fake_atlas, concurrency=3) as client:
        stream = client.org_keys(org, page_size=100)
        await _collect(stream, got)
    assert [k.api_key_id for k in got] == seeded
    assert stream.progress.retries == 1


async def test_unordered_error_waits_for_lower_pages(fake_atlas: FakeAtlas) -> None:
    """ordered=False: the error still names the first page not delivered."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 1000, seed=3)
    fake_atlas.add_fault(Fault(kind="status", status=500, page_num=3, times=2))
    got: list[ApiKey] = []
    async with _client(fake_atlas, concurrency=4) as client:
        with pytest.raises(ServerError) as info:
            await _collect(client.org_keys(org, page_size=100, ordered=False), got)
    assert info.value.page_num == 3
    assert info.value.keys_yielded == len(got) >= 200
    pages_given = {k.api_key_id for k in got}
    assert {k["apiKeyId"] for k in fake_atlas.keys(org)[:200]} <= pages_given


async def test_not_found_costs_one_request(fake_atlas: FakeAtlas) -> None:
    """An unknown org: NotFoundError on page 1, one request."""
    async with _client(fake_atlas) as client:
        with pytest.raises(NotFoundError) as info:
            await _collect(client.org_keys("0" * 24), [])
    assert info.value.page_num == 1
    assert info.value.keys_yielded == 0
    assert len(fake_atlas.requests) == 1


async def test_deadline_bounds_the_listing(fake_atlas: FakeAtlas) -> None:
    """Slow pages and a 0.3 s deadline: RequestTimeoutError well within a second."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 1000, seed=4)
    got: list[ApiKey] = []
    async with _client(fake_atlas, concurrency=2) as client:
        stream = client.org_keys(org, page_size=100, deadline=0.3)
        fake_atlas.add_fault(Fault(kind="latency", delay=0.2, path="aiModelApiKeys"))
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await _collect(stream, got)
        assert time.monotonic() - started < 1.0
        assert _tasks_left() == set()
    error = info.value
    assert error.page_num is not None
    assert error.keys_yielded == len(got)
    assert error.page_num == len(got) // 100 + 1


async def test_deadline_while_the_consumer_waits(fake_atlas: FakeAtlas) -> None:
    """A deadline fires even while the stream is waiting for a page."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 300, seed=4)
    fake_atlas.add_fault(Fault(kind="latency", delay=3.0, page_num=2))
    async with _client(fake_atlas, retry=RetryPolicy(max_tries=1)) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await _collect(client.org_keys(org, page_size=100, deadline=0.25), [])
        assert time.monotonic() - started < 1.5
    assert info.value.page_num == 2
    assert info.value.keys_yielded == 100


async def test_transport_fault_retried_then_gives_up(fake_atlas: FakeAtlas) -> None:
    """Resets on page 2 until the policy gives up: TransportError naming page 2."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 300, seed=5)
    fake_atlas.add_fault(Fault(kind="reset", page_num=2))
    async with _client(fake_atlas, concurrency=1) as client:
        stream = client.org_keys(org, page_size=100)
        with pytest.raises(TransportError) as info:
            await _collect(stream, [])
    assert info.value.page_num == 2
    assert info.value.keys_yielded == 100
    assert stream.progress.retries == 1


async def test_give_up_in_a_re_read_points_past_the_first_pass(
    fake_atlas: FakeAtlas,
) -> None:
    """A re-read failing at page 3: page_num is past the first pass, resuming repeats nothing."""
    org = fake_atlas.add_org()
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 35, seed=1)]
    fake_atlas.after_page(org, page_num=1, remove=seeded[:3])  # 3 keys slide back
    # Page 3 answers the first pass, then fails every re-read attempt.
    fake_atlas.add_fault(Fault(kind="status", status=503, page_num=3, attempts={2, 3}))
    got: list[ApiKey] = []
    async with _client(fake_atlas) as client:
        stream = client.org_keys(org, page_size=10)
        with pytest.raises(ServerError, match=r"\(page 3\)") as info:
            await _collect(stream, got)
        assert stream.progress.repair_passes == 1
        # The first pass ended at page 4 (32 keys left): every key it found
        # was delivered, and the re-read's page 1 gave the 3 that slid back.
        assert info.value.page_num == 5
        assert info.value.keys_yielded == len(got) == 35
        fake_atlas.clear_faults()
        await _collect(client.org_keys(org, page_size=10, start_page=5), got)
    ids = [k.api_key_id for k in got]
    assert len(ids) == len(set(ids)) == 35


@pytest.mark.parametrize(("taken", "page_num"), [(3, 1), (10, 2)])
async def test_deadline_bounds_a_slow_consumer(
    fake_atlas: FakeAtlas, taken: int, page_num: int
) -> None:
    """Pages all in hand, the reader slow: past the deadline __anext__ raises."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 40, seed=4)
    async with _client(fake_atlas) as client:
        stream = client.org_keys(org, page_size=10, deadline=0.1)
        got = [await anext(stream) for _ in range(taken)]
        await asyncio.sleep(0.15)
        with pytest.raises(RequestTimeoutError) as info:
            await anext(stream)
        assert info.value.deadline_exceeded
        assert info.value.keys_yielded == len(got) == taken
        # Mid-page the page being read is named (its first keys were handed out).
        assert info.value.page_num == page_num
        assert [k async for k in stream] == []
        assert _tasks_left() == set()

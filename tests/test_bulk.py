"""keys_for_orgs: many orgs under one budget, each in order, errors per org."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import aiohttp
import attrs
import pytest

from aiokeys import (
    AiokeysError,
    ApiKey,
    AuthenticationError,
    BearerToken,
    Client,
    ClientClosedError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
)
from aiokeys._bulk import BulkKeyStream, OrgFailure
from aiokeys.testing import FakeAtlas, Fault

SIZES = (130, 0, 75)
UNKNOWN_ORG = "ffffffffffffffffffffffff"


@attrs.frozen
class World:
    atlas: FakeAtlas
    token: str
    orgs: list[str]
    expected: dict[str, list[str]]  # org id -> key ids in server order


@pytest.fixture
async def world(fake_atlas: FakeAtlas) -> World:
    token = fake_atlas.add_bearer_token()
    orgs = [fake_atlas.add_org() for _ in SIZES]
    expected = {
        org: [k["apiKeyId"] for k in fake_atlas.seed_keys(org, n, groups=2, seed=i)]
        for i, (org, n) in enumerate(zip(orgs, SIZES, strict=True))
    }
    return World(atlas=fake_atlas, token=token, orgs=orgs, expected=expected)


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    async with Client(
        auth=BearerToken(world.token), base_url=world.atlas.url, concurrency=3
    ) as c:
        yield c


async def _collect(stream: BulkKeyStream) -> dict[str, list[str]]:
    got: dict[str, list[str]] = defaultdict(list)
    async with stream:
        async for org_id, key in stream:
            assert isinstance(key, ApiKey)
            assert key.api_key_id is not None
            got[org_id].append(key.api_key_id)
    return dict(got)


def _aiokeys_tasks() -> set[asyncio.Task[object]]:
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith("aiokeys")
    }


async def test_every_org_complete_and_in_order(world: World, client: Client) -> None:
    """All keys of all orgs, each org's in server order, progress adds up."""
    stream = client.keys_for_orgs(world.orgs, page_size=20)
    got = await _collect(stream)

    assert got == {org: ids for org, ids in world.expected.items() if ids}
    p = stream.progress
    assert (p.orgs_total, p.orgs_started, p.orgs_done, p.orgs_failed) == (3, 3, 3, 0)
    assert p.keys_yielded == sum(SIZES)
    # 130 keys: 7 pages; 0 keys: 1 page; 75 keys: 4 pages.
    assert p.pages_done == 12
    assert p.pages_expected == 12
    assert stream.errors == ()


@pytest.mark.parametrize("on_error", ["raise", "skip", "collect"])
async def test_denied_org_under_each_on_error(
    world: World, client: Client, on_error: str
) -> None:
    """A 403 ends the export (raise) or leaves only that org out (skip, collect)."""
    denied = world.orgs[2]
    world.atlas.deny(world.token, denied)
    stream = client.keys_for_orgs(world.orgs, page_size=50, on_error=on_error)  # type: ignore[arg-type]

    if on_error == "raise":
        with pytest.raises(PermissionDeniedError) as info:
            await _collect(stream)
        assert info.value.status == 403
        assert not _aiokeys_tasks()
        return

    got = await _collect(stream)
    assert got == {world.orgs[0]: world.expected[world.orgs[0]]}
    assert stream.progress.orgs_failed == 1
    assert stream.progress.orgs_done == 3
    if on_error == "skip":
        assert stream.errors == ()
    else:
        [failure] = stream.errors
        assert isinstance(failure, OrgFailure)
        assert failure.org_id == denied
        assert isinstance(failure.error, PermissionDeniedError)


async def test_unknown_org_is_a_404_left_out(world: World, client: Client) -> None:
    """An org the server does not know is collected as NotFoundError."""
    stream = client.keys_for_orgs([UNKNOWN_ORG, world.orgs[2]], on_error="collect")
    got = await _collect(stream)
    assert got == {world.orgs[2]: world.expected[world.orgs[2]]}
    assert [f.org_id for f in stream.errors] == [UNKNOWN_ORG]
    assert isinstance(stream.errors[0].error, NotFoundError)


async def test_authentication_error_ends_the_export_even_when_skipping(
    world: World,
) -> None:
    """401 is about the credentials, not one org: never skipped."""
    async with Client(auth=BearerToken("wrong"), base_url=world.atlas.url) as bad:
        stream = bad.keys_for_orgs(world.orgs, on_error="skip")
        with pytest.raises(AuthenticationError):
            await _collect(stream)
    assert not _aiokeys_tasks()


async def test_server_error_ends_the_export_and_stops_the_others(
    world: World,
) -> None:
    """A 500 after the retries ran out ends everything, nothing left running."""
    world.atlas.add_fault(Fault(kind="status", status=500, org_id=world.orgs[2]))
    async with Client(
        auth=BearerToken(world.token),
        base_url=world.atlas.url,
        retry=RetryPolicy(max_tries=1),
    ) as c:
        with pytest.raises(ServerError):
            await _collect(
                c.keys_for_orgs(world.orgs, page_size=10, on_error="collect")
            )
        assert not _aiokeys_tasks()


@pytest.mark.parametrize(
    "bad",
    [
        ["0123456789abcdef01234567", "not-an-id"],
        ["0123456789ABCDEF01234567"],
        "0123456789abcdef01234567",
        [123],
        None,
        42,
        [["0123456789abcdef01234567"]],
    ],
)
async def test_every_id_checked_before_any_request(
    world: World, client: Client, bad: object
) -> None:
    """One bad id (or a bare string) fails the call itself; nothing is sent."""
    world.atlas.clear_requests()
    with pytest.raises(InvalidArgumentError):
        client.keys_for_orgs(bad)  # type: ignore[arg-type]
    assert world.atlas.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"page_size": 0},
        {"page_size": 501},
        {"on_error": "ignore"},
        {"on_error": ["skip"]},
    ],
)
async def test_options_checked_before_any_request(
    world: World, client: Client, kwargs: dict[str, object]
) -> None:
    """page_size and on_error are checked when the stream is built."""
    with pytest.raises(InvalidArgumentError):
        client.keys_for_orgs(world.orgs, **kwargs)  # type: ignore[arg-type]
    assert world.atlas.requests == []


async def test_no_orgs_and_repeated_orgs(world: World, client: Client) -> None:
    """No ids: nothing, no request. A repeated id is listed once."""
    assert await _collect(client.keys_for_orgs([])) == {}
    assert world.atlas.requests == []

    org = world.orgs[0]
    got = await _collect(client.keys_for_orgs([org, org, org], page_size=100))
    assert got == {org: world.expected[org]}
    assert len(world.atlas.requests) == 2


async def test_one_budget_across_orgs(fake_atlas: FakeAtlas) -> None:
    """Requests in flight over all orgs never exceed the client's concurrency."""
    token = fake_atlas.add_bearer_token()
    orgs = [fake_atlas.add_org() for _ in range(6)]
    for org in orgs:
        fake_atlas.seed_keys(org, 40, seed=1)
    in_flight = SimpleNamespace(now=0, most=0)

    async def started(*_: object) -> None:
        in_flight.now += 1
        in_flight.most = max(in_flight.most, in_flight.now)

    async def ended(*_: object) -> None:
        in_flight.now -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(ended)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        Client(
            auth=BearerToken(token),
            base_url=fake_atlas.url,
            concurrency=2,
            session=session,
        ) as c,
    ):
        got = await _collect(c.keys_for_orgs(orgs, page_size=10))

    assert sum(len(ids) for ids in got.values()) == 240
    assert in_flight.most == 2


async def test_break_inside_async_with_leaves_nothing_running(
    world: World, client: Client
) -> None:
    """Leaving the block cancels every worker and listing; no request follows."""
    async with client.keys_for_orgs(world.orgs, page_size=5) as stream:
        async for _ in stream:
            break
    assert not _aiokeys_tasks()
    sent = len(world.atlas.requests)
    await asyncio.sleep(0.05)
    assert len(world.atlas.requests) == sent
    assert [pair async for pair in stream] == []


async def test_cancelling_the_consumer_leaves_nothing_running(
    world: World, client: Client
) -> None:
    """A cancelled consumer inside async with leaves no task behind."""
    first = asyncio.Event()

    async def consume() -> None:
        async with client.keys_for_orgs(world.orgs, page_size=5) as stream:
            async for _ in stream:
                first.set()
                await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _aiokeys_tasks()


async def test_bare_break_is_cleaned_up_when_the_client_closes(world: World) -> None:
    """Without async with, closing the client stops the workers."""
    async with Client(auth=BearerToken(world.token), base_url=world.atlas.url) as c:
        stream = c.keys_for_orgs(world.orgs, page_size=5)
        async for _ in stream:
            break
        assert _aiokeys_tasks()
    assert not _aiokeys_tasks()


async def test_progress_moves_and_counts_retries(world: World) -> None:
    """Mid-export the totals move; a retried page shows in retries."""
    world.atlas.add_fault(
        Fault(kind="status", status=503, org_id=world.orgs[2], page_num=2, times=1)
    )
    retry = RetryPolicy(max_tries=3, base=0.0, cap=0.0, jitter=False)
    async with Client(
        auth=BearerToken(world.token), base_url=world.atlas.url, retry=retry
    ) as c:
        stream = c.keys_for_orgs(world.orgs, page_size=25, org_concurrency=1)
        async with stream:
            first = await anext(stream)
            early = stream.progress
            rest = [pair async for pair in stream]

    assert first[0] == world.orgs[0]
    assert early.keys_yielded == 1
    assert early.orgs_started == 1
    assert early.orgs_done == 0
    assert 1 <= early.pages_done <= early.pages_expected
    assert len(rest) + 1 == sum(SIZES)
    final = stream.progress
    assert final.retries == 1
    assert final.orgs_done == 3
    # One worker: the orgs come out one after another, in the order given.
    orgs = [first[0]] + [org for org, _ in rest]
    assert [o for i, o in enumerate(orgs) if i == 0 or orgs[i - 1] != o] == [
        world.orgs[0],
        world.orgs[2],
    ]


@pytest.mark.parametrize("pause", [0.0, 0.01])
async def test_closing_the_client_under_a_consumer_raises(
    world: World, pause: float
) -> None:
    """A consumer in another task learns the export was cut off; it never hangs.

    With a pause per key the queue is full when the client closes: the
    workers are then waiting on it, not on their listings.
    """
    started = asyncio.Event()
    c = Client(auth=BearerToken(world.token), base_url=world.atlas.url)

    async def consume() -> int:
        n = 0
        async with c.keys_for_orgs(world.orgs, page_size=5) as stream:
            async for _ in stream:
                n += 1
                started.set()
                await asyncio.sleep(pause)
        return n

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(pause * 5)
    await c.aclose()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(task, 5)
    assert not _aiokeys_tasks()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 5 s) until ``condition()`` holds on two checks in a row."""
    async with asyncio.timeout(5):
        while True:
            if condition():
                await asyncio.sleep(0.02)
                if condition():
                    return
            await asyncio.sleep(0.01)


def _page_tasks() -> set[asyncio.Task[object]]:
    return {t for t in _aiokeys_tasks() if " page " in t.get_name()}


async def test_closing_while_a_worker_waits_on_its_listing_and_the_queue_is_full(
    fake_atlas: FakeAtlas,
) -> None:
    """The interleaving that once hung the consumer, set up on purpose.

    One org's keys fill the queue, so its worker waits on the queue; the other
    org's first page is slow, so its worker waits inside its listing. Closing
    the client hands that worker ClientClosedError from its listing, and then
    cancels it: the end must still reach the consumer, after the queued pairs.
    """
    token = fake_atlas.add_bearer_token()
    busy, slow = fake_atlas.add_org(), fake_atlas.add_org()
    fake_atlas.seed_keys(busy, 100, seed=1)
    fake_atlas.seed_keys(slow, 5, seed=2)
    fake_atlas.add_fault(Fault(kind="latency", delay=30.0, org_id=slow))
    c = Client(auth=BearerToken(token), base_url=fake_atlas.url)
    stream = c.keys_for_orgs([busy, slow], page_size=5)

    first = await anext(stream)
    await _until(lambda: stream._queue.full() and stream.progress.orgs_started == 2)
    await c.aclose()
    rest: list[tuple[str, ApiKey]] = []

    async def drain() -> None:
        async for pair in stream:
            rest.append(pair)

    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(drain(), 5)

    assert first[0] == busy
    assert 1 <= len(rest) <= 10  # the queue holds 2 x page_size places
    assert {org for org, _ in rest} == {busy}
    assert not _aiokeys_tasks()


async def test_a_bare_break_stops_fetching_within_the_documented_bound(
    fake_atlas: FakeAtlas,
) -> None:
    """After a bare break: each worker's window plus the queue's 2 pages, no more.

    4 orgs of 50 pages each; a walk through the orgs would send about 200
    requests after the break. Closing the client then leaves no task.
    """
    fake_atlas.latency = 0.001
    token = fake_atlas.add_bearer_token()
    orgs = [fake_atlas.add_org() for _ in range(4)]
    for n, org in enumerate(orgs):
        fake_atlas.seed_keys(org, 1000, seed=n)
    async with Client(
        auth=BearerToken(token), base_url=fake_atlas.url, concurrency=4
    ) as c:
        async for _ in c.keys_for_orgs(orgs, page_size=20):
            break
        at_break = len(fake_atlas.requests)
        await _until(lambda: not _page_tasks())
        after = len(fake_atlas.requests) - at_break

        assert c.window == 8
        assert 4 * 8 <= after <= 4 * (8 + 1) + 2
    assert not _aiokeys_tasks()


async def test_a_bare_break_does_not_walk_orgs_without_keys(
    fake_atlas: FakeAtlas,
) -> None:
    """Every org started takes a place in the queue: empty orgs stop with it.

    One worker, a queue of 10 places (page size 5): after the break it may
    start at most 10 more orgs, not all 30 empty ones.
    """
    token = fake_atlas.add_bearer_token()
    first = fake_atlas.add_org()
    fake_atlas.seed_keys(first, 3, seed=1)
    empty = [fake_atlas.add_org() for _ in range(30)]
    async with Client(
        auth=BearerToken(token), base_url=fake_atlas.url, concurrency=1
    ) as c:
        async for _ in c.keys_for_orgs([first, *empty], page_size=5):
            break
        await _until(lambda: not _page_tasks())
        asked = {r.path for r in fake_atlas.requests}
        assert len([org for org in empty if any(org in p for p in asked)]) <= 10
    assert not _aiokeys_tasks()


async def test_a_second_task_iterating_the_same_export_is_refused(
    world: World, client: Client
) -> None:
    """Two consumers of one export would each lose pairs: the second is refused."""
    world.atlas.latency = 0.2
    async with client.keys_for_orgs(world.orgs, page_size=100) as stream:
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)  # the first task now waits for a pair
        assert not first.done()
        with pytest.raises(AiokeysError, match="already being iterated"):
            await anext(stream)
        world.atlas.latency = 0.0
        pairs = [await first] + [pair async for pair in stream]
    assert len(pairs) == sum(SIZES)

"""Listings against the simulator: completeness, order, counts, drift, max_items."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import aiokeys
from aiokeys import ApiKey, Client, DriftError, KeyStream
from aiokeys.testing import FakeAtlas

Factory = Callable[..., Awaitable[FakeAtlas]]


def _client(atlas: FakeAtlas, **kwargs: Any) -> Client:
    return Client(
        auth=aiokeys.BearerToken(atlas.add_bearer_token()), base_url=atlas.url, **kwargs
    )


async def _ids(stream: KeyStream) -> list[str]:
    async with stream:
        return [key.api_key_id async for key in stream if key.api_key_id is not None]


async def _collect(stream: KeyStream, into: list[ApiKey]) -> None:
    async for key in stream:
        into.append(key)


def _list_pages(atlas: FakeAtlas) -> list[int]:
    return [r.page_num for r in atlas.requests if r.page_num is not None]


def _assert_same_params_but_page(atlas: FakeAtlas) -> None:
    queries = [
        {k: v for k, v in r.query.items() if k != "pageNum"} for r in atlas.requests
    ]
    assert all(q == queries[0] for q in queries)
    assert all(r.path == atlas.requests[0].path for r in atlas.requests)


@pytest.fixture
def org(fake_atlas: FakeAtlas) -> str:
    return fake_atlas.add_org()


@pytest.mark.parametrize(
    ("n_keys", "page_size", "concurrency"),
    [
        (0, 100, 8),
        (1, 100, 8),
        (99, 100, 4),
        (100, 100, 4),
        (101, 100, 2),
        (500, 100, 8),
        (501, 100, 3),
        (500, 500, 1),
        (501, 500, 2),
        (12345, 500, 8),
        (12345, 333, 3),
    ],
)
async def test_complete_ordered_exactly_once(
    fake_atlas: FakeAtlas, org: str, n_keys: int, page_size: int, concurrency: int
) -> None:
    """Every key once, in server order; every page once; same parameters."""
    seeded = [
        k["apiKeyId"] for k in fake_atlas.seed_keys(org, n_keys, groups=2, seed=3)
    ]
    async with _client(fake_atlas, concurrency=concurrency) as client:
        stream = client.org_keys(org, page_size=page_size)
        assert await _ids(stream) == seeded
        assert not [
            t for t in asyncio.all_tasks() if t.get_name().startswith("aiokeys")
        ]
    pages = _list_pages(fake_atlas)
    last = n_keys // page_size + 1  # a full last page is followed by one more read
    assert sorted(pages) == list(range(1, last + 1))
    assert pages[0] == 1
    _assert_same_params_but_page(fake_atlas)
    progress = stream.progress
    assert progress.keys_yielded == n_keys
    assert progress.pages_done == last
    assert not progress.drift_seen
    assert progress.duplicates_dropped == 0


async def test_group_listing(fake_atlas: FakeAtlas, org: str) -> None:
    """A project lists its own keys, in order."""
    group = fake_atlas.add_group(org)
    fake_atlas.seed_keys(org, 300, groups=[group], seed=1)
    async with _client(fake_atlas) as client:
        ids = await _ids(client.group_keys(group, page_size=70))
    assert ids == fake_atlas.key_ids(group)
    assert len(ids) == 300


async def test_unordered_same_set(fake_atlas: FakeAtlas, org: str) -> None:
    """ordered=False yields the same keys, each once."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 2345, seed=2)]
    async with _client(fake_atlas, concurrency=6) as client:
        ids = await _ids(client.org_keys(org, page_size=100, ordered=False))
    assert len(ids) == len(set(ids))
    assert set(ids) == set(seeded)


COUNTS: dict[str, Callable[[int, int], int | None]] = {
    "missing": lambda true, page: None,
    "too_high": lambda true, page: true + 250,
    "too_low": lambda true, page: max(0, true - 250),
    "growing": lambda true, page: true - 300 + 60 * page,
    "shrinking": lambda true, page: max(0, true + 400 - 90 * page),
    "zero": lambda true, page: 0,
}


# Counts still above the list when it ends, on pages all full but the last:
# told in progress.drift, and the listing ends normally.
OVERSTATED = {"too_high", "growing"}


@pytest.mark.parametrize("on_drift", ["repair", "warn"])
@pytest.mark.parametrize("count", sorted(COUNTS))
async def test_wrong_total_count_still_complete(
    fake_atlas_factory: Factory, count: str, on_drift: str
) -> None:
    """Whatever totalCount says, every key comes once, in order; too high is told."""
    atlas = await fake_atlas_factory(total_count=COUNTS[count])
    org = atlas.add_org()
    seeded = [k["apiKeyId"] for k in atlas.seed_keys(org, 1234, seed=4)]
    got: list[ApiKey] = []
    async with _client(atlas, concurrency=4) as client:
        stream = client.org_keys(org, page_size=100, on_drift=on_drift)  # type: ignore[arg-type]
        await _collect(stream, got)
    assert [k.api_key_id for k in got] == seeded
    assert stream.progress.repair_passes <= 1
    if count in OVERSTATED:
        assert any("totalCount said" in note for note in stream.progress.drift)
    if count == "missing":
        assert not stream.progress.drift_seen
        # Speculative reads past the end are bounded by the window.
        assert len(_list_pages(atlas)) <= 13 + client.window


async def test_missing_count_reads_until_short_page(
    fake_atlas_factory: Factory,
) -> None:
    """No totalCount: reading stops at the first short page."""
    atlas = await fake_atlas_factory(total_count=lambda true, page: None)
    org = atlas.add_org()
    atlas.seed_keys(org, 250, seed=1)
    async with _client(atlas, concurrency=1) as client:
        ids = await _ids(client.org_keys(org, page_size=100))
    assert len(ids) == 250
    assert _list_pages(atlas) == [1, 2, 3]


async def test_full_last_expected_page_reads_on(fake_atlas_factory: Factory) -> None:
    """A count too low: the full last expected page is followed by more reads."""
    atlas = await fake_atlas_factory(total_count=lambda true, page: 100)
    org = atlas.add_org()
    atlas.seed_keys(org, 350, seed=1)
    async with _client(atlas, concurrency=1) as client:
        stream = client.org_keys(org, page_size=100, on_drift="warn")
        ids = await _ids(stream)
    assert len(ids) == 350
    assert _list_pages(atlas) == [1, 2, 3, 4]


async def test_short_page_before_expected_end_is_not_the_end(
    fake_atlas_factory: Factory,
) -> None:
    """A count too high: empty pages before the expected end do not stop reading."""
    atlas = await fake_atlas_factory(total_count=lambda true, page: 600)
    org = atlas.add_org()
    atlas.seed_keys(org, 150, seed=1)
    async with _client(atlas, concurrency=2) as client:
        stream = client.org_keys(org, page_size=100, on_drift="warn")
        ids = await _ids(stream)
    assert len(ids) == 150
    pages = _list_pages(atlas)
    # Page 3 is read although page 2 came back short; page 3, empty after a
    # short page, ends the list (page 4 was already in flight).
    assert {1, 2, 3} <= set(pages) <= {1, 2, 3, 4}
    assert len(pages) == len(set(pages))
    assert stream.progress.drift_seen
    assert "totalCount said 600, but the list ended at page 3 after 150 keys" in (
        stream.progress.drift
    )
    assert stream.progress.pages_expected == 3


async def test_count_far_too_high_is_bounded(fake_atlas_factory: Factory) -> None:
    """totalCount 10**12 for 35 keys: a few requests, every key, the shortfall told."""
    atlas = await fake_atlas_factory(total_count=lambda true, page: 10**12)
    org = atlas.add_org()
    seeded = [k["apiKeyId"] for k in atlas.seed_keys(org, 35, seed=1)]
    got: list[ApiKey] = []
    async with _client(atlas, concurrency=8) as client:
        stream = client.org_keys(org, page_size=10)
        await asyncio.wait_for(_collect(stream, got), timeout=10)
    assert [k.api_key_id for k in got] == seeded
    assert any("totalCount said 1000000000000" in n for n in stream.progress.drift)
    pages = _list_pages(atlas)
    # The first pass ends at page 5 (empty after the short page 4), having
    # started at most a window of pages beyond; the re-read stops at page 5.
    assert all(pages.count(n) == 2 for n in range(1, 6))
    assert all(pages.count(n) == 1 for n in set(pages) - set(range(1, 6)))
    assert len(pages) <= 5 + client.window + 5
    assert stream.progress.repair_passes == 1


def _present_throughout(seeded: list[str], removed: list[str]) -> list[str]:
    return [i for i in seeded if i not in removed]


async def test_deleted_keys_repaired_late(fake_atlas: FakeAtlas, org: str) -> None:
    """Deletions shift keys onto read pages; repair finds them after the rest."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 500, seed=5)]
    removed = [seeded[10], seeded[20]]
    fake_atlas.after_page(org, 2, remove=removed)
    async with _client(fake_atlas, concurrency=1) as client:
        stream = client.org_keys(org, page_size=100)
        ids = await _ids(stream)
    assert len(ids) == len(set(ids))
    assert set(_present_throughout(seeded, removed)) <= set(ids)
    # seeded[200] and [201] slid onto page 2 after it was read: delivered last.
    assert ids[-2:] == [seeded[200], seeded[201]]
    assert ids[:-2] == [i for i in seeded if i not in (seeded[200], seeded[201])]
    progress = stream.progress
    assert progress.drift_seen
    assert progress.repair_passes == 2  # one that found two keys, one clean
    assert any("totalCount changed" in note for note in progress.drift)


async def test_inserted_keys_dropped_as_duplicates(
    fake_atlas: FakeAtlas, org: str
) -> None:
    """Insertions at the front would repeat keys; repeats are dropped.

    The simulator inserts at the end, so to shift offsets right this removes
    nothing and adds keys; the count change alone is drift.
    """
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 450, seed=6)]
    fake_atlas.after_page(org, 1, add=7)
    async with _client(fake_atlas, concurrency=3) as client:
        stream = client.org_keys(org, page_size=100)
        ids = await _ids(stream)
    assert len(ids) == len(set(ids)) == 457
    assert ids[:450] == seeded
    assert stream.progress.drift_seen
    assert stream.progress.repair_passes == 1


@pytest.mark.parametrize("concurrency", [2, 5])
async def test_mixed_drift_repair_invariant(
    fake_atlas: FakeAtlas, org: str, concurrency: int
) -> None:
    """Under concurrency: each key present throughout comes exactly once."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 1000, seed=7)]
    removed = seeded[5:40:3]
    fake_atlas.after_page(org, 2, remove=removed[:6], add=5)
    fake_atlas.after_page(org, 4, remove=removed[6:])
    async with _client(fake_atlas, concurrency=concurrency) as client:
        ids = await _ids(client.org_keys(org, page_size=50))
    assert len(ids) == len(set(ids))
    assert set(_present_throughout(seeded, removed)) <= set(ids)
    assert set(ids) <= set(seeded) | set(fake_atlas.key_ids(org))


async def test_warn_only_records(fake_atlas: FakeAtlas, org: str) -> None:
    """on_drift="warn": drift recorded and logged, keys slid back are missed."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 500, seed=5)]
    fake_atlas.after_page(org, 2, remove=[seeded[10], seeded[20]])
    async with _client(fake_atlas, concurrency=1) as client:
        stream = client.org_keys(org, page_size=100, on_drift="warn")
        ids = await _ids(stream)
    assert len(ids) == len(set(ids)) == 498
    assert seeded[200] not in ids
    assert stream.progress.drift_seen
    assert stream.progress.repair_passes == 0
    assert sorted(_list_pages(fake_atlas)) == [1, 2, 3, 4, 5]


async def test_drift_logged_once(
    fake_atlas: FakeAtlas, org: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Several drift notes, one WARNING line."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 500, seed=5)]
    fake_atlas.after_page(org, 1, remove=seeded[:3])
    fake_atlas.after_page(org, 3, add=4)
    async with _client(fake_atlas, concurrency=1) as client:
        stream = client.org_keys(org, page_size=100, on_drift="warn")
        await _ids(stream)
    warnings = [
        r for r in caplog.records if r.levelname == "WARNING" and "drift" in r.message
    ]
    assert len(stream.progress.drift) >= 2
    assert len(warnings) == 1


async def test_raise_on_drift(fake_atlas: FakeAtlas, org: str) -> None:
    """on_drift="raise": DriftError, with where it stopped, and nothing more is sent."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 500, seed=5)]
    fake_atlas.after_page(org, 2, remove=[seeded[0]])
    async with _client(fake_atlas, concurrency=1) as client:
        stream = client.org_keys(org, page_size=100, on_drift="raise")
        got: list[ApiKey] = []
        with pytest.raises(DriftError) as info:
            await _collect(stream, got)
        assert [k.api_key_id async for k in stream] == []
        await asyncio.sleep(0.05)  # the simulator reads what was already sent
        closed_at = time.monotonic()
        await asyncio.sleep(0.2)
    assert info.value.keys_yielded == len(got) == 200
    assert info.value.page_num == 3
    assert all(r.time < closed_at for r in fake_atlas.requests)
    assert len(fake_atlas.requests) <= 3 + client.window - 1  # what was in flight


@pytest.mark.parametrize("ordered", [True, False])
async def test_max_items_requests_only_needed_pages(
    fake_atlas: FakeAtlas, org: str, ordered: bool
) -> None:
    """max_items=250 at page size 100: three pages, 250 keys, nothing more."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 1000, seed=8)]
    async with _client(fake_atlas, concurrency=8) as client:
        stream = client.org_keys(org, page_size=100, max_items=250, ordered=ordered)
        ids = await _ids(stream)
    assert len(ids) == 250
    if ordered:
        assert ids == seeded[:250]
    assert sorted(_list_pages(fake_atlas)) == [1, 2, 3]


async def test_max_items_one(fake_atlas: FakeAtlas, org: str) -> None:
    """max_items=1 reads page 1 only."""
    seeded = [k["apiKeyId"] for k in fake_atlas.seed_keys(org, 300, seed=8)]
    async with _client(fake_atlas) as client:
        ids = await _ids(client.org_keys(org, page_size=50, max_items=1))
    assert ids == seeded[:1]
    assert _list_pages(fake_atlas) == [1]


async def test_many_listings_share_one_client(fake_atlas: FakeAtlas) -> None:
    """One client, several listings from several tasks at once."""
    orgs = [fake_atlas.add_org() for _ in range(4)]
    for n, org_id in enumerate(orgs):
        fake_atlas.seed_keys(org_id, 300 + n * 50, seed=n)
    async with _client(fake_atlas, concurrency=3) as client:
        results = await asyncio.gather(
            *(_ids(client.org_keys(o, page_size=60)) for o in orgs)
        )
    assert results == [fake_atlas.key_ids(o) for o in orgs]

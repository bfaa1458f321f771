"""FakeAtlas list endpoints: pagination, links, totalCount, ordering, 400 and 404."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from aiokeys.testing import FakeAtlas
from aiokeys.testing._atlas import _url_host

ACCEPT = "application/vnd.atlas.2025-03-12+json"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def atlas() -> AsyncIterator[FakeAtlas]:
    async with FakeAtlas(require_auth=False) as atlas:
        yield atlas


async def _get(
    http: aiohttp.ClientSession, url: str, **params: str | int
) -> tuple[int, Any]:
    query = {name: str(value) for name, value in params.items()}
    async with http.get(url, params=query, headers={"Accept": ACCEPT}) as resp:
        return resp.status, await resp.json(content_type=None)


def _org_url(atlas: FakeAtlas, org_id: str) -> str:
    return f"{atlas.url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys"


def _rels(body: dict[str, Any]) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in body["links"]}


async def test_url_is_loopback_with_ephemeral_port(atlas: FakeAtlas) -> None:
    """The simulator binds 127.0.0.1 on a port the OS picked."""
    found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", atlas.url)
    assert found is not None
    assert int(found.group(1)) > 0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_url_is_bracketed_and_served(http: aiohttp.ClientSession) -> None:
    """On ::1 the base URL is http://[::1]:PORT, and it and its links work."""
    async with FakeAtlas(host="::1", require_auth=False) as atlas:
        assert re.fullmatch(r"http://\[::1\]:[1-9]\d*", atlas.url)
        org_id = atlas.add_org()
        atlas.seed_keys(org_id, 3)
        status, body = await _get(http, _org_url(atlas, org_id), itemsPerPage=2)
        assert (status, len(body["results"])) == (200, 2)
        status, body = await _get(http, _rels(body)["next"])
    assert (status, len(body["results"])) == (200, 1)


@pytest.mark.parametrize(
    ("host", "written"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "localhost"),
        ("::1", "[::1]"),
        ("fe80::1%eth0", "[fe80::1%25eth0]"),
    ],
)
def test_url_host_brackets_ipv6(host: str, written: str) -> None:
    """IPv6 hosts are bracketed, their zone id percent-escaped (RFC 6874)."""
    assert _url_host(host) == written


async def test_url_before_start_raises() -> None:
    """atlas.url outside `async with` is a clear error, not a bogus URL."""
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeAtlas().url


async def test_fixture_is_started(
    fake_atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """The plugin's `fake_atlas` fixture serves requests (and requires auth)."""
    org_id = fake_atlas.add_org()
    status, body = await _get(http, _org_url(fake_atlas, org_id))
    assert status == 401
    assert body["errorCode"] == "UNAUTHORIZED"


async def test_default_page_is_100_in_creation_order(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """No parameters: page 1 of 100 keys, in the order they were created."""
    org_id = atlas.add_org()
    keys = atlas.seed_keys(org_id, 250, groups=3, seed=1)
    status, body = await _get(http, _org_url(atlas, org_id))
    assert status == 200
    assert [k["apiKeyId"] for k in body["results"]] == [
        k["apiKeyId"] for k in keys[:100]
    ]
    assert body["totalCount"] == 250


async def test_pages_tile_the_listing_exactly(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Pages of 7 concatenate to every key once, the last one short."""
    org_id = atlas.add_org()
    expected = [k["apiKeyId"] for k in atlas.seed_keys(org_id, 45, groups=2, seed=3)]
    seen: list[str] = []
    for page in range(1, 8):
        _, body = await _get(
            http, _org_url(atlas, org_id), itemsPerPage=7, pageNum=page
        )
        seen += [k["apiKeyId"] for k in body["results"]]
    assert seen == expected
    assert len(body["results"]) == 45 - 6 * 7


async def test_past_the_end_is_200_empty(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A page beyond the last is 200 with empty results and no next link."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 10)
    status, body = await _get(http, _org_url(atlas, org_id), itemsPerPage=5, pageNum=9)
    assert status == 200
    assert body["results"] == []
    assert body["totalCount"] == 10
    assert "next" not in _rels(body)


async def test_empty_org_lists_nothing(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """An org without keys answers an empty page with totalCount 0."""
    org_id = atlas.add_org()
    status, body = await _get(http, _org_url(atlas, org_id))
    assert (status, body["results"], body["totalCount"]) == (200, [], 0)


async def test_links_self_next_previous(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Middle page: self, previous and next, each naming its pageNum and size."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 30)
    _, body = await _get(http, _org_url(atlas, org_id), itemsPerPage=10, pageNum=2)
    rels = _rels(body)
    assert set(rels) == {"self", "previous", "next"}
    for rel, num in (("self", 2), ("previous", 1), ("next", 3)):
        assert f"pageNum={num}" in rels[rel]
        assert "itemsPerPage=10" in rels[rel]
        assert rels[rel].startswith(_org_url(atlas, org_id) + "?")


async def test_first_and_last_pages_links(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """First page has no previous; the exact last page has no next."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 20)
    _, first = await _get(http, _org_url(atlas, org_id), itemsPerPage=10)
    _, last = await _get(http, _org_url(atlas, org_id), itemsPerPage=10, pageNum=2)
    assert set(_rels(first)) == {"self", "next"}
    assert set(_rels(last)) == {"self", "previous"}


async def test_next_link_is_followable(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Following `next` hrefs walks the whole listing."""
    org_id = atlas.add_org()
    expected = [k["apiKeyId"] for k in atlas.seed_keys(org_id, 23)]
    url: str | None = _org_url(atlas, org_id) + "?itemsPerPage=5"
    seen: list[str] = []
    while url is not None:
        async with http.get(url, headers={"Accept": ACCEPT}) as resp:
            body = await resp.json(content_type=None)
        seen += [k["apiKeyId"] for k in body["results"]]
        url = _rels(body).get("next")
    assert seen == expected


async def test_group_listing_holds_only_its_keys(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A project lists its own keys, in creation order, with its own count."""
    org_id = atlas.add_org()
    keys = atlas.seed_keys(org_id, 60, groups=3, seed=2)
    group_id = keys[0]["groupId"]
    mine = [k["apiKeyId"] for k in keys if k["groupId"] == group_id]
    url = f"{atlas.url}/api/atlas/v2/groups/{group_id}/aiModelApiKeys"
    _, body = await _get(http, url, itemsPerPage=500)
    assert [k["apiKeyId"] for k in body["results"]] == mine
    assert body["totalCount"] == len(mine) < 60


@pytest.mark.parametrize("size", [1, 500])
async def test_items_per_page_bounds_accepted(
    atlas: FakeAtlas, http: aiohttp.ClientSession, size: int
) -> None:
    """itemsPerPage 1 and 500 are both valid."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 501)
    status, body = await _get(http, _org_url(atlas, org_id), itemsPerPage=size)
    assert (status, len(body["results"])) == (200, size)


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"itemsPerPage": 0}, ["itemsPerPage"]),
        ({"itemsPerPage": 501}, ["itemsPerPage"]),
        ({"itemsPerPage": "ten"}, ["itemsPerPage"]),
        ({"pageNum": 0}, ["pageNum"]),
        ({"pageNum": -3}, ["pageNum"]),
        ({"pageNum": "1.5"}, ["pageNum"]),
        ({"pageNum": 0, "itemsPerPage": 9999}, ["pageNum", "itemsPerPage"]),
        ({"envelope": "yes"}, ["envelope"]),
        ({"pretty": "1"}, ["pretty"]),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    atlas: FakeAtlas,
    http: aiohttp.ClientSession,
    params: dict[str, str | int],
    fields: list[str],
) -> None:
    """An out-of-range or malformed parameter is a 400 naming it in badRequestDetail."""
    org_id = atlas.add_org()
    status, body = await _get(http, _org_url(atlas, org_id), **params)
    assert status == 400
    assert body["error"] == 400
    assert body["errorCode"] == "INVALID_PARAMETER"
    assert sorted(f["field"] for f in body["badRequestDetail"]["fields"]) == sorted(
        fields
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("itemsPerPage=%D9%A5", "itemsPerPage"),  # ARABIC-INDIC DIGIT FIVE
        ("itemsPerPage=%2B5", "itemsPerPage"),  # +5
        ("pageNum=%C2%B2", "pageNum"),  # SUPERSCRIPT TWO: isdigit(), int() refuses
        ("pageNum=99999999999999999999999", "pageNum"),
        ("pageNum=1&pageNum=2", "pageNum"),
        ("itemsPerPage=5&itemsPerPage=5", "itemsPerPage"),
        ("envelope=false&envelope=false", "envelope"),
        ("pretty=true&pretty=false", "pretty"),
    ],
)
async def test_lax_parameters_are_atlas_400_naming_them(
    atlas: FakeAtlas, http: aiohttp.ClientSession, query: str, field: str
) -> None:
    """Only one value, in ASCII digits and in range, is a valid number."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 3)
    url = f"{_org_url(atlas, org_id)}?{query}"
    async with http.get(
        yarl.URL(url, encoded=True), headers={"Accept": ACCEPT}
    ) as resp:
        body = await resp.json(content_type=None)
    assert (resp.status, body["error"], body["errorCode"]) == (
        400,
        400,
        "INVALID_PARAMETER",
    )
    assert [f["field"] for f in body["badRequestDetail"]["fields"]] == [field]
    assert field in body["detail"]
    assert atlas.requests[-1].status == 400
    if field == "pageNum":
        assert atlas.requests[-1].page_num is None


@pytest.mark.parametrize("kind", ["orgs", "groups"])
@pytest.mark.parametrize(
    "bad_id", ["123", "ABCDEF0123456789ABCDEF01", "zz" * 12, "a" * 25]
)
async def test_malformed_scope_id_is_400(
    atlas: FakeAtlas, http: aiohttp.ClientSession, kind: str, bad_id: str
) -> None:
    """An org or project id that is not 24 lowercase hex is a 400 naming it."""
    status, body = await _get(
        http, f"{atlas.url}/api/atlas/v2/{kind}/{bad_id}/aiModelApiKeys"
    )
    assert status == 400
    expected = "orgId" if kind == "orgs" else "groupId"
    assert [f["field"] for f in body["badRequestDetail"]["fields"]] == [expected]


@pytest.mark.parametrize(
    ("kind", "code"), [("orgs", "ORG_NOT_FOUND"), ("groups", "GROUP_NOT_FOUND")]
)
async def test_unknown_scope_is_404(
    atlas: FakeAtlas, http: aiohttp.ClientSession, kind: str, code: str
) -> None:
    """A well-formed id that does not exist is a 404 in Atlas shape."""
    status, body = await _get(
        http, f"{atlas.url}/api/atlas/v2/{kind}/{'ab' * 12}/aiModelApiKeys"
    )
    assert (status, body["error"], body["errorCode"]) == (404, 404, code)


async def test_unknown_path_is_atlas_404(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A path outside the contract is a 404 in Atlas shape, not aiohttp's text."""
    status, body = await _get(http, f"{atlas.url}/api/atlas/v2/clusters")
    assert (status, body["errorCode"]) == (404, "RESOURCE_NOT_FOUND")


async def test_total_count_hook(http: aiohttp.ClientSession) -> None:
    """The total_count hook sees (true count, page) and can lie or omit."""
    calls: list[tuple[int, int]] = []

    def hook(true_count: int, page_num: int) -> int | None:
        calls.append((true_count, page_num))
        return None if page_num == 2 else true_count + 1000

    async with FakeAtlas(require_auth=False, total_count=hook) as atlas:
        org_id = atlas.add_org()
        atlas.seed_keys(org_id, 12)
        _, first = await _get(http, _org_url(atlas, org_id), itemsPerPage=5)
        _, second = await _get(http, _org_url(atlas, org_id), itemsPerPage=5, pageNum=2)
    assert first["totalCount"] == 1012
    assert "totalCount" not in second
    assert calls == [(12, 1), (12, 2)]


def test_seeded_keys_are_realistic() -> None:
    """Seeded keys look like Atlas' own: ids, timestamps, masks, statuses, projects."""
    atlas = FakeAtlas()
    org_id = atlas.add_org()
    keys = atlas.seed_keys(org_id, 400, groups=4, seed=9)
    assert len({k["apiKeyId"] for k in keys}) == 400
    for key in keys:
        assert re.fullmatch(r"[a-z0-9]{24}", key["apiKeyId"])
        assert key["createdAt"].endswith("+00:00")
        assert key["maskedSecret"] == "al-****" + key["secret"][-4:]
        assert 1 <= len(key["name"]) <= 250
    created = [k["createdAt"] for k in keys]
    assert created == sorted(created)
    statuses = [k["status"] for k in keys]
    assert statuses.count("ACTIVE") > 300
    assert set(statuses) - {"ACTIVE"}
    assert 0 < sum(k["lastUsedAt"] is None for k in keys) < 200
    assert len({k["groupId"] for k in keys}) == 4


def test_seeding_is_deterministic() -> None:
    """Same seed, same org id, same keys; another seed, other keys."""

    def seeded(seed: int) -> list[dict[str, Any]]:
        atlas = FakeAtlas()
        org_id = atlas.add_org("0123456789abcdef01234567")
        return atlas.seed_keys(org_id, 50, groups=2, seed=seed)

    assert seeded(1) == seeded(1)
    assert seeded(1) != seeded(2)


def test_seed_groups_by_name() -> None:
    """groups= may name existing projects; all keys land in them."""
    atlas = FakeAtlas()
    org_id = atlas.add_org()
    chosen = atlas.add_group(org_id)
    atlas.add_group(org_id)
    keys = atlas.seed_keys(org_id, 20, groups=[chosen])
    assert {k["groupId"] for k in keys} == {chosen}
    assert atlas.key_ids(chosen) == [k["apiKeyId"] for k in keys]


def test_listing_leaves_the_secret_out() -> None:
    """Stored keys carry no secret (Atlas shows it only on create)."""
    atlas = FakeAtlas()
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 5)
    assert all("secret" not in key for key in atlas.keys(org_id))


@settings(max_examples=25, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=60),
    size=st.integers(min_value=1, max_value=25),
    page=st.integers(min_value=1, max_value=8),
)
def test_any_page_is_the_matching_slice(total: int, size: int, page: int) -> None:
    """For any count, size and page: results are the slice, links and count agree."""

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        async with (
            FakeAtlas(require_auth=False) as atlas,
            aiohttp.ClientSession() as http,
        ):
            org_id = atlas.add_org()
            atlas.seed_keys(org_id, total)
            _, body = await _get(
                http, _org_url(atlas, org_id), itemsPerPage=size, pageNum=page
            )
            return atlas.key_ids(org_id), body

    ids, body = asyncio.run(scenario())
    start = (page - 1) * size
    assert [k["apiKeyId"] for k in body["results"]] == ids[start : start + size]
    assert body["totalCount"] == total
    assert ("next" in _rels(body)) == (start + size < total)
    assert ("previous" in _rels(body)) == (page > 1)

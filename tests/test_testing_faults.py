"""FakeAtlas fault rules, drift, rate limits, latency and the request log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiokeys.testing import FakeAtlas, Fault, RateLimit

GA = "application/vnd.atlas.2025-03-12+json"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def atlas() -> AsyncIterator[FakeAtlas]:
    async with FakeAtlas(require_auth=False) as atlas:
        yield atlas


async def _page(
    http: aiohttp.ClientSession,
    atlas: FakeAtlas,
    scope: str,
    page: int = 1,
    size: int = 10,
) -> tuple[int, str, bytes, dict[str, str]]:
    url = f"{atlas.url}/api/atlas/v2/{scope}/aiModelApiKeys"
    params = {"pageNum": str(page), "itemsPerPage": str(size)}
    async with http.get(url, params=params, headers={"Accept": GA}) as resp:
        return resp.status, resp.content_type, await resp.read(), dict(resp.headers)


def _org(atlas: FakeAtlas, keys: int = 30) -> str:
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, keys, groups=2)
    return org_id


async def test_status_fault_is_atlas_json_with_retry_after(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """kind="status" answers Atlas error JSON of that status, code and Retry-After."""
    org_id = _org(atlas)
    atlas.add_fault(
        Fault(
            kind="status", status=503, error_code="SERVICE_UNAVAILABLE", retry_after=7
        )
    )
    status, ctype, body, headers = await _page(http, atlas, f"orgs/{org_id}")
    assert (status, ctype, headers["Retry-After"]) == (503, "application/json", "7")
    assert b'"errorCode":"SERVICE_UNAVAILABLE"' in body


async def test_fractional_retry_after_is_decimal(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """retry_after=0.25 is sent as "0.25" (and 1e6 as "1000000"), never in exponent form."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="status", status=429, retry_after=0.25, times=1))
    atlas.add_fault(Fault(kind="empty", status=503, retry_after=1e6, times=1))
    first = (await _page(http, atlas, f"orgs/{org_id}"))[3]["Retry-After"]
    second = (await _page(http, atlas, f"orgs/{org_id}"))[3]["Retry-After"]
    assert (first, second) == ("0.25", "1000000")


async def test_status_fault_default_is_500(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A status fault without a status is a 500 UNEXPECTED_ERROR."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="status"))
    status, _, body, headers = await _page(http, atlas, f"orgs/{org_id}")
    assert status == 500
    assert b"UNEXPECTED_ERROR" in body
    assert "Retry-After" not in headers


async def test_html_fault(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """kind="html" is a proxy's HTML 502 page."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="html"))
    status, ctype, body, _ = await _page(http, atlas, f"orgs/{org_id}")
    assert (status, ctype) == (502, "text/html")
    assert b"<html>" in body


async def test_empty_fault(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """kind="empty" is an empty body with the status (default 500)."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="empty", status=504))
    status, _, body, _ = await _page(http, atlas, f"orgs/{org_id}")
    assert (status, body) == (504, b"")


async def test_reset_fault(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """kind="reset" drops the connection without an answer; the log says 0."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="reset"))
    with pytest.raises(aiohttp.ClientError):
        await _page(http, atlas, f"orgs/{org_id}")
    # aiohttp itself may retry a GET once after a reset: every try was reset.
    assert {r.status for r in atlas.requests} == {0}
    atlas.clear_faults()
    status, _, _, _ = await _page(http, atlas, f"orgs/{org_id}")
    assert status == 200


async def test_truncate_fault(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """kind="truncate" announces the full length and sends half the body."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="truncate"))
    with pytest.raises(aiohttp.ClientPayloadError):
        await _page(http, atlas, f"orgs/{org_id}")


async def test_content_type_fault(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """kind="content_type" keeps the body and lies about its type."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="content_type", content_type="text/plain"))
    status, ctype, body, _ = await _page(http, atlas, f"orgs/{org_id}")
    assert (status, ctype) == (200, "text/plain")
    assert body.startswith(b'{"links"')


async def test_latency_fault_delays_only_its_page(atlas: FakeAtlas) -> None:
    """kind="latency" holds page 2 back (a short client timeout trips on it only)."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="latency", delay=3.0, page_num=2))
    timeout = aiohttp.ClientTimeout(total=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        status, _, _, _ = await _page(http, atlas, f"orgs/{org_id}", page=1)
        with pytest.raises(asyncio.TimeoutError):
            await _page(http, atlas, f"orgs/{org_id}", page=2)
    assert status == 200


async def test_instance_latency_applies_to_every_request() -> None:
    """FakeAtlas(latency=...) delays every answer; it can be changed at run time."""
    async with FakeAtlas(require_auth=False, latency=3.0) as atlas:
        org_id = _org(atlas)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=0.5)
        ) as http:
            with pytest.raises(asyncio.TimeoutError):
                await _page(http, atlas, f"orgs/{org_id}")
            atlas.latency = 0.0
            status, _, _, _ = await _page(http, atlas, f"orgs/{org_id}")
    assert status == 200


async def test_attempts_selector(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """attempts={1, 2} on page 3 fails its first two tries only; other pages pass."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="status", status=500, page_num=3, attempts={1, 2}))
    results = [
        (await _page(http, atlas, f"orgs/{org_id}", page=p))[0] for p in (3, 1, 3, 3, 3)
    ]
    assert results == [500, 200, 500, 200, 200]


async def test_times_selector(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """times=2 fires on the first two matching requests, whatever their page."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="status", status=503, times=2))
    results = [
        (await _page(http, atlas, f"orgs/{org_id}", page=p))[0] for p in (1, 2, 1)
    ]
    assert results == [503, 503, 200]


async def test_org_group_and_path_selectors(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """org_id, group_id and path substrings restrict where a rule fires."""
    org_a, org_b = _org(atlas), _org(atlas)
    group_b = atlas.add_group(org_b)
    atlas.add_fault(Fault(kind="status", status=500, org_id=org_a))
    atlas.add_fault(Fault(kind="status", status=502, group_id=group_b))
    atlas.add_fault(Fault(kind="status", status=503, path="/nothing-like-this"))
    a = (await _page(http, atlas, f"orgs/{org_a}"))[0]
    b = (await _page(http, atlas, f"orgs/{org_b}"))[0]
    g = (await _page(http, atlas, f"groups/{group_b}"))[0]
    assert (a, b, g) == (500, 200, 502)


async def test_clear_faults(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """clear_faults() removes every rule."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="status"))
    atlas.clear_faults()
    assert (await _page(http, atlas, f"orgs/{org_id}"))[0] == 200


async def test_fault_on_token_endpoint(http: aiohttp.ClientSession) -> None:
    """Faults apply to /api/oauth/token too, selected by path."""
    async with FakeAtlas() as atlas:
        atlas.add_fault(Fault(kind="status", status=503, path="/api/oauth/token"))
        async with http.post(
            f"{atlas.url}/api/oauth/token", data={"grant_type": "client_credentials"}
        ) as resp:
            status = resp.status
    assert status == 503


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "status", "attempts": {1}, "times": 1}, "attempts or times"),
        ({"kind": "status", "times": 0}, "times"),
        ({"kind": "latency", "delay": -1}, "delay"),
    ],
)
def test_fault_validation(kwargs: dict[str, Any], match: str) -> None:
    """Impossible fault rules are refused when built."""
    with pytest.raises(ValueError, match=match):
        Fault(**kwargs)


async def test_after_page_removes_and_adds_once(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """after_page: once page 2 is served, keys go and come; page 3 sees the shift."""
    org_id = atlas.add_org()
    ids = [k["apiKeyId"] for k in atlas.seed_keys(org_id, 30)]
    atlas.after_page(org_id, page_num=2, add=3, remove=[ids[0], ids[1]])
    _, _, first_page2, _ = await _page(http, atlas, f"orgs/{org_id}", page=2)
    assert atlas.key_ids(org_id)[:28] == ids[2:]
    assert len(atlas.key_ids(org_id)) == 31
    _, _, page3, _ = await _page(http, atlas, f"orgs/{org_id}", page=3)
    assert ids[22].encode() in page3  # shifted down by two
    assert ids[19].encode() in first_page2
    await _page(http, atlas, f"orgs/{org_id}", page=2)
    assert len(atlas.key_ids(org_id)) == 31  # once only


async def test_after_page_on_a_project(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """after_page works on a project listing; added keys land in that project."""
    org_id = atlas.add_org()
    group_id = atlas.add_group(org_id)
    atlas.seed_keys(org_id, 5, groups=[group_id])
    atlas.after_page(group_id, page_num=1, add=2)
    await _page(http, atlas, f"groups/{group_id}", page=1)
    assert len(atlas.key_ids(group_id)) == 7


async def test_after_page_waits_for_its_page(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Other pages, and failed requests for the page, do not trigger the drift."""
    org_id = _org(atlas, keys=30)
    atlas.after_page(org_id, page_num=2, add=5)
    atlas.add_fault(Fault(kind="status", page_num=2, times=1))
    await _page(http, atlas, f"orgs/{org_id}", page=1)
    await _page(http, atlas, f"orgs/{org_id}", page=2)
    assert len(atlas.key_ids(org_id)) == 30
    await _page(http, atlas, f"orgs/{org_id}", page=2)
    assert len(atlas.key_ids(org_id)) == 35


async def test_after_page_ignores_enveloped_errors(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A 400 for that page, sent as HTTP 200 by envelope=true, is not a served page."""
    org_id = _org(atlas, keys=30)
    atlas.after_page(org_id, page_num=2, add=5)
    url = f"{atlas.url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys"
    query = {"pageNum": "2", "itemsPerPage": "0", "envelope": "true"}
    async with http.get(url, params=query, headers={"Accept": GA}) as resp:
        body = await resp.json(content_type=None)
    assert (resp.status, body["status"]) == (200, 400)
    assert len(atlas.key_ids(org_id)) == 30


async def test_rate_limit_token_bucket(http: aiohttp.ClientSession) -> None:
    """An empty bucket answers 429 with Retry-After; headers count down."""
    async with FakeAtlas(
        require_auth=False, rate_limit=RateLimit(capacity=2, refill=1, period=60)
    ) as atlas:
        org_id, other = _org(atlas), _org(atlas)
        answers = [await _page(http, atlas, f"orgs/{org_id}") for _ in range(3)]
        elsewhere = await _page(http, atlas, f"orgs/{other}")
    (s1, _, _, h1), (s2, _, _, h2), (s3, _, b3, h3) = answers
    assert (s1, s2, s3) == (200, 200, 429)
    assert [h["RateLimit-Limit"] for h in (h1, h2, h3)] == ["2", "2", "2"]
    assert [h["RateLimit-Remaining"] for h in (h1, h2, h3)] == ["1", "0", "0"]
    assert 1 <= int(h3["Retry-After"]) <= 60
    assert b"RATE_LIMITED_TOKEN_BUCKET" in b3
    assert elsewhere[0] == 200  # buckets are per org


async def test_bad_parameters_are_400_before_the_rate_limit(
    http: aiohttp.ClientSession,
) -> None:
    """Parameters are checked before the bucket: 400 even when empty, no token taken."""
    async with FakeAtlas(
        require_auth=False, rate_limit=RateLimit(capacity=1, refill=1, period=3600)
    ) as atlas:
        scope = f"orgs/{_org(atlas)}"
        answers = [
            await _page(http, atlas, scope, size=0),  # refused: takes no token
            await _page(http, atlas, scope),  # the one token
            await _page(http, atlas, scope, page=0),  # bucket empty, still 400
            await _page(http, atlas, scope),
        ]
    assert [status for status, *_ in answers] == [400, 200, 400, 429]
    assert b'"field":"pageNum"' in answers[2][2]
    assert "RateLimit-Limit" not in answers[2][3]


async def test_rate_limit_refills(http: aiohttp.ClientSession) -> None:
    """Tokens come back at the refill rate."""
    async with FakeAtlas(
        require_auth=False, rate_limit=RateLimit(capacity=1, refill=20, period=1)
    ) as atlas:
        org_id = _org(atlas)
        first = (await _page(http, atlas, f"orgs/{org_id}"))[0]
        second = (await _page(http, atlas, f"orgs/{org_id}"))[0]
        await asyncio.sleep(0.3)
        third = (await _page(http, atlas, f"orgs/{org_id}"))[0]
    assert (first, second, third) == (200, 429, 200)


async def test_rate_limit_off_by_default(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Without rate_limit there is no limit and no RateLimit headers."""
    org_id = _org(atlas)
    answers = [await _page(http, atlas, f"orgs/{org_id}") for _ in range(20)]
    assert {status for status, *_ in answers} == {200}
    assert "RateLimit-Limit" not in answers[0][3]


async def test_request_log_fields_and_order(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """The log keeps method, path, query, status, page and arrival order."""
    org_id = _org(atlas)
    await _page(http, atlas, f"orgs/{org_id}", page=2, size=5)
    async with http.get(
        f"{atlas.url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys", headers={"Accept": GA}
    ) as resp:
        await resp.read()
    first, second = atlas.requests
    assert (first.method, first.path, first.status, first.page_num) == (
        "GET",
        f"/api/atlas/v2/orgs/{org_id}/aiModelApiKeys",
        200,
        2,
    )
    assert first.query == {"pageNum": "2", "itemsPerPage": "5"}
    assert second.page_num == 1
    assert first.time <= second.time
    atlas.clear_requests()
    assert atlas.requests == []


async def test_log_is_in_arrival_order_under_concurrency(atlas: FakeAtlas) -> None:
    """A slow early request stays ahead of fast later ones in the log."""
    org_id = _org(atlas)
    atlas.add_fault(Fault(kind="latency", delay=0.3, page_num=1))
    async with aiohttp.ClientSession() as http:
        slow = asyncio.create_task(_page(http, atlas, f"orgs/{org_id}", page=1))
        while not atlas._state.log:
            await asyncio.sleep(0.01)
        await _page(http, atlas, f"orgs/{org_id}", page=2)
        await slow
    assert [r.page_num for r in atlas.requests] == [1, 2]

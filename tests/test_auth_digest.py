"""Digest API keys against the simulator: concurrency, stale nonces, wrong keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from aiokeys import ApiKey, AuthenticationError, Client, DigestAuth
from aiokeys._auth import AuthContext
from aiokeys._digest import _FREE_RESENDS, _LANE_RESENDS
from aiokeys._retry import RetryPolicy
from aiokeys.testing import FakeAtlas
from aiokeys.testing._digest import DigestServer, parse_digest

PUB, PRIV = "PUBKEYDIGEST", "priv-4f1c2a9e-digest"
ACCEPT = {"Accept": "application/vnd.atlas.2025-03-12+json"}


@pytest.fixture(params=["MD5", "SHA-256"])
async def stale_atlas(request: pytest.FixtureRequest) -> AsyncIterator[FakeAtlas]:
    """A simulator whose nonces go stale after five uses."""
    async with FakeAtlas(digest_algorithms=(request.param,), nonce_max_uses=5) as atlas:
        atlas.add_digest_user(PUB, PRIV)
        yield atlas


async def _collect(client: Client, org_id: str, page_size: int) -> list[ApiKey]:
    return [key async for key in client.org_keys(org_id, page_size=page_size)]


async def test_listing_at_concurrency_16_survives_stale_nonces(
    stale_atlas: FakeAtlas,
) -> None:
    """50 pages, 16 in flight, nonces worn out every 5 uses: no 401 escapes."""
    org_id = stale_atlas.add_org()
    seeded = stale_atlas.seed_keys(org_id, 100, seed=3)

    async with Client(
        auth=DigestAuth(PUB, PRIV), base_url=stale_atlas.url, concurrency=16
    ) as client:
        keys = await _collect(client, org_id, page_size=2)

    assert [key.api_key_id for key in keys] == [k["apiKeyId"] for k in seeded]
    pages = [
        r for r in stale_atlas.requests if r.page_num is not None and r.status == 200
    ]
    assert set(range(1, 51)) <= {r.page_num for r in pages}
    rejected = [r for r in stale_atlas.requests if r.status == 401]
    # The test is only meaningful if nonces did go stale under the listing.
    assert len(rejected) >= 5
    assert all(r.auth_scheme in ("Digest", None) for r in stale_atlas.requests)


async def test_middleware_alone_on_one_session_with_queries(
    stale_atlas: FakeAtlas,
) -> None:
    """Bare aiohttp, 50 concurrent page requests with query strings: all 200."""
    org_id = stale_atlas.add_org()
    stale_atlas.seed_keys(org_id, 60, seed=4)
    base = URL(stale_atlas.url)
    url = base / "api/atlas/v2/orgs" / org_id / "aiModelApiKeys"

    async with aiohttp.ClientSession(headers=ACCEPT) as session:
        bound = DigestAuth(PUB, PRIV).bind(
            AuthContext(session=session, base_url=base, retry=RetryPolicy())
        )
        gate = asyncio.Semaphore(16)

        async def page(n: int) -> int:
            query = {"pageNum": str(n), "itemsPerPage": "2", "pretty": "true"}
            async with (
                gate,
                session.get(url, params=query, middlewares=(bound,)) as response,
            ):
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(page(n) for n in range(1, 51)))

    assert statuses == [200] * 50


async def test_wrong_private_key_fails_within_two_requests() -> None:
    """A wrong key is told apart from a stale nonce: two requests, then 401."""
    async with FakeAtlas(nonce_max_uses=5) as atlas:
        atlas.add_digest_user(PUB, PRIV)
        org_id = atlas.add_org()
        atlas.seed_keys(org_id, 10, seed=5)
        async with Client(
            auth=DigestAuth(PUB, "not-the-private-key"), base_url=atlas.url
        ) as client:
            with pytest.raises(AuthenticationError) as info:
                await _collect(client, org_id, page_size=5)
        requests = list(atlas.requests)

    assert info.value.status == 401
    assert 1 <= len(requests) <= 2
    assert all(r.status == 401 for r in requests)


@attrs.define(kw_only=True)
class _LoopbackDigest(DigestServer):
    """The simulator's digest checks, plus a record of every (nonce, nc) signed.

    With ``shared`` it hands the same nonce to every challenge until that nonce
    is used up, instead of a fresh nonce per challenge.
    """

    shared: bool = False
    current: str = ""
    always_stale: bool = False
    signed: list[tuple[str, str]] = attrs.field(factory=list)

    def _new_nonce(self) -> str:
        if not self.shared:
            return DigestServer._new_nonce(self)
        state = self._nonces.get(self.current)
        if state is None or self._worn_out(state):
            self.current = DigestServer._new_nonce(self)
        return self.current


@pytest.fixture(params=["shared", "fresh"])
async def loopback_digest(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[URL, _LoopbackDigest, list[int]]]:
    """A loopback app checking digest with :class:`_LoopbackDigest`, two uses a nonce."""
    shared = request.param == "shared"
    digest = _LoopbackDigest(algorithms=("MD5",), max_uses=2, shared=shared)
    digest.users[PUB] = PRIV
    statuses: list[int] = []

    async def page(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        params = parse_digest(header) or {}
        if "nonce" in params:
            digest.signed.append((params["nonce"], params["nc"]))
        outcome = digest.check(request.method, request.raw_path, header)
        await asyncio.sleep(0.002)  # let requests overlap on the wire
        if outcome.user is None or digest.always_stale:
            statuses.append(401)
            stale = outcome.stale or (digest.always_stale and bool(header))
            challenges = digest.challenges(stale=stale)
            return web.Response(
                status=401, headers=[("WWW-Authenticate", c) for c in challenges]
            )
        statuses.append(200)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/page", page)
    async with TestServer(app, host="127.0.0.1") as server:
        yield URL(f"http://127.0.0.1:{server.port}"), digest, statuses


async def _pages(base: URL, count: int, concurrency: int) -> list[int]:
    async with aiohttp.ClientSession() as session:
        bound = DigestAuth(PUB, PRIV).bind(
            AuthContext(session=session, base_url=base, retry=RetryPolicy())
        )
        gate = asyncio.Semaphore(concurrency)

        async def get(n: int) -> int:
            query = {"pageNum": str(n), "itemsPerPage": "2"}
            async with (
                gate,
                session.get(
                    base / "page", params=query, middlewares=(bound,)
                ) as response,
            ):
                await response.read()
                return response.status

        return list(await asyncio.gather(*(get(n) for n in range(1, count + 1))))


async def test_nonce_servers_under_concurrency(
    loopback_digest: tuple[URL, _LoopbackDigest, list[int]],
) -> None:
    """Retries racing for a nonce's two uses all get through (shared nonces: the lane).

    aiohttp's middleware alone retries once and loses about half of these
    pages to a server that shares its nonces.
    """
    base, digest, _ = loopback_digest
    assert await _pages(base, 50, concurrency=16) == [200] * 50
    assert len({nonce for nonce, _ in digest.signed}) > 10


@pytest.mark.parametrize("loopback_digest", ["fresh"], indirect=True)
async def test_no_nonce_count_is_sent_twice(
    loopback_digest: tuple[URL, _LoopbackDigest, list[int]],
) -> None:
    """With a fresh nonce per challenge no (nonce, nc) pair repeats: no replay to refuse.

    Not asserted for shared nonces: see the note on replays in ``aiokeys._digest``.
    """
    base, digest, _ = loopback_digest
    assert await _pages(base, 50, concurrency=16) == [200] * 50
    assert len(digest.signed) == len(set(digest.signed))


async def test_endless_stale_answers_are_bounded(
    loopback_digest: tuple[URL, _LoopbackDigest, list[int]],
) -> None:
    """A server that says stale=true forever gets a bounded number of tries, then the 401."""
    base, digest, statuses = loopback_digest
    digest.always_stale = True

    assert await _pages(base, 1, concurrency=1) == [401]
    assert len(statuses) == 2 * (1 + _FREE_RESENDS + _LANE_RESENDS)


async def test_nonces_expired_mid_listing_are_renewed_quietly() -> None:
    """Every nonce forgotten under a running listing: stale answers, no error."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        org_id = atlas.add_org()
        seeded = atlas.seed_keys(org_id, 60, seed=6)
        seen: list[str | None] = []
        async with Client(
            auth=DigestAuth(PUB, PRIV), base_url=atlas.url, concurrency=8
        ) as client:
            async for key in client.org_keys(org_id, page_size=2):
                seen.append(key.api_key_id)
                if len(seen) in (10, 30):
                    atlas.expire_nonces()

        assert seen == [k["apiKeyId"] for k in seeded]
        assert sum(r.status == 401 for r in atlas.requests) >= 2

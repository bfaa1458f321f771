"""Service accounts against the simulator: one token, renewal, retries, revocation."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import traceback
from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from aiokeys import (
    AuthenticationError,
    Client,
    RateLimitError,
    ServerError,
    ServiceAccount,
)
from aiokeys._auth import AuthContext, BoundAuth
from aiokeys._oauth import _OAuthMiddleware, renew_pause
from aiokeys._retry import RetryPolicy
from aiokeys.testing import FakeAtlas

CID, SECRET = "mdb_sa_id_test", "mdb_sa_sk_5e8d0c7b"
ACCEPT = {"Accept": "application/vnd.atlas.2025-03-12+json"}
FAST = RetryPolicy(max_tries=3, base=0.01, cap=0.02)
ORG = "0123456789abcdef01234567"


@pytest.fixture
async def atlas() -> AsyncIterator[FakeAtlas]:
    async with FakeAtlas() as atlas:
        atlas.add_service_account(CID, SECRET)
        yield atlas


def _keys_url(atlas: FakeAtlas, org_id: str) -> URL:
    return URL(atlas.url) / "api/atlas/v2/orgs" / org_id / "aiModelApiKeys"


def _bind(
    auth: ServiceAccount, session: aiohttp.ClientSession, base: str | URL
) -> BoundAuth:
    return auth.bind(AuthContext(session=session, base_url=URL(base), retry=FAST))


def _token_posts(atlas: FakeAtlas) -> list[int]:
    return [r.status for r in atlas.requests if r.path == "/api/oauth/token"]


async def test_fifty_concurrent_first_requests_mint_one_token(atlas: FakeAtlas) -> None:
    """Single flight: everyone waits for the one mint in progress."""
    org_id = atlas.add_org()
    url = _keys_url(atlas, org_id)
    async with aiohttp.ClientSession(headers=ACCEPT) as session:
        bound = _bind(ServiceAccount(CID, SECRET), session, atlas.url)

        async def get() -> int:
            async with session.get(url, middlewares=(bound,)) as response:
                return response.status

        statuses = await asyncio.gather(*(get() for _ in range(50)))

    assert statuses == [200] * 50
    assert atlas.tokens_minted == 1


async def test_listing_forty_pages_mints_exactly_one_token(atlas: FakeAtlas) -> None:
    """40 pages at concurrency 8 share one token."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 80, seed=7)
    async with Client(
        auth=ServiceAccount(CID, SECRET), base_url=atlas.url, concurrency=8
    ) as client:
        keys = [key async for key in client.org_keys(org_id, page_size=2)]

    assert len(keys) == 80
    assert atlas.tokens_minted == 1
    assert all(r.auth_scheme == "Bearer" for r in atlas.requests if r.page_num)


async def test_expiry_mid_listing_re_mints_exactly_once(atlas: FakeAtlas) -> None:
    """Tokens die under a running listing: one new token, no error, no gap."""
    org_id = atlas.add_org()
    seeded = atlas.seed_keys(org_id, 80, seed=8)
    seen: list[str | None] = []
    async with Client(
        auth=ServiceAccount(CID, SECRET), base_url=atlas.url, concurrency=8
    ) as client:
        async for key in client.org_keys(org_id, page_size=2):
            seen.append(key.api_key_id)
            if len(seen) == 20:
                atlas.expire_tokens()

    assert seen == [k["apiKeyId"] for k in seeded]
    assert atlas.tokens_minted == 2
    assert any(r.status == 401 for r in atlas.requests)


@pytest.fixture
async def refusing_server() -> AsyncIterator[tuple[URL, list[str]]]:
    """A server that mints tokens but refuses every one of them with 401."""
    seen: list[str] = []

    async def token(_: web.Request) -> web.Response:
        seen.append("mint")
        return web.json_response({"access_token": f"t{len(seen)}", "expires_in": 3600})

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response(
            {"error": 401, "errorCode": "UNAUTHORIZED"}, status=401
        )

    app = web.Application()
    app.router.add_post("/api/oauth/token", token)
    app.router.add_get("/page", page)
    async with TestServer(app, host="127.0.0.1") as server:
        yield URL(f"http://127.0.0.1:{server.port}"), seen


async def test_a_second_401_is_let_through(
    refusing_server: tuple[URL, list[str]],
) -> None:
    """Re-mint once and retry once; a token rejected again is returned as the 401."""
    base, seen = refusing_server
    async with aiohttp.ClientSession() as session:
        bound = _bind(ServiceAccount(CID, SECRET), session, base)
        async with session.get(base / "page", middlewares=(bound,)) as response:
            assert response.status == 401
            assert (await response.json())["errorCode"] == "UNAUTHORIZED"

    assert seen == ["mint", "Bearer t1", "mint", "Bearer t3"]


async def test_wrong_secret_fails_at_the_token_endpoint_without_retry(
    atlas: FakeAtlas,
) -> None:
    """A refused client is final: one token request, an AuthenticationError."""
    org_id = atlas.add_org()
    async with Client(
        auth=ServiceAccount(CID, "wrong"), base_url=atlas.url, retry=FAST
    ) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.org_keys_page(org_id)

    assert "/api/oauth/token" in str(info.value)
    assert _token_posts(atlas) == [401]
    assert atlas.tokens_minted == 0


async def test_token_endpoint_429_follows_the_retry_policy() -> None:
    """An empty token bucket is retried max_tries times, then RateLimitError."""
    async with FakeAtlas(token_rate_limit=1) as atlas:
        atlas.add_service_account(CID, SECRET)
        org_id = atlas.add_org()
        async with Client(
            auth=ServiceAccount(CID, SECRET), base_url=atlas.url
        ) as first:
            await first.org_keys_page(org_id)
        async with Client(
            auth=ServiceAccount(CID, SECRET), base_url=atlas.url, retry=FAST
        ) as second:
            with pytest.raises(RateLimitError) as info:
                await second.org_keys_page(org_id)

        assert info.value.retry_after is not None
        assert "/api/oauth/token" in info.value.url
        assert _token_posts(atlas) == [200, 429, 429, 429]


@attrs.define
class TokenScript:
    """What the scripted token endpoint answers, and what reached the server."""

    statuses: list[int] = attrs.field(factory=list)
    delay: float = 0.0
    seen: list[str] = attrs.field(factory=list)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[URL, TokenScript]]:
    """A token endpoint answering the scripted statuses first, then tokens."""
    script = TokenScript()

    async def token(_: web.Request) -> web.Response:
        script.seen.append("token")
        await asyncio.sleep(script.delay)
        if script.statuses:
            status = script.statuses.pop(0)
            body = {"error": status, "errorCode": "X"}
            headers = {"Retry-After": "0"}
            return web.json_response(body, status=status, headers=headers)
        return web.json_response(
            {"access_token": f"t{len(script.seen)}", "expires_in": 3600}
        )

    async def page(request: web.Request) -> web.Response:
        script.seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"results": [], "links": [], "totalCount": 0})

    app = web.Application()
    app.router.add_post("/api/oauth/token", token)
    app.router.add_get("/api/atlas/v2/orgs/{org}/aiModelApiKeys", page)
    async with TestServer(app, host="127.0.0.1") as server:
        yield URL(f"http://127.0.0.1:{server.port}"), script


async def test_token_endpoint_recovers_after_429_and_503(
    scripted: tuple[URL, TokenScript],
) -> None:
    """Transient token endpoint failures are retried by the policy; the page then loads."""
    base, script = scripted
    script.statuses = [429, 503]
    async with Client(
        auth=ServiceAccount(CID, SECRET), base_url=str(base), retry=FAST
    ) as client:
        page = await client.org_keys_page(ORG)

    assert page.items == ()
    assert script.seen == ["token"] * 3 + ["Bearer t3"]


async def test_a_failed_mint_is_shared_not_repeated(
    scripted: tuple[URL, TokenScript],
) -> None:
    """Eight requests waiting on one failing mint all get its error: one token request."""
    base, script = scripted
    script.statuses, script.delay = [503], 0.05
    async with aiohttp.ClientSession() as session:
        bound = _bind(ServiceAccount(CID, SECRET), session, base)

        async def get() -> int:
            async with session.get(
                base / "api/atlas/v2/orgs" / ORG / "aiModelApiKeys",
                middlewares=(bound,),
            ) as r:
                return r.status

        results = await asyncio.gather(
            *(get() for _ in range(8)), return_exceptions=True
        )

    assert all(isinstance(r, ServerError) for r in results), results
    assert len({id(r) for r in results}) == 8  # each its own copy, to annotate
    assert {str(r) for r in results} == {str(results[0])}
    assert script.seen == ["token"]


async def test_a_cancelled_waiter_leaves_the_mint_to_the_others(
    scripted: tuple[URL, TokenScript],
) -> None:
    """The first request is cancelled mid-mint; the second still gets that token."""
    base, script = scripted
    script.delay = 0.2
    url = base / "api/atlas/v2/orgs" / ORG / "aiModelApiKeys"
    async with aiohttp.ClientSession() as session:
        bound = _bind(ServiceAccount(CID, SECRET), session, base)

        async def get() -> int:
            async with session.get(url, middlewares=(bound,)) as response:
                return response.status

        first = asyncio.ensure_future(get())
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(get())
        await asyncio.sleep(0.05)
        first.cancel()
        assert await second == 200
        assert first.cancelled()

    assert script.seen == ["token", "Bearer t1"]


async def test_a_token_is_renewed_before_it_is_due(atlas: FakeAtlas) -> None:
    """Past its renewal time a token is replaced before use, without a 401 first."""
    org_id = atlas.add_org()
    url = _keys_url(atlas, org_id)
    async with aiohttp.ClientSession(headers=ACCEPT) as session:
        bound = _bind(ServiceAccount(CID, SECRET), session, atlas.url)
        assert isinstance(bound, _OAuthMiddleware)
        async with session.get(url, middlewares=(bound,)) as response:
            assert response.status == 200
        assert bound.token is not None
        # Minted for an hour: renewed a minute early (loose bounds, no timing).
        assert 3400 < bound.token.renew_at - time.monotonic() <= 3540
        bound.token = attrs.evolve(bound.token, renew_at=time.monotonic() - 1)
        async with session.get(url, middlewares=(bound,)) as response:
            assert response.status == 200

    assert atlas.tokens_minted == 2
    assert [r.status for r in atlas.requests if r.page_num] == [200, 200]


async def test_revoke_on_close(atlas: FakeAtlas) -> None:
    """Closing revokes the token; the old token is refused afterwards."""
    org_id = atlas.add_org()
    url = _keys_url(atlas, org_id)
    async with aiohttp.ClientSession(headers=ACCEPT) as session:
        bound = _bind(
            ServiceAccount(CID, SECRET, revoke_on_close=True), session, atlas.url
        )
        async with session.get(url, middlewares=(bound,)) as response:
            assert response.status == 200
        assert isinstance(bound, _OAuthMiddleware)
        assert bound.token is not None
        token = bound.token.value

        await bound.aclose()

        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 401
    revokes = [r.status for r in atlas.requests if r.path == "/api/oauth/revoke"]
    assert revokes == [200]


async def test_no_revoke_by_default(atlas: FakeAtlas) -> None:
    """Without revoke_on_close the token is left to expire."""
    org_id = atlas.add_org()
    async with Client(auth=ServiceAccount(CID, SECRET), base_url=atlas.url) as client:
        await client.org_keys_page(org_id)

    assert not [r for r in atlas.requests if r.path == "/api/oauth/revoke"]


async def test_client_close_revokes(atlas: FakeAtlas) -> None:
    """Client.aclose() reaches the credential's revocation before the session closes."""
    org_id = atlas.add_org()
    auth = ServiceAccount(CID, SECRET, revoke_on_close=True)
    async with Client(auth=auth, base_url=atlas.url) as client:
        await client.org_keys_page(org_id)

    revokes = [r.status for r in atlas.requests if r.path == "/api/oauth/revoke"]
    assert revokes == [200]


async def test_a_failed_revocation_is_logged_not_raised(
    scripted: tuple[URL, TokenScript], caplog: pytest.LogCaptureFixture
) -> None:
    """No revoke endpoint: closing still succeeds, with one warning and no secret."""
    base, _ = scripted
    auth = ServiceAccount(CID, SECRET, revoke_on_close=True)
    async with Client(auth=auth, base_url=str(base)) as client:
        await client.org_keys_page(ORG)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.name for r in warnings] == ["aiokeys._oauth"]
    assert "404" in warnings[0].getMessage()
    assert SECRET not in warnings[0].getMessage()


async def test_token_errors_ignore_a_raising_session_and_chain_no_basic_header(
    scripted: tuple[URL, TokenScript],
) -> None:
    """A session built with ``raise_for_status=True`` changes nothing: a refused
    client is an AuthenticationError, and no exception in its chain holds the
    Basic header aiohttp's own error would keep in ``request_info``."""
    base, script = scripted
    script.statuses = [401]
    basic = base64.b64encode(f"{CID}:{SECRET}".encode()).decode()
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        bound = _bind(ServiceAccount(CID, SECRET), session, base)
        with pytest.raises(AuthenticationError) as info:
            async with session.get(base / "page", middlewares=(bound,)):
                pass

    texts = ["".join(traceback.format_exception(info.value))]
    cause: BaseException | None = info.value
    while cause is not None:
        texts.append(repr(cause))
        cause = cause.__cause__ or cause.__context__
    assert not [t for t in texts if basic in t or SECRET in t]
    assert script.seen == ["token"]


@attrs.define
class Kept:
    """An ``Auth`` that keeps the middleware it bound, to move its token's clock."""

    inner: ServiceAccount
    bound: list[_OAuthMiddleware] = attrs.field(factory=list)

    def bind(self, context: AuthContext) -> BoundAuth:
        bound = self.inner.bind(context)
        assert isinstance(bound, _OAuthMiddleware)
        self.bound.append(bound)
        return bound

    def age(self, *, renew: bool = True, expire: bool = False) -> None:
        """Make the token due for renewal, and optionally expired (no sleeping)."""
        token = self.bound[0].token
        assert token is not None
        now = time.monotonic()
        self.bound[0].token = attrs.evolve(
            token,
            renew_at=now - 1 if renew else token.renew_at,
            expires_at=now - 0.5 if expire else token.expires_at,
        )


async def test_a_rate_limited_early_renewal_keeps_the_listing_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Inside the renewal margin a 429 from the token endpoint is not an error:
    the current token is used on, one warning is logged, and the renewal waits
    instead of being tried on every request. Once the token has expired, the
    429 surfaces."""
    async with FakeAtlas(token_rate_limit=1) as atlas:
        atlas.add_service_account(CID, SECRET)
        org_id = atlas.add_org()
        atlas.seed_keys(org_id, 6, seed=3)
        kept = Kept(ServiceAccount(CID, SECRET))
        async with Client(auth=kept, base_url=atlas.url, retry=FAST) as client:
            assert len([k async for k in client.org_keys(org_id, page_size=2)]) == 6
            kept.age()
            with caplog.at_level(logging.INFO, logger="aiokeys"):
                keys = [k async for k in client.org_keys(org_id, page_size=2)]
                await client.org_keys_page(org_id)
            assert len(keys) == 6
            assert _token_posts(atlas) == [200, 429]

            kept.age(expire=True)
            with pytest.raises(RateLimitError):
                await client.org_keys_page(org_id)

    assert atlas.tokens_minted == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["aiokeys._oauth"]
    assert "RateLimitError 429" in warnings[0].getMessage()
    token = kept.bound[0].retired[-1] if kept.bound[0].retired else ""
    for record in warnings:
        assert SECRET not in record.getMessage()
        assert not token or token not in record.getMessage()


async def test_a_failed_early_renewal_is_tried_again_later(
    scripted: tuple[URL, TokenScript],
) -> None:
    """A 503 at renewal keeps the old token until the pause is over; then it renews."""
    base, script = scripted
    kept = Kept(ServiceAccount(CID, SECRET))
    async with Client(auth=kept, base_url=str(base), retry=FAST) as client:
        await client.org_keys_page(ORG)
        script.statuses = [503]
        kept.age()
        await client.org_keys_page(ORG)
        await client.org_keys_page(ORG)
        token = kept.bound[0].token
        assert token is not None
        assert token.renew_at > time.monotonic()  # a pause, not every request
        kept.age()
        await client.org_keys_page(ORG)

    assert script.seen == [
        "token",
        "Bearer t1",
        "token",
        "Bearer t1",
        "Bearer t1",
        "token",
        "Bearer t6",
    ]


async def test_a_refused_renewal_is_not_papered_over(
    scripted: tuple[URL, TokenScript],
) -> None:
    """A 401 at renewal (secret revoked) is final even while the token lives."""
    base, script = scripted
    kept = Kept(ServiceAccount(CID, SECRET))
    async with Client(auth=kept, base_url=str(base), retry=FAST) as client:
        await client.org_keys_page(ORG)
        script.statuses = [401]
        kept.age()
        with pytest.raises(AuthenticationError):
            await client.org_keys_page(ORG)


def test_renew_pause() -> None:
    """A quarter of the life left, at least a second, at least Retry-After."""
    assert renew_pause(60.0, ServerError(status=503, method="POST", url="u")) == 15.0
    assert renew_pause(0.2, TimeoutError()) == 1.0
    limited = RateLimitError(status=429, method="POST", url="u", retry_after=30.0)
    assert renew_pause(60.0, limited) == 30.0

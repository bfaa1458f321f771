"""Requests stay on their origin, and 401 bodies never pin a connection.

Two small aiohttp apps on loopback: ``home`` plays the base URL (it challenges,
mints tokens and redirects), ``elsewhere`` records every request that reaches
it. Different ports make different origins. Through the transport, a redirect
elsewhere is refused before anything is sent there; the credential middlewares
on their own still never sign a request to another origin.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Callable

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from aiokeys import BearerToken, DigestAuth, ServiceAccount, UnexpectedResponseError
from aiokeys._auth import Auth, AuthContext, BoundAuth
from aiokeys._retry import RetryPolicy
from aiokeys._transport import Transport

FAST = RetryPolicy(max_tries=2, base=0.001, cap=0.001)

CREDENTIALS: dict[str, Auth] = {
    "digest": DigestAuth("pub", "priv"),
    "service-account": ServiceAccount("cid", "csecret"),
    "bearer": BearerToken("tok"),
}


@attrs.define
class Servers:
    home: TestServer
    elsewhere: TestServer
    seen_elsewhere: list[str | None]
    seen_home: list[str | None]
    domain: str = ""

    def url(self, server: TestServer, path: str) -> URL:
        return URL(f"http://127.0.0.1:{server.port}{path}")


def _home_app(servers: Servers) -> web.Application:
    async def token(_: web.Request) -> web.Response:
        return web.json_response({"access_token": "minted", "expires_in": 3600})

    async def hop(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            challenge = (
                f'Digest realm="r", nonce="n1", qop="auth", opaque="o"{servers.domain}'
            )
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        target = request.query["to"]
        raise web.HTTPFound(target)

    async def echo(request: web.Request) -> web.Response:
        servers.seen_home.append(request.headers.get("Authorization"))
        return web.json_response({"where": "home"})

    async def loop(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            challenge = 'Digest realm="r", nonce="n1", qop="auth", opaque="o"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        raise web.HTTPFound("/loop")

    app = web.Application()
    app.router.add_post("/api/oauth/token", token)
    app.router.add_get("/hop", hop)
    app.router.add_get("/echo", echo)
    app.router.add_get("/loop", loop)
    return app


def _elsewhere_app(servers: Servers) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        servers.seen_elsewhere.append(request.headers.get("Authorization"))
        return web.json_response({"where": "elsewhere"})

    app = web.Application()
    app.router.add_get("/echo", echo)
    return app


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    holder = Servers(
        home=None,  # type: ignore[arg-type]
        elsewhere=None,  # type: ignore[arg-type]
        seen_elsewhere=[],
        seen_home=[],
    )
    holder.home = TestServer(_home_app(holder), host="127.0.0.1")
    holder.elsewhere = TestServer(_elsewhere_app(holder), host="127.0.0.1")
    async with holder.home, holder.elsewhere:
        yield holder


async def _get(
    session: aiohttp.ClientSession, bound: BoundAuth, url: URL
) -> tuple[int, str]:
    async with session.get(url, middlewares=(bound,)) as response:
        return response.status, (await response.json())["where"]


def _bind(auth: Auth, session: aiohttp.ClientSession, servers: Servers) -> BoundAuth:
    base = servers.url(servers.home, "")
    return auth.bind(AuthContext(session=session, base_url=base, retry=RetryPolicy()))


def _transport(
    bound: BoundAuth, session: aiohttp.ClientSession, base: URL
) -> Transport:
    return Transport(
        session=session,
        base_url=base,
        api_version="2025-03-12",
        auth=bound,
        retry=FAST,
        concurrency=2,
    )


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
async def test_redirect_to_another_origin_is_not_followed(
    servers: Servers, kind: str
) -> None:
    """A 302 off the base URL's origin sends nothing there and raises, naming only
    the target origin; a same-origin hop is followed and signed."""
    base = servers.url(servers.home, "")
    away = servers.url(servers.elsewhere, "/echo").with_query(marker="planted")
    back = servers.url(servers.home, "/echo")
    async with aiohttp.ClientSession() as session:
        bound = _bind(CREDENTIALS[kind], session, servers)
        transport = _transport(bound, session, base)
        with pytest.raises(UnexpectedResponseError) as info:
            await transport.get_json("/hop", {"to": str(away)}, scope="s", page_num=3)
        same = await transport.get_json("/hop", {"to": str(back)}, scope="s")
        await bound.aclose()

    assert servers.seen_elsewhere == []
    message = str(info.value)
    assert f"another origin http://127.0.0.1:{servers.elsewhere.port};" in message
    assert "planted" not in message
    assert "/echo" not in message
    assert info.value.page_num == 3
    assert same == {"where": "home"}
    # Middlewares run again on the redirect hop: the same-origin target is signed.
    assert len(servers.seen_home) == 1
    assert servers.seen_home[0] is not None


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
async def test_credential_alone_sends_no_credentials_elsewhere(
    servers: Servers, kind: str
) -> None:
    """Without the transport's guard, a redirect elsewhere reaches it unsigned."""
    async with aiohttp.ClientSession() as session:
        bound = _bind(CREDENTIALS[kind], session, servers)
        away = servers.url(servers.elsewhere, "/echo")
        hop = servers.url(servers.home, "/hop").with_query(to=str(away))
        assert await _get(session, bound, hop) == (200, "elsewhere")
        await bound.aclose()

    assert servers.seen_elsewhere == [None]


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
async def test_redirect_loop_chains_no_credentials(servers: Servers, kind: str) -> None:
    """TooManyRedirects is named, and what is chained carries no request headers.

    aiohttp's own exception keeps ``request_info.headers`` with the
    ``Authorization`` of the first hop, and its ``repr`` shows them.
    """
    base = servers.url(servers.home, "")
    async with aiohttp.ClientSession() as session:
        bound = _bind(CREDENTIALS[kind], session, servers)
        transport = _transport(bound, session, base)
        with pytest.raises(UnexpectedResponseError) as info:
            await transport.get_json("/loop", scope="s")
        await bound.aclose()

    error = info.value
    assert "TooManyRedirects" in str(error)
    assert error.__context__ is None or error.__suppress_context__
    chain = []
    cause: BaseException | None = error
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    texts = [repr(c) for c in chain] + ["".join(traceback.format_exception(error))]
    for c in chain:
        info_ = getattr(c, "request_info", None)
        texts.append(repr(getattr(info_, "headers", "")))
        texts += [repr(h.request_info) for h in getattr(c, "history", ())]
    assert not [t for t in texts if "Authorization" in t or "minted" in t]
    assert isinstance(error.__cause__, aiohttp.TooManyRedirects)


async def test_digest_domain_directive_cannot_widen_the_origin(
    servers: Servers,
) -> None:
    """A challenge naming another origin in ``domain`` still gets no digest sent there.

    aiohttp's middleware alone would sign requests to any origin a challenge
    lists; the wrapper's origin gate is what keeps this test passing. Through
    the transport the redirect is refused; a direct request is sent unsigned.
    """
    servers.domain = f', domain="/ http://127.0.0.1:{servers.elsewhere.port}/"'
    async with aiohttp.ClientSession() as session:
        bound = _bind(CREDENTIALS["digest"], session, servers)
        transport = _transport(bound, session, servers.url(servers.home, ""))
        away = servers.url(servers.elsewhere, "/echo")
        with pytest.raises(UnexpectedResponseError, match="another origin"):
            await transport.get_json("/hop", {"to": str(away)}, scope="s")
        assert servers.seen_elsewhere == []

        assert await _get(session, bound, away) == (200, "elsewhere")

    assert servers.seen_elsewhere == [None]


async def test_direct_request_elsewhere_is_stripped(servers: Servers) -> None:
    """Even a header someone put there is removed before another origin sees it."""
    async with aiohttp.ClientSession() as session:
        bound = _bind(CREDENTIALS["bearer"], session, servers)
        away = servers.url(servers.elsewhere, "/echo")
        async with session.get(
            away, headers={"Authorization": "Bearer leaked"}, middlewares=(bound,)
        ) as response:
            assert response.status == 200

    assert servers.seen_elsewhere == [None]


@pytest.fixture
async def big_challenge() -> AsyncIterator[Callable[[], URL]]:
    """A server whose 401 carries a body far larger than a socket buffer."""
    body = b"x" * 4_000_000

    async def page(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            challenge = 'Digest realm="r", nonce="n1", qop="auth"'
            return web.Response(
                status=401, body=body, headers={"WWW-Authenticate": challenge}
            )
        return web.json_response({"where": "ok"})

    app = web.Application()
    app.router.add_get("/page", page)
    async with TestServer(app, host="127.0.0.1") as server:
        yield lambda: URL(f"http://127.0.0.1:{server.port}")


async def test_digest_challenge_body_is_released(
    big_challenge: Callable[[], URL],
) -> None:
    """With one connection allowed, the signed retry still gets it.

    aiohttp's middleware alone keeps the big 401 holding the only connection
    while it sends the retry, and waits forever.
    """
    base = big_challenge()
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        bound = DigestAuth("pub", "priv").bind(
            AuthContext(session=session, base_url=base, retry=RetryPolicy())
        )
        result = await asyncio.wait_for(_get(session, bound, base / "page"), 10)

    assert result == (200, "ok")

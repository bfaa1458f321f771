"""Planted secrets: none may surface in a log record, exception, repr or CLI output.

Every credential and every key carries a unique, greppable secret. The test
drives listings through every kind of credential, through stale nonces, token
expiry, revocation, retries and failures, with every logger at DEBUG, then
searches everything a user could see.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import aiokeys
from aiokeys import (
    AiokeysError,
    BearerToken,
    Client,
    DigestAuth,
    RetryPolicy,
    ServiceAccount,
    auth_from_env,
)
from aiokeys._auth import AuthContext, BoundAuth
from aiokeys._oauth import _OAuthMiddleware
from aiokeys.testing import FakeAtlas, Fault

PUB, PRIV = "PUBPLANTED", "PRIV-planted-7f3a1b"
CID, CSECRET = "mdb_sa_id_planted", "CSECRET-planted-2d9e4c"
TOKEN = "TOKEN-planted-8b6f0a"
FAST = RetryPolicy(max_tries=2, base=0.01, cap=0.02)
MEDIA = "application/vnd.atlas.2025-03-12+json"


@attrs.define
class Recording:
    """An ``Auth`` that keeps what it bound, so the minted token can be planted too."""

    inner: ServiceAccount
    bound: list[BoundAuth] = attrs.field(factory=list)

    def bind(self, context: AuthContext) -> BoundAuth:
        bound = self.inner.bind(context)
        self.bound.append(bound)
        return bound


@attrs.define
class Evidence:
    secrets: set[str] = attrs.field(factory=set)
    texts: list[str] = attrs.field(factory=list)

    def plant(self, *values: str) -> None:
        self.secrets.update(values)

    def exception(self, exc: BaseException) -> None:
        self.texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]

    async def expect_error(self, call: Awaitable[Any]) -> None:
        with pytest.raises(AiokeysError) as info:
            await call
        self.exception(info.value)


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    texts = []
    for record in records:
        texts += [record.getMessage(), repr(record.args), repr(record.msg)]
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
        texts += [record.exc_text or "", record.stack_info or ""]
    return texts


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


async def _list(client: Client, org_id: str, evidence: Evidence) -> None:
    stream = client.org_keys(org_id, page_size=3)
    async with stream:
        keys = [key async for key in stream]
        evidence.texts += [repr(stream), repr(stream.progress)]
    evidence.texts += [repr(keys), str(keys)]
    assert keys


async def _exercise(atlas: FakeAtlas, org_id: str, evidence: Evidence) -> None:
    """Every credential, success and failure, with secrets flowing everywhere."""
    url = atlas.url
    atlas.add_fault(Fault(kind="status", status=503, page_num=2, times=1))
    digest = DigestAuth(PUB, PRIV)
    evidence.texts += [repr(digest), str(digest), repr(auth_from_env(_env(atlas)))]
    async with Client(auth=digest, base_url=url, concurrency=8) as client:
        evidence.texts.append(repr(client))
        await _list(client, org_id, evidence)

    recording = Recording(ServiceAccount(CID, CSECRET, revoke_on_close=True))
    async with Client(auth=recording, base_url=url, concurrency=8) as client:
        await _list(client, org_id, evidence)
        atlas.expire_tokens()
        await _list(client, org_id, evidence)
        bound = recording.bound[0]
        assert isinstance(bound, _OAuthMiddleware)
        assert bound.token is not None
        evidence.plant(bound.token.value)
        evidence.texts += [repr(bound), repr(bound.token), repr(recording.inner)]

    async with Client(auth=BearerToken(TOKEN), base_url=url) as client:
        await _list(client, org_id, evidence)
    await _failures(atlas, org_id, evidence)


async def _failures(atlas: FakeAtlas, org_id: str, evidence: Evidence) -> None:
    url = atlas.url
    wrong: list[aiokeys.Auth] = [
        DigestAuth(PUB, PRIV + "-wrong"),
        ServiceAccount(CID, CSECRET + "-wrong"),
        BearerToken(TOKEN + "-wrong"),
    ]
    evidence.plant(PRIV + "-wrong", CSECRET + "-wrong", TOKEN + "-wrong")
    for auth in wrong:
        async with Client(auth=auth, base_url=url, retry=FAST) as client:
            await evidence.expect_error(_list(client, org_id, evidence))
    denied = atlas.add_org()
    atlas.deny(PUB, denied)
    async with Client(auth=DigestAuth(PUB, PRIV), base_url=url, retry=FAST) as client:
        await evidence.expect_error(client.org_keys_page(denied))
    for build in (
        lambda: DigestAuth(PUB, PRIV + "\n"),
        lambda: ServiceAccount(CID + ":", CSECRET),
        lambda: auth_from_env({"MONGODB_ATLAS_CLIENT_SECRET": CSECRET}),
    ):
        try:
            build()
        except AiokeysError as exc:
            evidence.exception(exc)


def _env(atlas: FakeAtlas, private: str = PRIV) -> dict[str, str]:
    return {
        "MONGODB_ATLAS_PUBLIC_API_KEY": PUB,
        "MONGODB_ATLAS_PRIVATE_API_KEY": private,
        "MONGODB_ATLAS_BASE_URL": atlas.url,
    }


async def _cli(atlas: FakeAtlas, org_id: str, evidence: Evidence) -> None:
    """``aiokeys list --debug``, with good and with wrong credentials."""
    for private in (PRIV, PRIV + "-wrong"):
        env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith("MONGODB_ATLAS")
            },
            "MONGODB_ATLAS_PUBLIC_API_KEY": PUB,
            "MONGODB_ATLAS_PRIVATE_API_KEY": private,
            "MONGODB_ATLAS_BASE_URL": atlas.url,
            "COLUMNS": "200",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiokeys", "list", org_id, "--debug", "--page-size", "4",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        evidence.texts += [out.decode(), err.decode()]
        assert process.returncode == (0 if private == PRIV else 3), err.decode()[-500:]


KEY_SECRETS = [f"al-KEYSECRET-planted-{n:02d}" for n in range(7)]
ORG = "0123456789abcdef01234567"


def _key_json(n: int) -> dict[str, Any]:
    return {
        "apiKeyId": f"key{n:021d}",
        "name": f"key {n}",
        "status": "ACTIVE",
        "createdAt": "2026-01-15T16:47:49.855000+00:00",
        "maskedSecret": f"al-****{n:04d}",
        "secret": KEY_SECRETS[n],
    }


@pytest.fixture
async def secret_lister() -> AsyncIterator[str]:
    """An Atlas-shaped list whose keys carry their secrets, as the published example does."""

    async def keys(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            body = {"error": 401, "errorCode": "UNAUTHORIZED", "reason": "Unauthorized"}
            return web.json_response(body, status=401)
        size = int(request.query.get("itemsPerPage", "100"))
        start = (int(request.query.get("pageNum", "1")) - 1) * size
        results = [
            _key_json(n) for n in range(start, min(start + size, len(KEY_SECRETS)))
        ]
        page = {"links": [], "results": results, "totalCount": len(KEY_SECRETS)}
        return web.json_response(page, content_type=MEDIA)

    async def one(request: web.Request) -> web.Response:
        return web.json_response(_key_json(0), content_type=MEDIA)

    app = web.Application()
    app.router.add_get("/api/atlas/v2/orgs/{org}/aiModelApiKeys", keys)
    app.router.add_get("/api/atlas/v2/orgs/{org}/aiModelApiKeys/{key}", one)
    async with TestServer(app, host="127.0.0.1") as server:
        yield f"http://127.0.0.1:{server.port}"


async def _listed_secrets(base_url: str, evidence: Evidence) -> None:
    """Keys that carry ``secret`` through the client, their reprs, and the CLI."""
    async with Client(auth=BearerToken(TOKEN), base_url=base_url) as client:
        stream = client.org_keys(ORG, page_size=3)
        keys = [key async for key in stream]
        one = await client.get_org_key(ORG, "key" + "0" * 21)
        evidence.texts += [repr(keys), str(keys), repr(one), str(one), repr(stream)]
    assert sorted(key.secret or "" for key in keys) == KEY_SECRETS
    assert one.secret == KEY_SECRETS[0]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MONGODB_ATLAS")},
        "MONGODB_ATLAS_ACCESS_TOKEN": TOKEN,
        "MONGODB_ATLAS_BASE_URL": base_url,
        "COLUMNS": "200",
    }
    for token, code in ((TOKEN, 0), (TOKEN + "-wrong", 3)):
        output = await _run_cli(
            ["list", ORG, "--debug"], {**env, "MONGODB_ATLAS_ACCESS_TOKEN": token}
        )
        evidence.texts += output[1:]
        assert output[0] == str(code), output[2][-500:]


async def _run_cli(args: list[str], env: dict[str, str]) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiokeys", *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return [str(process.returncode), out.decode(), err.decode()]


async def test_no_planted_secret_surfaces(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    secret_lister: str,
) -> None:
    """Logs (message, args, exc_info), exceptions, reprs and CLI output stay clean."""
    caplog.set_level(logging.DEBUG)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG:
            # No logger may hide a record from the search; restored afterwards.
            monkeypatch.setattr(logger, "level", logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)  # clears the loggers' level caches
    evidence = Evidence()
    evidence.plant(PRIV, CSECRET, TOKEN, _basic(CID, CSECRET), *KEY_SECRETS)
    async with FakeAtlas(nonce_max_uses=3) as atlas:
        atlas.add_digest_user(PUB, PRIV)
        atlas.add_service_account(CID, CSECRET)
        atlas.add_bearer_token(TOKEN)
        org_id = atlas.add_org()
        seeded = atlas.seed_keys(org_id, 12, groups=2, seed=11)
        evidence.plant(*(key["secret"] for key in seeded))

        await _exercise(atlas, org_id, evidence)
        await _cli(atlas, org_id, evidence)
        evidence.texts += [repr(r) for r in atlas.requests]
    await _listed_secrets(secret_lister, evidence)

    records = caplog.records
    assert any(
        r.levelno == logging.DEBUG and r.name.startswith("aiokeys") for r in records
    )
    everything = "\n".join(evidence.texts + _record_texts(records))
    leaked = sorted(secret for secret in evidence.secrets if secret in everything)
    assert leaked == []
    assert PUB in everything  # the search does see what it is given
    assert "al-****0003" in everything  # and the listed keys were searched


ECHO_HTML, ECHO_JSON = "0000000000000000000000a1", "0000000000000000000000b2"
ECHO_TOKEN = "TOKEN-echoed-5c1e9d7a3b"
ECHO_CID = "mdb_sa_id_echo"


def _echo_page(header: str, org: str, filler: int) -> web.Response:
    """A 502 proxy page or a 400 Atlas error that both repeat the header sent."""
    if org == ECHO_HTML:
        html = (
            f"<html><body><h1>502 Bad Gateway</h1><p>{'x' * filler} upstream "
            f"refused Authorization: {header}</p></body></html>"
        )
        return web.Response(status=502, text=html, content_type="text/html")
    body = {
        "error": 400,
        "errorCode": "INVALID_HEADER",
        "reason": f"Bad Request {header}",
        "detail": f"{'x' * filler} the header {header!r} is malformed",
        "parameters": [header, 7],
        "badRequestDetail": {
            "fields": [{"field": header, "description": f"echo of {header}"}]
        },
    }
    return web.json_response(body, status=400)


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[int]]]:
    """Mints ``ECHO_TOKEN``, then answers every page with an error echoing the header."""
    filler = [0]

    async def token(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if header == f"Basic {_basic(ECHO_CID, CSECRET)}":
            return _echo_page(header, ECHO_JSON, filler[0])
        return web.json_response({"access_token": ECHO_TOKEN, "expires_in": 3600})

    async def keys(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        return _echo_page(header, request.match_info["org"], filler[0])

    app = web.Application()
    app.router.add_post("/api/oauth/token", token)
    app.router.add_get("/api/atlas/v2/orgs/{org}/aiModelApiKeys", keys)
    async with TestServer(app, host="127.0.0.1") as server:
        yield f"http://127.0.0.1:{server.port}", filler


def _error_texts(exc: BaseException) -> list[str]:
    """Everything of an error a user, a log or an error reporter could show."""
    texts = ["".join(traceback.format_exception(exc))]
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current)]
        for name in ("detail", "reason", "parameters", "body_snippet", "url"):
            texts.append(repr(getattr(current, name, None)))
        texts.append(repr(getattr(current, "bad_request_fields", None)))
        current = current.__cause__ or current.__context__
    return texts


def _leaks(texts: list[str], secrets: list[str]) -> list[str]:
    """Secrets, or their first ten characters (a cut snippet), found in ``texts``."""
    everything = "\n".join(texts)
    return [s for s in secrets if s in everything or s[:10] in everything]


@pytest.mark.parametrize("filler", [0, 40, 52, 60])
@pytest.mark.parametrize("org", [ECHO_HTML, ECHO_JSON])
@pytest.mark.parametrize(
    ("auth", "secrets"),
    [
        (BearerToken(TOKEN), [TOKEN]),
        (ServiceAccount(CID, CSECRET), [ECHO_TOKEN, CSECRET, _basic(CID, CSECRET)]),
        (ServiceAccount(ECHO_CID, CSECRET), [CSECRET, _basic(ECHO_CID, CSECRET)]),
    ],
    ids=["bearer", "service-account", "token-endpoint"],
)
async def test_echoed_credentials_are_scrubbed_from_errors(
    echo_server: tuple[str, list[int]],
    caplog: pytest.LogCaptureFixture,
    auth: aiokeys.Auth,
    secrets: list[str],
    org: str,
    filler: int,
) -> None:
    """A 502 page or a 400 detail repeating ``Authorization`` raises without it.

    The fillers move the secret across the point where a snippet is cut.
    """
    base_url, fill = echo_server
    fill[0] = filler
    caplog.set_level(logging.DEBUG)
    async with Client(auth=auth, base_url=base_url, retry=FAST) as client:
        with pytest.raises(aiokeys.ApiError) as info:
            await client.org_keys_page(org)

    error = info.value
    assert error.status in (400, 502)
    assert "***" in str(error)
    texts = _error_texts(error) + _record_texts(caplog.records)
    assert _leaks(texts, secrets) == []


async def test_echoed_token_is_scrubbed_from_cli_output(
    echo_server: tuple[str, list[int]],
) -> None:
    """``aiokeys list --debug`` prints the scrubbed error, not the echoed token."""
    base_url, _ = echo_server
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MONGODB_ATLAS")},
        "MONGODB_ATLAS_ACCESS_TOKEN": TOKEN,
        "MONGODB_ATLAS_BASE_URL": base_url,
        "COLUMNS": "200",
    }
    code, out, err = await _run_cli(["list", ECHO_JSON, "--debug"], env)
    assert code != "0"
    assert "***" in out + err
    assert _leaks([out, err], [TOKEN]) == []

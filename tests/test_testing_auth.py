"""FakeAtlas authentication: Bearer, Digest (RFC 7616), OAuth, deny, the log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.client_middleware_digest_auth import parse_header_pairs
from hypothesis import given, settings
from hypothesis import strategies as st

from aiokeys.testing import FakeAtlas
from aiokeys.testing.pytest_plugin import FakeAtlasFactory

GA = "application/vnd.atlas.2025-03-12+json"
PUB, PRIV = "pubkey1", "priv-secret-value-1"
CLIENT, CLIENT_SECRET = "mdb_sa_id_123", "mdb_sa_sk_secret_value"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _keys_path(org_id: str) -> str:
    return f"/api/atlas/v2/orgs/{org_id}/aiModelApiKeys"


async def _get(
    http: aiohttp.ClientSession,
    atlas: FakeAtlas,
    path: str,
    authorization: str | None = None,
) -> aiohttp.ClientResponse:
    headers = {"Accept": GA}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with http.get(atlas.url + path, headers=headers) as resp:
        await resp.read()
        return resp


def _challenge(resp: aiohttp.ClientResponse, algorithm: str = "MD5") -> dict[str, str]:
    for value in resp.headers.getall("WWW-Authenticate"):
        if value.startswith("Digest"):
            pairs = parse_header_pairs(value.partition(" ")[2])
            if pairs["algorithm"] == algorithm:
                return pairs
    raise AssertionError(f"no {algorithm} challenge")


def _digest(
    challenge: dict[str, str],
    uri: str,
    *,
    nc: int = 1,
    password: str = PRIV,
    method: str = "GET",
) -> str:
    """An RFC 7616 qop=auth answer, computed independently of the server."""
    algorithm = challenge["algorithm"]
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    cnonce = "0a4f113b"
    ha1 = h(f"{PUB}:{challenge['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    response = h(f"{ha1}:{challenge['nonce']}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{PUB}", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}", '
        f'uri="{uri}", algorithm={algorithm}, response="{response}", opaque="{challenge["opaque"]}", '
        f'qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    )


async def test_no_credentials_is_401_with_digest_challenge(
    http: aiohttp.ClientSession,
) -> None:
    """Missing credentials: Atlas 401 JSON and an RFC 7616 challenge."""
    async with FakeAtlas() as atlas:
        org_id = atlas.add_org()
        resp = await _get(http, atlas, _keys_path(org_id))
        challenge = _challenge(resp)
    assert resp.status == 401
    assert challenge["qop"] == "auth"
    assert challenge["realm"]
    assert challenge["opaque"]
    assert challenge["stale"] == "false"
    assert resp.content_type == "application/json"


async def test_digest_off_has_no_challenge(http: aiohttp.ClientSession) -> None:
    """digest_algorithms=() sends no Digest challenge."""
    async with FakeAtlas(digest_algorithms=()) as atlas:
        resp = await _get(http, atlas, _keys_path(atlas.add_org()))
    assert resp.status == 401
    assert not any(
        v.startswith("Digest") for v in resp.headers.getall("WWW-Authenticate")
    )


@pytest.mark.parametrize("algorithms", [("MD5",), ("SHA-256",), ("SHA-256", "MD5")])
async def test_aiohttp_digest_middleware_handshake(algorithms: tuple[str, ...]) -> None:
    """aiohttp's own DigestAuthMiddleware authenticates, MD5 or SHA-256."""
    async with FakeAtlas(digest_algorithms=algorithms) as atlas:
        org_id = atlas.add_org()
        atlas.seed_keys(org_id, 3)
        atlas.add_digest_user(PUB, PRIV)
        middleware = aiohttp.DigestAuthMiddleware(PUB, PRIV)
        async with aiohttp.ClientSession(middlewares=(middleware,)) as http:
            for _ in range(3):
                async with http.get(
                    atlas.url + _keys_path(org_id), headers={"Accept": GA}
                ) as resp:
                    assert resp.status == 200
                    assert len((await resp.json(content_type=None))["results"]) == 3
        statuses = [r.status for r in atlas.requests]
    assert statuses == [401, 200, 200, 200]


async def test_sha256_challenge_comes_first_when_preferred(
    http: aiohttp.ClientSession,
) -> None:
    """Clients that read one header see the first configured algorithm."""
    async with FakeAtlas(digest_algorithms=("SHA-256", "MD5")) as atlas:
        resp = await _get(http, atlas, _keys_path(atlas.add_org()))
    assert "algorithm=SHA-256" in resp.headers["WWW-Authenticate"]


async def test_wrong_password_is_401_not_stale(http: aiohttp.ClientSession) -> None:
    """A wrong private key is refused with a fresh, non-stale challenge."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        first = await _get(http, atlas, path)
        resp = await _get(
            http, atlas, path, _digest(_challenge(first), path, password="wrong")
        )
    assert resp.status == 401
    assert _challenge(resp)["stale"] == "false"


async def test_digest_refuses_other_uri(http: aiohttp.ClientSession) -> None:
    """An answer computed for another request-target is refused."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        org_id = atlas.add_org()
        path = _keys_path(org_id)
        first = await _get(http, atlas, path)
        resp = await _get(
            http, atlas, path + "?pageNum=2", _digest(_challenge(first), path)
        )
    assert resp.status == 401


async def test_repeated_nonce_count_is_rejected(http: aiohttp.ClientSession) -> None:
    """The same nc for the same nonce is a replay; a new nc (even lower) passes."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        challenge = _challenge(await _get(http, atlas, path))
        ok = await _get(http, atlas, path, _digest(challenge, path, nc=2))
        replay = await _get(http, atlas, path, _digest(challenge, path, nc=2))
        out_of_order = await _get(http, atlas, path, _digest(challenge, path, nc=1))
    assert (ok.status, replay.status, out_of_order.status) == (200, 401, 200)
    assert _challenge(replay)["stale"] == "false"


async def test_nonce_stale_after_max_uses(http: aiohttp.ClientSession) -> None:
    """After nonce_max_uses answers, a correct answer gets 401 with stale=true."""
    async with FakeAtlas(nonce_max_uses=2) as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        challenge = _challenge(await _get(http, atlas, path))
        statuses = [
            (await _get(http, atlas, path, _digest(challenge, path, nc=nc))).status
            for nc in (1, 2)
        ]
        third = await _get(http, atlas, path, _digest(challenge, path, nc=3))
        fresh = _challenge(third)
        again = await _get(http, atlas, path, _digest(fresh, path))
    assert statuses == [200, 200]
    assert third.status == 401
    assert fresh["stale"] == "true"
    assert fresh["nonce"] != challenge["nonce"]
    assert again.status == 200


async def test_nonce_stale_after_max_age(http: aiohttp.ClientSession) -> None:
    """A nonce older than nonce_max_age is stale."""
    async with FakeAtlas(nonce_max_age=0.05) as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        challenge = _challenge(await _get(http, atlas, path))
        await asyncio.sleep(0.2)
        resp = await _get(http, atlas, path, _digest(challenge, path))
    assert resp.status == 401
    assert _challenge(resp)["stale"] == "true"


async def test_middleware_survives_stale_nonces() -> None:
    """With nonces good for 2 uses, aiohttp's middleware re-handshakes and succeeds."""
    async with FakeAtlas(nonce_max_uses=2) as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        async with aiohttp.ClientSession(
            middlewares=(aiohttp.DigestAuthMiddleware(PUB, PRIV),)
        ) as http:
            for _ in range(5):
                async with http.get(atlas.url + path, headers={"Accept": GA}) as resp:
                    assert resp.status == 200
        statuses = [r.status for r in atlas.requests]
    assert statuses.count(200) == 5
    assert statuses.count(401) == 3


async def test_expire_nonces_makes_next_answer_stale(
    http: aiohttp.ClientSession,
) -> None:
    """expire_nonces(): a correct answer to a forgotten nonce is stale, not wrong."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        challenge = _challenge(await _get(http, atlas, path))
        atlas.expire_nonces()
        resp = await _get(http, atlas, path, _digest(challenge, path))
    assert (resp.status, _challenge(resp)["stale"]) == (401, "true")


async def test_bearer_token(http: aiohttp.ClientSession) -> None:
    """A registered Bearer token is accepted; an unknown one is a 401."""
    async with FakeAtlas() as atlas:
        token = atlas.add_bearer_token()
        given = atlas.add_bearer_token("given-token")
        path = _keys_path(atlas.add_org())
        ok = await _get(http, atlas, path, f"Bearer {token}")
        ok_given = await _get(http, atlas, path, "Bearer given-token")
        bad = await _get(http, atlas, path, "Bearer not-a-token")
    assert given == "given-token"
    assert len(token) >= 32
    assert (ok.status, ok_given.status, bad.status) == (200, 200, 401)


async def _mint(
    http: aiohttp.ClientSession,
    atlas: FakeAtlas,
    *,
    secret: str = CLIENT_SECRET,
    grant: str = "client_credentials",
) -> tuple[int, Any]:
    auth = _basic(CLIENT, secret)
    async with http.post(
        f"{atlas.url}/api/oauth/token",
        headers={"Authorization": auth},
        data={"grant_type": grant},
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_oauth_token_then_bearer(http: aiohttp.ClientSession) -> None:
    """Client credentials mint a token that authenticates as Bearer."""
    async with FakeAtlas(token_lifetime=1800) as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        status, body = await _mint(http, atlas)
        resp = await _get(
            http, atlas, _keys_path(atlas.add_org()), f"Bearer {body['access_token']}"
        )
        minted = atlas.tokens_minted
    assert status == 200
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 1800)
    assert resp.status == 200
    assert minted == 1


@pytest.mark.parametrize(
    ("secret", "grant", "expected"),
    [("wrong", "client_credentials", 401), (CLIENT_SECRET, "password", 400)],
)
async def test_oauth_token_refusals(
    http: aiohttp.ClientSession, secret: str, grant: str, expected: int
) -> None:
    """Wrong client secret is a 401; another grant type a 400; nothing is minted."""
    async with FakeAtlas() as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        status, body = await _mint(http, atlas, secret=secret, grant=grant)
        minted = atlas.tokens_minted
    assert (status, body["error"], minted) == (expected, expected, 0)


async def test_oauth_token_expires(http: aiohttp.ClientSession) -> None:
    """A minted token stops working after its lifetime, and after expire_tokens()."""
    async with FakeAtlas(token_lifetime=0.05) as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        path = _keys_path(atlas.add_org())
        _, body = await _mint(http, atlas)
        await asyncio.sleep(0.2)
        expired = await _get(http, atlas, path, f"Bearer {body['access_token']}")
    assert body["expires_in"] == 0.05
    assert expired.status == 401


async def test_expire_tokens_keeps_static_tokens(http: aiohttp.ClientSession) -> None:
    """expire_tokens() ends minted tokens only."""
    async with FakeAtlas() as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        static = atlas.add_bearer_token()
        path = _keys_path(atlas.add_org())
        _, body = await _mint(http, atlas)
        atlas.expire_tokens()
        minted = await _get(http, atlas, path, f"Bearer {body['access_token']}")
        kept = await _get(http, atlas, path, f"Bearer {static}")
    assert (minted.status, kept.status) == (401, 200)


async def test_oauth_revoke(http: aiohttp.ClientSession) -> None:
    """Revoking a token (form token=...) ends it; the answer is 200."""
    async with FakeAtlas() as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        path = _keys_path(atlas.add_org())
        _, body = await _mint(http, atlas)
        form = {"token": body["access_token"], "token_type_hint": "access_token"}
        async with http.post(
            f"{atlas.url}/api/oauth/revoke",
            headers={"Authorization": _basic(CLIENT, CLIENT_SECRET)},
            data=form,
        ) as resp:
            revoke_status = resp.status
        after = await _get(http, atlas, path, f"Bearer {body['access_token']}")
        async with http.post(f"{atlas.url}/api/oauth/revoke", data=form) as resp:
            unauthenticated = resp.status
    assert (revoke_status, after.status, unauthenticated) == (200, 401, 401)


async def test_oauth_token_rate_limit(http: aiohttp.ClientSession) -> None:
    """The token endpoint has its own per-minute limit: 429 with Retry-After."""
    async with FakeAtlas(token_rate_limit=2) as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        statuses = [(await _mint(http, atlas))[0] for _ in range(3)]
        auth = _basic(CLIENT, CLIENT_SECRET)
        async with http.post(
            f"{atlas.url}/api/oauth/token",
            headers={"Authorization": auth},
            data={"grant_type": "client_credentials"},
        ) as resp:
            retry_after = int(resp.headers["Retry-After"])
        minted = atlas.tokens_minted
    assert statuses == [200, 200, 429]
    assert retry_after >= 1
    assert minted == 2


async def test_deny_is_403_for_that_principal_only(http: aiohttp.ClientSession) -> None:
    """deny() answers 403 to one principal on an org and its projects."""
    async with FakeAtlas() as atlas:
        org_id = atlas.add_org()
        group_id = atlas.add_group(org_id)
        denied, allowed = atlas.add_bearer_token(), atlas.add_bearer_token()
        atlas.deny(denied, org_id)
        org_denied = await _get(http, atlas, _keys_path(org_id), f"Bearer {denied}")
        group_denied = await _get(
            http,
            atlas,
            f"/api/atlas/v2/groups/{group_id}/aiModelApiKeys",
            f"Bearer {denied}",
        )
        ok = await _get(http, atlas, _keys_path(org_id), f"Bearer {allowed}")
        other_org = await _get(
            http, atlas, _keys_path(atlas.add_org()), f"Bearer {denied}"
        )
    assert (org_denied.status, group_denied.status, ok.status, other_org.status) == (
        403,
        403,
        200,
        200,
    )


async def test_deny_by_client_id_covers_its_tokens(http: aiohttp.ClientSession) -> None:
    """Denying a service account's client id denies every token it minted."""
    async with FakeAtlas() as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        org_id = atlas.add_org()
        atlas.deny(CLIENT, org_id)
        _, body = await _mint(http, atlas)
        resp = await _get(
            http, atlas, _keys_path(org_id), f"Bearer {body['access_token']}"
        )
    assert resp.status == 403


async def test_deny_by_digest_public_key() -> None:
    """Denying a public key answers 403 after a successful Digest handshake."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        org_id = atlas.add_org()
        atlas.deny(PUB, org_id)
        async with (
            aiohttp.ClientSession(
                middlewares=(aiohttp.DigestAuthMiddleware(PUB, PRIV),)
            ) as http,
            http.get(atlas.url + _keys_path(org_id), headers={"Accept": GA}) as resp,
        ):
            body = await resp.json(content_type=None)
    assert (resp.status, body["error"]) == (403, 403)


async def test_request_log_has_no_credentials(http: aiohttp.ClientSession) -> None:
    """The log keeps the auth scheme, never a token, password or digest answer."""
    async with FakeAtlas() as atlas:
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        _, body = await _mint(http, atlas)
        token = body["access_token"]
        await _get(http, atlas, path, f"Bearer {token}")
        await _get(http, atlas, path + f"?token={token}&access_token={token}")
        challenge = _challenge(await _get(http, atlas, path))
        await _get(http, atlas, path, _digest(challenge, path))
        await _get(http, atlas, path, "rawtokensecret9")
        await _get(http, atlas, path, "Token rawtokensecret9")
        query = (
            "?pageNum=2&itemsPerPage=5&includeCount=true&pretty=false&envelope=false"
        )
        await _get(http, atlas, path + query + "&sig=rawtokensecret9&mykey=PRIV9")
        log = atlas.requests
    dumped = repr(log) + json.dumps([dict(r.query) for r in log])
    for secret in (token, CLIENT_SECRET, PRIV, challenge["nonce"]):
        assert secret not in dumped
    for secret in ("rawtokensecret9", "priv9"):  # not even re-cased
        assert secret not in dumped.lower()
    assert [r.auth_scheme for r in log] == [
        "Basic",
        "Bearer",
        None,
        None,
        "Digest",
        "Other",
        "Other",
        None,
    ]
    assert log[2].query == {"token": "***", "access_token": "***"}
    assert log[-1].query == {
        "pageNum": "2",
        "itemsPerPage": "5",
        "includeCount": "true",
        "pretty": "false",
        "envelope": "false",
        "sig": "***",
        "mykey": "***",
    }


async def test_require_auth_false_answers_anonymous(
    http: aiohttp.ClientSession,
) -> None:
    """require_auth=False serves without any credentials."""
    async with FakeAtlas(require_auth=False) as atlas:
        resp = await _get(http, atlas, _keys_path(atlas.add_org()))
    assert resp.status == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("algorithms", [("MD5",), ("SHA-256",)])
async def test_curl_digest(algorithms: tuple[str, ...]) -> None:
    """curl --digest, the command from Atlas' own documentation, gets the page."""
    async with FakeAtlas(digest_algorithms=algorithms) as atlas:
        org_id = atlas.add_org()
        keys = atlas.seed_keys(org_id, 4)
        atlas.add_digest_user(PUB, PRIV)
        url = f"{atlas.url}{_keys_path(org_id)}?pretty=true"
        out = await _run(
            "curl",
            "--silent",
            "--show-error",
            "--user",
            f"{PUB}:{PRIV}",
            "--digest",
            "--header",
            "Accept: application/vnd.atlas.preview+json",
            "-X",
            "GET",
            url,
        )
    body = json.loads(out)
    assert [k["apiKeyId"] for k in body["results"]] == [k["apiKeyId"] for k in keys]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_token_then_bearer() -> None:
    """curl fetches a token with Basic auth, then lists with Bearer."""
    async with FakeAtlas() as atlas:
        org_id = atlas.add_org()
        atlas.seed_keys(org_id, 2)
        atlas.add_service_account(CLIENT, CLIENT_SECRET)
        token_json = await _run(
            "curl",
            "--silent",
            "--show-error",
            "--user",
            f"{CLIENT}:{CLIENT_SECRET}",
            "--data",
            "grant_type=client_credentials",
            f"{atlas.url}/api/oauth/token",
        )
        token = json.loads(token_json)["access_token"]
        out = await _run(
            "curl",
            "--silent",
            "--show-error",
            "--header",
            f"Authorization: Bearer {token}",
            "--header",
            f"Accept: {GA}",
            f"{atlas.url}{_keys_path(org_id)}",
        )
    assert len(json.loads(out)["results"]) == 2


async def _run(*argv: str) -> str:
    """Run a command without blocking the loop the simulator runs on."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_concurrent_digest_requests_all_pass() -> None:
    """Nonce counts racing out of order on the wire are not taken for replays."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        url = atlas.url + _keys_path(atlas.add_org())
        middleware = aiohttp.DigestAuthMiddleware(PUB, PRIV)
        async with aiohttp.ClientSession(middlewares=(middleware,)) as http:

            async def one() -> int:
                async with http.get(url, headers={"Accept": GA}) as resp:
                    return resp.status

            await one()
            statuses = await asyncio.gather(*(one() for _ in range(12)))
    assert statuses == [200] * 12


_CREDENTIAL = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20
)


@settings(max_examples=15, deadline=None)
@given(public_key=_CREDENTIAL.filter(lambda s: ":" not in s), private_key=_CREDENTIAL)
def test_digest_accepts_any_printable_credentials(
    public_key: str, private_key: str
) -> None:
    """Quotes, backslashes and commas in credentials survive the handshake."""

    async def scenario() -> int:
        async with FakeAtlas() as atlas:
            atlas.add_digest_user(public_key, private_key)
            url = atlas.url + _keys_path(atlas.add_org())
            middleware = aiohttp.DigestAuthMiddleware(public_key, private_key)
            async with (
                aiohttp.ClientSession(middlewares=(middleware,)) as http,
                http.get(url, headers={"Accept": GA}) as resp,
            ):
                return resp.status

    assert asyncio.run(scenario()) == 200


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"digest_algorithms": ("SHA-512",)}, "digest algorithm"),
        ({"latency": -1.0}, "latency"),
        ({"token_lifetime": 0}, "token_lifetime"),
        ({"nonce_max_uses": 0}, "nonce_max_uses"),
        ({"nonce_max_age": -1.0}, "nonce_max_age"),
        ({"token_rate_limit": 0}, "token_rate_limit"),
    ],
)
def test_constructor_validation(kwargs: dict[str, Any], match: str) -> None:
    """Impossible settings are refused when the simulator is built."""
    with pytest.raises(ValueError, match=match):
        FakeAtlas(**kwargs)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('opaque="', 'opaque="x'),
        ('realm="', 'realm="other '),
        ("qop=auth, ", ""),
        ("algorithm=MD5", "algorithm=SHA-256"),
        (f'username="{PUB}"', 'username="someone-else"'),
    ],
    ids=["opaque", "realm", "no-qop", "algorithm", "user"],
)
async def test_digest_refuses_altered_answers(
    http: aiohttp.ClientSession, old: str, new: str
) -> None:
    """Changing the opaque, realm, qop, algorithm or user of a good answer is refused."""
    async with FakeAtlas() as atlas:
        atlas.add_digest_user(PUB, PRIV)
        path = _keys_path(atlas.add_org())
        challenge = _challenge(await _get(http, atlas, path))
        good = _digest(challenge, path, nc=1)
        assert old in good
        altered = await _get(http, atlas, path, good.replace(old, new, 1))
        control = await _get(http, atlas, path, _digest(challenge, path, nc=2))
    assert (altered.status, control.status) == (401, 200)


async def test_fake_atlas_factory_fixture(
    fake_atlas_factory: FakeAtlasFactory, http: aiohttp.ClientSession
) -> None:
    """The factory fixture starts simulators with custom settings."""
    atlas = await fake_atlas_factory(require_auth=False)
    other = await fake_atlas_factory(retired_versions=("2025-03-12",))
    resp = await _get(http, atlas, _keys_path(atlas.add_org()))
    gone = await _get(
        http, other, _keys_path(other.add_org()), f"Bearer {other.add_bearer_token()}"
    )
    assert (resp.status, gone.status) == (200, 410)
    assert atlas.url != other.url

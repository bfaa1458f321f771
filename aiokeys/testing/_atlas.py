"""`FakeAtlas`: the public face of the simulator.

What it serves, and where it had to choose (the wire contract leaves these open):

* **Operations**: ``GET /api/atlas/v2/orgs/{orgId}/aiModelApiKeys[/{apiKeyId}]``
  and ``GET|POST /groups/{groupId}/aiModelApiKeys``,
  ``GET|PATCH|DELETE /groups/{groupId}/aiModelApiKeys/{apiKeyId}``; anything else
  is an Atlas-shaped 404 (unknown path) or 405 (wrong method).
* **Order**: keys are listed in creation order; a page is
  ``keys[(pageNum - 1) * itemsPerPage:][:itemsPerPage]``; ``totalCount`` is the
  true count unless the ``total_count`` hook says otherwise; ``next`` appears
  only while keys remain after the page, ``previous`` from page 2 on.
* **Parameters** are read strictly: ``itemsPerPage`` (1..500) and ``pageNum``
  (1..2**31-1, our bound) in ASCII digits only, and each documented parameter
  at most once; anything else is a 400 naming the parameter.
* **Secrets**: only the answer to a create (and :meth:`FakeAtlas.seed_keys` /
  :meth:`FakeAtlas.add_key`) carries ``secret``; lists and gets do not, as the
  schema's description says.
* **Errors** have ``error``, ``errorCode``, ``reason``, ``detail`` and, for 400,
  ``badRequestDetail.fields``; never ``parameters`` (the schema types its items
  as objects, so Atlas' own strings and numbers would not validate).
* **Checks run in this order**: latency, authentication (401), ``Accept``
  version (406/410), route (404/405), fault rules, query and path parameters
  (400), access (403), existence of the org or project (404), rate limit
  (429), the operation (a create or rename body's 400, a key's 404). So an
  unauthenticated request is never faulted and never counts as an attempt, and
  a request refused with 400/403/404 is never rate limited and takes no token:
  a client learns of its own mistake at once instead of retrying 429s.
* **envelope=true** wraps every answer after authentication; a 401 stays a real
  401 so that Digest clients can see the challenge.
* **Rate limits** are kept per path scope: the org id for org paths, the
  project id for project paths.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from aiokeys._errors import InvalidArgumentError

from ._app import build_app
from ._digest import DigestServer
from ._faults import Fault
from ._log import LoggedRequest
from ._oauth import TokenRegistry
from ._ratelimit import RateLimit, TokenBucket
from ._state import Drift, SimState

__all__ = ["FakeAtlas"]

logger = logging.getLogger(__name__)


class FakeAtlas:
    """An in-process MongoDB Atlas serving the AI model API keys endpoints.

    It listens on real HTTP (127.0.0.1, an ephemeral port by default), so any
    client works against it unchanged: aiokeys, aiohttp, curl. Data lives in
    memory; credentials, faults, drift and limits are set up through methods.

    Example::

        async with FakeAtlas() as atlas:
            org_id = atlas.add_org()
            atlas.seed_keys(org_id, 250, groups=3, seed=1)
            token = atlas.add_bearer_token()
            # GET {atlas.url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys
            #   Accept: application/vnd.atlas.2025-03-12+json
            #   Authorization: Bearer {token}

    Args:
        host: Interface to bind.
        port: TCP port; ``0`` picks a free one.
        latency: Seconds every request waits (``asyncio.sleep``) before it is
            answered; also settable later through :attr:`latency`.
        require_auth: When ``False`` the API answers without credentials.
        digest_algorithms: Digest algorithms challenged with, first preferred:
            ``"MD5"`` and/or ``"SHA-256"``; empty turns Digest off.
        nonce_max_uses: Requests one Digest nonce serves before it is stale.
        nonce_max_age: Seconds a Digest nonce lives before it is stale.
        token_lifetime: Seconds an OAuth access token lives (``expires_in``).
        token_rate_limit: Token requests allowed per minute (``None``: no limit).
        rate_limit: Token bucket per org (org paths) or project (project paths);
            ``None`` turns rate limiting off.
        retired_versions: API versions answered with 410 ``VERSION_GONE``.
        total_count: ``(true count, page_num) -> totalCount to report`` (``None``
            omits it); by default the true count is reported.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        require_auth: bool = True,
        digest_algorithms: Sequence[str] = ("MD5",),
        nonce_max_uses: int | None = None,
        nonce_max_age: float | None = None,
        token_lifetime: float = 3600.0,
        token_rate_limit: int | None = None,
        rate_limit: RateLimit | None = None,
        retired_versions: Iterable[str] = (),
        total_count: Callable[[int, int], int | None] | None = None,
    ) -> None:
        _check_settings(
            latency=latency,
            nonce_max_uses=nonce_max_uses,
            nonce_max_age=nonce_max_age,
            token_lifetime=token_lifetime,
            token_rate_limit=token_rate_limit,
        )
        self._host = host
        self._port = port
        self._state = SimState(
            digest=DigestServer(
                algorithms=tuple(digest_algorithms),
                max_uses=nonce_max_uses,
                max_age=nonce_max_age,
            ),
            tokens=TokenRegistry(lifetime=token_lifetime),
            require_auth=require_auth,
            latency=latency,
            rate_limit=rate_limit,
            retired_versions=frozenset(v.lower() for v in retired_versions),
            total_count=total_count,
        )
        if token_rate_limit is not None:
            per_minute = RateLimit(
                capacity=token_rate_limit, refill=token_rate_limit, period=60.0
            )
            self._state.token_bucket = TokenBucket(limit=per_minute)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving (what ``async with`` does on entry)."""
        if self._runner is not None:
            raise RuntimeError("FakeAtlas is already started")
        runner = web.AppRunner(
            build_app(self._state),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.25,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{_url_host(host)}:{port}"
        logger.debug("FakeAtlas listening on %s", self._url)

    async def aclose(self) -> None:
        """Stop serving and close open connections (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeAtlas:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``"http://127.0.0.1:40123"`` or ``"http://[::1]:40123"``.

        There is no trailing slash; an IPv6 host is bracketed (RFC 3986).
        """
        if self._url is None:
            raise RuntimeError("FakeAtlas is not started; use `async with FakeAtlas()`")
        return self._url

    @property
    def latency(self) -> float:
        """Seconds every request waits before being answered (settable)."""
        return self._state.latency

    @latency.setter
    def latency(self, value: float) -> None:
        _check_non_negative("latency", value)
        self._state.latency = value

    # -- data --------------------------------------------------------------

    def add_org(self, org_id: str | None = None) -> str:
        """Create an organization; returns its id (a new 24-hex id by default)."""
        return self._state.store.add_org(org_id)

    def add_group(self, org_id: str, group_id: str | None = None) -> str:
        """Create a project in ``org_id``; returns its 24-hex id."""
        return self._state.store.add_group(org_id, group_id)

    def seed_keys(
        self,
        org_id: str,
        count: int,
        *,
        groups: int | Sequence[str] = 1,
        seed: int | str = 0,
    ) -> list[dict[str, Any]]:
        """Create ``count`` realistic keys spread over projects of ``org_id``.

        Args:
            org_id: The organization.
            count: How many keys.
            groups: An int N spreads the keys over the org's first N projects,
                creating projects as needed; a sequence names the projects.
            seed: Same seed, same org state: same keys (ids, names, times).

        Returns:
            The keys as Atlas JSON dicts, secret included, in creation order
            (which is the order every listing serves them in).
        """
        return self._state.store.seed(org_id, count, groups, seed)

    def add_key(
        self, group_id: str, *, name: str = "test key", status: str = "ACTIVE"
    ) -> dict[str, Any]:
        """Create one key in a project, as if by a create call; returns it with its secret."""
        store = self._state.store
        record = store.make_key(
            store.group(group_id).group_id, name, datetime.now(UTC), "Jane Roe"
        )
        record["status"] = status
        store.insert(group_id, record)
        return record

    def remove_key(self, api_key_id: str) -> None:
        """Delete a key everywhere it is listed."""
        if not self._state.store.remove(api_key_id):
            raise InvalidArgumentError(f"unknown api_key_id {api_key_id!r}")

    def keys(self, scope_id: str) -> list[dict[str, Any]]:
        """The keys an org or project lists now, in order, without secrets."""
        return [stored.to_dict() for stored in self._state.store.scope_keys(scope_id)]

    def key_ids(self, scope_id: str) -> list[str]:
        """The key ids an org or project lists now, in order (cheap)."""
        return [stored.api_key_id for stored in self._state.store.scope_keys(scope_id)]

    # -- credentials -------------------------------------------------------

    def add_bearer_token(self, token: str | None = None) -> str:
        """Accept ``token`` (a random one when ``None``) as a never-expiring Bearer token."""
        return self._state.tokens.add_static(token)

    def add_digest_user(self, public_key: str, private_key: str) -> None:
        """Accept Digest credentials (programmatic API key)."""
        self._state.digest.users[public_key] = private_key

    def add_service_account(self, client_id: str, client_secret: str) -> None:
        """Accept a service account at ``/api/oauth/token``."""
        self._state.tokens.clients[client_id] = client_secret

    def deny(self, principal: str, scope_id: str) -> None:
        """Answer 403 to ``principal`` on an org (and its projects) or a project.

        ``principal`` is a Digest public key, a service account's client id (all
        its tokens), or one Bearer token.
        """
        self._state.denied.setdefault(scope_id, set()).add(principal)

    def expire_tokens(self) -> None:
        """Make every OAuth-minted token expire now (tokens of add_bearer_token stay)."""
        self._state.tokens.expire_all()

    def expire_nonces(self) -> None:
        """Forget every Digest nonce: the next answer is told ``stale=true``."""
        self._state.digest.expire_nonces()

    @property
    def tokens_minted(self) -> int:
        """How many access tokens ``/api/oauth/token`` has issued."""
        return self._state.tokens.minted

    # -- faults and drift --------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Add a fault rule.

        Rules are tried in the order added: every matching ``latency``,
        ``truncate`` and ``content_type`` rule applies, and the first matching
        rule that replaces the answer (``status``, ``html``, ``empty``,
        ``reset``) wins; a rule that did not apply keeps its ``times``.
        """
        self._state.faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault rule and restart attempt numbering."""
        self._state.faults.clear()

    def after_page(
        self, scope_id: str, page_num: int, *, add: int = 0, remove: Iterable[str] = ()
    ) -> None:
        """Once page ``page_num`` of an org's (or project's) listing has been served,
        add ``add`` keys at the end and remove the keys ``remove``: offset drift.
        """
        self._state.store.scope_keys(scope_id)
        if page_num < 1 or add < 0:
            raise InvalidArgumentError("after_page needs page_num >= 1 and add >= 0")
        self._state.drifts.append(
            Drift(scope_id=scope_id, page_num=page_num, add=add, remove=tuple(remove))
        )

    # -- request log -------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """Answered requests, in arrival order (a copy)."""
        return [entry for entry in self._state.log if entry is not None]

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._state.log = []


def _check_settings(
    *,
    latency: float,
    nonce_max_uses: int | None,
    nonce_max_age: float | None,
    token_lifetime: float,
    token_rate_limit: int | None,
) -> None:
    """Refuse settings no client could live with, naming the argument."""
    _check_non_negative("latency", latency)
    positive = {
        "nonce_max_uses": nonce_max_uses,
        "nonce_max_age": nonce_max_age,
        "token_lifetime": token_lifetime,
        "token_rate_limit": token_rate_limit,
    }
    for name, value in positive.items():
        if value is not None and not value > 0:
            raise InvalidArgumentError(f"{name} must be > 0, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if value < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {value!r}")


def _url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets, its zone id escaped."""
    if ":" not in host:
        return host
    return "[" + host.replace("%", "%25") + "]"

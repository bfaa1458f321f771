"""Service accounts: OAuth 2.0 client credentials, one token per client.

Atlas mints an access token at ``POST {base_url}/api/oauth/token`` (HTTP Basic
with the client id and secret, form ``grant_type=client_credentials``). Tokens
last about an hour, cannot be refreshed, and the token endpoint is rate
limited (about 50 a minute), so the bound middleware:

* mints lazily and **single flight**: the first request that needs a token
  starts one mint task, and every request that needs one meanwhile awaits
  that same task, sharing its token or its error (a failed mint is not
  repeated by each waiter in turn);
* renews a little before ``expires_in`` runs out (:func:`renew_margin`), so a
  listing does not hit the boundary in the normal course; when that early
  renewal fails for a passing reason (429, 5xx, network), the current token
  is used on until it expires and the renewal is tried again after a pause
  (:func:`renew_pause`), so a busy token endpoint does not end a listing;
* answers a 401 by re-minting once (unless another request already replaced
  the rejected token) and sending the request again; a second 401 is
  returned, and the wire layer turns it into :class:`~aiokeys.AuthenticationError`;
* sends its own token and revoke requests with ``middlewares=()`` and no
  redirects, so they never pass through a credential middleware, its own
  included, and the client secret never leaves the base URL's origin.

Without a token still alive, a 429 or 5xx from the token endpoint (or a
network fault) is raised out of the middleware as
:class:`~aiokeys.RateLimitError`, :class:`~aiokeys.ServerError` or
:class:`~aiokeys.TransportError`, with the token endpoint's URL and
``Retry-After``. The wire layer's ``backoff`` loop then retries the page
request under the client's :class:`~aiokeys.RetryPolicy`, its 429 gate and the
caller's deadline, and the retried request joins or starts the next mint.
Retrying inside the middleware too would multiply the attempts: under the
default policy, up to 5 token requests for each of 5 page attempts.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Final

import aiohttp
import attrs
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from yarl import URL

from ._auth import (
    AuthContext,
    BoundAuth,
    check_secret,
    foreign_origin,
    release_if_rejected,
)
from ._errors import (
    AiokeysError,
    InvalidArgumentError,
    RequestTimeoutError,
    TransportError,
    UnexpectedResponseError,
    error_from_response,
    scrub_bytes,
    scrub_error,
)
from ._retry import is_retryable, parse_retry_after
from ._transport import safe_cause

__all__ = ["ServiceAccount", "renew_margin", "renew_pause"]

_log = logging.getLogger(__name__)

_TOKEN_PATH: Final = "/api/oauth/token"
_REVOKE_PATH: Final = "/api/oauth/revoke"
#: Used when the token endpoint leaves ``expires_in`` out: Atlas' own lifetime.
_DEFAULT_LIFETIME: Final = 3600.0
#: Past tokens kept for :meth:`_OAuthMiddleware.secrets`.
_RETIRED_KEPT: Final = 4
#: The shortest wait before a failed early renewal is tried again.
_MIN_RENEW_PAUSE: Final = 1.0


def renew_margin(expires_in: float) -> float:
    """Seconds before a token's expiry at which it is replaced.

    A tenth of the lifetime, at most a minute: an hour-long Atlas token is
    renewed after 59 minutes, a 2-second test token after 1.8 seconds. The
    margin covers clock skew and a request that is signed just before expiry
    but reaches the server just after.
    """
    return min(60.0, expires_in / 10)


@attrs.frozen
class ServiceAccount:
    """An Atlas service account, authenticating with OAuth client credentials.

    Args:
        client_id: The service account's client id (``mdb_sa_id_...``).
        client_secret: Its secret. It never appears in ``repr``, ``str``,
            messages or logs.
        revoke_on_close: Revoke the token at ``/api/oauth/revoke`` when the
            client closes, so that it cannot be used after the program ends.
            A failed revocation is logged as a warning, not raised: closing
            often runs while another error is already on its way out.

    Raises:
        InvalidArgumentError: The id or secret is empty or not a string.
    """

    client_id: str
    client_secret: str = attrs.field(repr=False)
    revoke_on_close: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_secret(self.client_id, "ServiceAccount.client_id")
        check_secret(self.client_secret, "ServiceAccount.client_secret")
        if ":" in self.client_id:
            raise InvalidArgumentError("ServiceAccount.client_id must not contain ':'")
        if not isinstance(self.revoke_on_close, bool):
            raise InvalidArgumentError("ServiceAccount.revoke_on_close must be a bool")

    def bind(self, context: AuthContext) -> BoundAuth:
        """Return the middleware that mints, shares and renews this account's token."""
        endpoint = _TokenEndpoint(
            session=context.session,
            origin=context.base_url.origin(),
            basic=_basic(self.client_id, self.client_secret),
            client_secret=self.client_secret,
        )
        return _OAuthMiddleware(endpoint=endpoint, revoke_on_close=self.revoke_on_close)


@attrs.frozen(kw_only=True)
class _Token:
    """An access token, and the :func:`time.monotonic` times to replace it at
    and at which it expires (measured from before the token was asked for)."""

    value: str = attrs.field(repr=False)
    renew_at: float
    expires_at: float

    def fresh(self) -> bool:
        """Not due for renewal yet."""
        return time.monotonic() < self.renew_at

    def alive(self) -> bool:
        """Not expired yet: still usable while a renewal is failing."""
        return time.monotonic() < self.expires_at


@attrs.define(kw_only=True)
class _OAuthMiddleware:
    """The bound form of :class:`ServiceAccount`; see the module docstring."""

    endpoint: _TokenEndpoint
    revoke_on_close: bool
    token: _Token | None = None
    minting: asyncio.Task[_Token] | None = attrs.field(default=None, repr=False)
    #: Tokens this client used before the current one, newest last: a server
    #: may still echo one of them into an error.
    retired: collections.deque[str] = attrs.field(
        factory=lambda: collections.deque(maxlen=_RETIRED_KEPT), repr=False
    )

    async def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        if foreign_origin(request, self.endpoint.origin):
            return await handler(request)

        token = await self._fresh_token()
        response = await self._send(request, handler, token)
        if response.status != 401:
            return response

        await release_if_rejected(response)
        _log.debug(
            "%s %s got 401; renewing the token", request.method, request.url.path
        )
        token = await self._replace(token)
        return await self._send(request, handler, token)

    async def _send(
        self, request: ClientRequest, handler: ClientHandlerType, token: _Token
    ) -> ClientResponse:
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {token.value}"
        return await handler(request)

    async def _fresh_token(self) -> _Token:
        """The current token, or the one being minted when it is missing or due.

        A renewal that fails for a passing reason (429, 5xx, network) while
        the current token has not expired yet is not the caller's problem:
        the current token is used on and the renewal tried again later
        (:meth:`_postpone`). Once the token has expired, the failure is raised.
        """
        token = self.token
        if token is not None and token.fresh():
            return token
        try:
            return await self._mint_once()
        except AiokeysError as exc:
            if token is None or not token.alive() or not is_retryable(exc):
                raise
            return self._postpone(token, exc)

    def _postpone(self, token: _Token, failure: AiokeysError) -> _Token:
        """Keep ``token`` until the next renewal attempt; log the first failure only.

        Requests that waited on the same failed renewal all come here; the
        first moves ``renew_at`` on and logs, the others find it moved.
        """
        current = self.token
        if current is not token:
            return current if current is not None and current.alive() else token
        now = time.monotonic()
        pause = renew_pause(token.expires_at - now, failure)
        self.token = attrs.evolve(token, renew_at=min(now + pause, token.expires_at))
        _log.warning(
            "could not renew the service account token early (%s); using the "
            "current one for up to %.1f s more and trying again in %.1f s",
            _what(failure),
            token.expires_at - now,
            min(pause, token.expires_at - now),
        )
        return self.token

    async def _replace(self, rejected: _Token) -> _Token:
        """A token other than ``rejected``, minting only if nobody did already."""
        token = self.token
        if token is not None and token is not rejected:
            return token
        return await self._mint_once()

    async def _mint_once(self) -> _Token:
        """Join the mint in flight, or start one; shielded from our own cancellation.

        A waiter that is cancelled (a listing closed early) leaves the mint
        running for the others. A failed mint gives each waiter its own copy
        of the error, because listings note their page and progress on the
        error they raise.
        """
        if self.minting is None:
            self.minting = asyncio.ensure_future(self._mint())
            self.minting.add_done_callback(_consume)
        try:
            return await asyncio.shield(self.minting)
        except AiokeysError as exc:
            raise _own_copy(exc) from exc

    async def _mint(self) -> _Token:
        try:
            token = await self.endpoint.mint()
        finally:
            self.minting = None
        if self.token is not None:
            self.retired.append(self.token.value)
        self.token = token
        return token

    def secrets(self) -> tuple[str, ...]:
        """The client secret, the Basic header value, the current and past tokens."""
        current = () if self.token is None else (self.token.value,)
        return (*self.endpoint.secrets(), *self.retired, *current)

    async def aclose(self) -> None:
        """Revoke the token if asked to; never raises an aiokeys error."""
        if self.minting is not None:
            with contextlib.suppress(AiokeysError):
                await asyncio.shield(self.minting)
        token, self.token = self.token, None
        if token is None:
            return
        self.retired.append(token.value)
        if not self.revoke_on_close:
            return
        try:
            await self.endpoint.revoke(token)
        except AiokeysError as exc:
            scrub_error(exc, self.secrets())
            _log.warning("could not revoke the service account token: %s", exc)


def renew_pause(left: float, failure: BaseException) -> float:
    """Seconds to wait before trying again a renewal that failed with ``failure``.

    A quarter of the token's remaining life, at least :data:`_MIN_RENEW_PAUSE`
    and at least the server's ``Retry-After``: an hour-long token whose
    renewal keeps failing is tried again after 15, 11, 8, ... seconds, never
    on every request. The caller stops at the token's expiry.
    """
    told = getattr(failure, "retry_after", None)
    wait = float(told) if isinstance(told, int | float) else 0.0
    return max(wait, left / 4, _MIN_RENEW_PAUSE)


def _what(failure: BaseException) -> str:
    """The class and status of ``failure``: its message could quote the server."""
    status = getattr(failure, "status", None)
    return type(failure).__name__ + ("" if status is None else f" {status}")


def _own_copy(exc: AiokeysError) -> AiokeysError:
    """A shallow copy of ``exc`` (the error classes take keyword-only arguments)."""
    clone = type(exc).__new__(type(exc))
    clone.__dict__.update(exc.__dict__)
    clone.args = exc.args
    return clone


def _consume(task: asyncio.Task[_Token]) -> None:
    """Mark a failed mint's error as seen, when every waiter was cancelled."""
    if not task.cancelled():
        task.exception()


@attrs.frozen(kw_only=True)
class _TokenEndpoint:
    """The token and revoke endpoints of one base URL, with one client's secret."""

    session: aiohttp.ClientSession = attrs.field(repr=False)
    origin: URL
    basic: str = attrs.field(repr=False)
    client_secret: str = attrs.field(repr=False)

    def secrets(self) -> tuple[str, str]:
        """The client secret and the Basic credentials (also when echoed bare)."""
        return self.client_secret, self.basic.removeprefix("Basic ")

    async def mint(self) -> _Token:
        """Ask for a new access token; one request, errors mapped, never retried here."""
        started = time.monotonic()
        body = await self._post(_TOKEN_PATH, {"grant_type": "client_credentials"})
        value, expires_in = _parse_token(body, url=self._url(_TOKEN_PATH))
        _log.debug("minted a service account token valid for %.0f s", expires_in)
        return _Token(
            value=value,
            renew_at=started + expires_in - renew_margin(expires_in),
            expires_at=started + expires_in,
        )

    async def revoke(self, token: _Token) -> None:
        """Revoke ``token`` with one request."""
        form = {"token": token.value, "token_type_hint": "access_token"}
        await self._post(_REVOKE_PATH, form)
        _log.debug("revoked the service account token")

    def _url(self, path: str) -> str:
        return str(self.origin.with_path(path))

    async def _post(self, path: str, form: Mapping[str, str]) -> bytes:
        url = self._url(path)
        try:
            async with self.session.post(
                url,
                data=dict(form),
                headers={
                    hdrs.ACCEPT: "application/json",
                    hdrs.AUTHORIZATION: self.basic,
                },
                allow_redirects=False,
                middlewares=(),
                raise_for_status=False,
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
        except TimeoutError as exc:
            failure: TransportError = RequestTimeoutError(f"POST {url}: timed out")
            cause = safe_cause(exc)
        except aiohttp.ClientError as exc:
            failure = TransportError(f"POST {url}: {type(exc).__name__}")
            cause = safe_cause(exc)
        else:
            body = scrub_bytes(body, self.secrets()) if status >= 300 else body
            return _checked(status, body, url=url, retry_after=retry_after)
        # Raised outside the except clauses: aiohttp's original exception, whose
        # request_info holds the Basic header, must not stay as __context__.
        raise failure from cause


def _checked(status: int, body: bytes, *, url: str, retry_after: float | None) -> bytes:
    """``body`` of a success, else the error its status and body make."""
    if status >= 300:
        raise error_from_response(
            status,
            _without_secrets(body),
            method="POST",
            url=url,
            retry_after=retry_after,
        )
    return body


def _basic(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` value of HTTP Basic (RFC 7617), UTF-8 encoded.

    Built here rather than with ``aiohttp.BasicAuth``, deprecated since
    aiohttp 3.14, or ``aiohttp.encode_basic_auth``, which 3.12 lacks.
    """
    pair = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _without_secrets(body: bytes) -> bytes:
    """Keep an error body only if it is JSON without a token in it.

    An OAuth error body is small JSON (``error``, ``error_description``); a
    body carrying ``access_token`` with an error status is dropped rather than
    risk putting the token into an exception's snippet.
    """
    return b"" if b"access_token" in body else body


def _parse_token(body: bytes, *, url: str) -> tuple[str, float]:
    """Read ``access_token`` and ``expires_in`` from a token response."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise UnexpectedResponseError(
            f"POST {url}: the token response is not JSON"
        ) from exc
    if not isinstance(payload, dict):
        raise UnexpectedResponseError(
            f"POST {url}: the token response is not an object"
        )
    value = payload.get("access_token")
    kind = payload.get("token_type", "Bearer")
    if not isinstance(value, str) or not value:
        raise UnexpectedResponseError(
            f"POST {url}: the token response has no access_token"
        )
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise UnexpectedResponseError(f"POST {url}: token_type is not Bearer")
    return value, _lifetime(payload.get("expires_in"))


def _lifetime(expires_in: object) -> float:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return _DEFAULT_LIFETIME
    if not 0 < expires_in < float("inf"):
        return _DEFAULT_LIFETIME
    return float(expires_in)

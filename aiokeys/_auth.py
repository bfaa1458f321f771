"""Credentials: :class:`BearerToken` (and, later, digest keys and service accounts).

A credential object is a frozen value the user builds; :meth:`bind` turns it into
the per-client state that actually signs requests, an aiohttp client middleware.
Keeping the state per client means two clients never share a nonce counter or a
token, and nothing lives at module level.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
import attrs
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from yarl import URL

from ._errors import InvalidArgumentError
from ._retry import RetryPolicy

__all__ = ["Auth", "AuthContext", "BearerToken", "BoundAuth", "validate_base_url"]

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def validate_base_url(base_url: str | URL, *, allow_insecure_http: bool) -> URL:
    """Parse ``base_url`` and refuse one that would send credentials in clear.

    ``https`` is always accepted; ``http`` only for a loopback host (the
    simulator) or when the caller opts in with ``allow_insecure_http=True``.
    A path, query or fragment is refused: aiokeys adds ``/api/atlas/v2`` itself.
    """
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgumentError(
            f"base_url must be an http(s) URL with a host, got {str(base_url)!r}"
        )
    if url.path not in ("", "/") or url.query_string or url.fragment:
        raise InvalidArgumentError(
            f"base_url must be an origin like https://cloud.mongodb.com, got {str(base_url)!r}"
        )
    host = url.host
    loopback = host in _LOOPBACK_HOSTS or host.startswith("127.")
    if url.scheme == "http" and not loopback and not allow_insecure_http:
        raise InvalidArgumentError(
            f"base_url {str(url.origin())!r} is plain http and not loopback: credentials "
            "would travel in clear; use https or pass allow_insecure_http=True"
        )
    return url.origin()


@attrs.frozen(kw_only=True)
class AuthContext:
    """What a credential needs from the client it is bound to."""

    session: aiohttp.ClientSession
    base_url: URL
    retry: RetryPolicy


class BoundAuth(Protocol):
    """A credential bound to one client: an aiohttp middleware plus cleanup."""

    async def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse: ...

    async def aclose(self) -> None: ...


class Auth(Protocol):
    """Anything that can be passed as ``Client(auth=...)``."""

    def bind(self, context: AuthContext) -> BoundAuth: ...


@attrs.frozen
class BearerToken:
    """A bearer token obtained elsewhere, sent as ``Authorization: Bearer ...``.

    The token never appears in ``repr`` or ``str``.
    """

    token: str = attrs.field(repr=False)

    def bind(self, context: AuthContext) -> BoundAuth:
        return _BearerMiddleware(token=self.token, origin=context.base_url.origin())


@attrs.define(kw_only=True)
class _BearerMiddleware:
    token: str = attrs.field(repr=False)
    origin: URL

    async def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        # Only the base URL's origin ever sees the token.
        if request.url.origin() == self.origin:
            request.headers[hdrs.AUTHORIZATION] = f"Bearer {self.token}"
        return await handler(request)

    async def aclose(self) -> None:
        return None

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

from ._retry import RetryPolicy

__all__ = ["Auth", "AuthContext", "BearerToken", "BoundAuth"]


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

"""Credentials, and what they share: the protocols, origin scoping and validation.

A credential object is a frozen value the user builds; :meth:`Auth.bind` turns
it into the per-client state that actually signs requests, an aiohttp client
middleware with an ``aclose()``. Keeping the state per client means two clients
never share a nonce counter or a token, and nothing lives at module level.

The credentials themselves live in their own modules: :class:`BearerToken`
here, ``DigestAuth`` in ``_digest``, ``ServiceAccount`` in ``_oauth`` and
``auth_from_env`` in ``_env``.

Every bound credential signs only requests to the origin of the base URL it
was bound to. aiohttp runs a request's middlewares again on every redirect
hop, and itself drops ``Authorization`` when a redirect changes origin. The
transport goes further and refuses to send anything to another origin (its
origin guard runs before the credential); the middlewares here still check
the origin themselves, so a bound credential used on its own never signs a
request elsewhere either.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, Protocol

import aiohttp
import attrs
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from yarl import URL

from ._errors import InvalidArgumentError
from ._retry import RetryPolicy

__all__ = ["Auth", "AuthContext", "BearerToken", "BoundAuth", "validate_base_url"]

#: C0 controls and DEL: never part of a credential, never valid in a header.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")


def validate_base_url(base_url: str | URL, *, allow_insecure_http: bool) -> URL:
    """Parse ``base_url`` and refuse one that would send credentials in clear.

    ``https`` is always accepted; ``http`` only for a loopback host (the
    simulator) or when the caller opts in with ``allow_insecure_http=True``.
    A path, query or fragment is refused: aiokeys adds ``/api/atlas/v2`` itself.
    User info (``https://user:password@host``) is refused too: credentials go in
    ``auth=``. Messages describe what is wrong and show at most the origin, so
    a password or a token in a query string never reaches them.
    """
    try:
        url = URL(base_url)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            "base_url must be an http(s) origin like https://cloud.mongodb.com"
        ) from None
    if url.raw_user is not None or url.raw_password is not None:
        raise InvalidArgumentError(
            "base_url must not contain user info (user:password@host); "
            "pass credentials with auth="
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgumentError(
            "base_url must be an http(s) URL with a host, got "
            # No user info (refused above), path or query: nothing secret.
            f"{url.scheme + '://' + url.raw_authority!r}"
        )
    if url.path not in ("", "/") or url.query_string or url.fragment:
        # The path is named (aiokeys adds /api/atlas/v2 itself); a query or a
        # fragment only by kind, as it may carry a token.
        extra = [f"path {url.raw_path!r}"] if url.path not in ("", "/") else []
        extra += ["a query"] if url.query_string else []
        extra += ["a fragment"] if url.fragment else []
        raise InvalidArgumentError(
            "base_url must be an origin like https://cloud.mongodb.com, without "
            f"path, query or fragment; {str(url.origin())!r} came with "
            + " and ".join(extra)
        )
    if url.scheme == "http" and not is_loopback(url.host) and not allow_insecure_http:
        raise InvalidArgumentError(
            f"base_url {str(url.origin())!r} is plain http and not loopback: credentials "
            "would travel in clear; use https or pass allow_insecure_http=True"
        )
    return url.origin()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (IPv4 127/8, IPv6 ``::1``) or ``localhost``.

    Only an address that parses as one counts: ``127.evil.com`` and
    ``127.0.0.1.nip.io`` are names anyone can point anywhere. An IPv4 address
    mapped into IPv6 (``::ffff:127.0.0.1``) counts as its IPv4 self.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


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

    def secrets(self) -> tuple[str, ...]:
        """The secret values this credential currently knows (keys, tokens, headers).

        The transport replaces each of them in every error it raises, since a
        server or proxy may echo the ``Authorization`` header into its answer.
        """
        ...


class Auth(Protocol):
    """Anything that can be passed as ``Client(auth=...)``."""

    def bind(self, context: AuthContext) -> BoundAuth: ...


def check_secret(value: object, what: str) -> None:
    """Refuse an empty or non-string credential part, naming it but not its value.

    Control characters (C0, line breaks and tab included, and DEL) are refused
    too: CR and LF would split the ``Authorization`` header, and aiohttp
    refuses the others only when the first request is sent, with a bare
    ``ValueError``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty string")
    if _CONTROL.search(value):
        raise InvalidArgumentError(
            f"{what} must not contain control characters (line breaks included)"
        )


def same_origin(url: URL, origin: URL) -> bool:
    """Whether ``url`` lies on ``origin``: same scheme, host and (default) port.

    Compared part by part because yarl keeps an explicit default port
    (``https://h:443``) apart from the implicit one.
    """
    return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


def foreign_origin(request: ClientRequest, origin: URL) -> bool:
    """Tell whether ``request`` leaves ``origin``, and if so strip its credentials.

    Called first by every bound middleware: a request to another origin is
    then passed on without any ``Authorization`` header. The transport's
    origin guard refuses such requests before they get here; this is the
    second line, for a bound credential used without that guard.
    """
    if same_origin(request.url, origin):
        return False
    request.headers.popall(hdrs.AUTHORIZATION, None)
    return True


async def release_if_rejected(response: ClientResponse) -> ClientResponse:
    """Buffer the body of a 401 so its connection goes back to the pool.

    A middleware that answers a 401 by sending the request again drops the
    first response; reading its (small) body first lets aiohttp reuse the
    connection instead of closing it at garbage collection. The buffered body
    stays readable, so a 401 that is finally returned still carries Atlas'
    error JSON to the error mapping.
    """
    if response.status == 401:
        await response.read()
    return response


@attrs.frozen
class BearerToken:
    """A bearer token obtained elsewhere, sent as ``Authorization: Bearer ...``.

    aiokeys cannot renew such a token: a 401 is returned as is and becomes an
    :class:`~aiokeys.AuthenticationError`. The token never appears in ``repr``
    or ``str``.

    Args:
        token: The access token.

    Raises:
        InvalidArgumentError: ``token`` is empty or not a string.
    """

    token: str = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        check_secret(self.token, "BearerToken.token")

    def bind(self, context: AuthContext) -> BoundAuth:
        """Return the middleware that adds the token to the base URL's requests."""
        return _BearerMiddleware(token=self.token, origin=context.base_url.origin())


@attrs.define(kw_only=True)
class _BearerMiddleware:
    token: str = attrs.field(repr=False)
    origin: URL

    async def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        if foreign_origin(request, self.origin):
            return await handler(request)
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {self.token}"
        return await handler(request)

    async def aclose(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)

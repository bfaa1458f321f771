"""Bearer tokens: the OAuth client-credentials grant Atlas service accounts use.

``POST /api/oauth/token`` with HTTP Basic ``client_id:client_secret`` and the
form ``grant_type=client_credentials`` mints an access token that lives
``lifetime`` seconds and cannot be refreshed; ``POST /api/oauth/revoke`` with
the form ``token=...`` ends it early (RFC 7009: the answer is 200 whether or not
the token was known). Tokens handed to :meth:`TokenRegistry.add_static` never
expire; they stand for a token obtained out of band.

Failures answer in Atlas' error shape, like the rest of the simulator.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Callable

import attrs

__all__ = ["TokenGrant", "TokenRegistry", "parse_basic"]


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """Decode ``Authorization: Basic ...`` into ``(user, password)``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


@attrs.frozen(kw_only=True)
class TokenGrant:
    """A live token: who holds it and until when (``None``: forever)."""

    principals: frozenset[str] = attrs.field(repr=False)
    client_id: str | None
    expires_at: float | None


@attrs.define(kw_only=True)
class TokenRegistry:
    """Service accounts, minted and static tokens, and the minted count."""

    lifetime: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    clients: dict[str, str] = attrs.field(factory=dict, repr=False)
    minted: int = 0
    _tokens: dict[str, TokenGrant] = attrs.field(factory=dict, repr=False)

    def add_static(self, token: str | None) -> str:
        """Register a never-expiring token (a random one when ``None``)."""
        token = token or secrets.token_urlsafe(32)
        self._tokens[token] = TokenGrant(
            principals=frozenset({token}), client_id=None, expires_at=None
        )
        return token

    def client_ok(self, client_id: str, client_secret: str) -> bool:
        """Whether the service-account credentials are right (constant time)."""
        expected = self.clients.get(client_id)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), client_secret.encode())

    def mint(self, client_id: str) -> str:
        """Issue a new access token for ``client_id``."""
        token = secrets.token_urlsafe(32)
        self._tokens[token] = TokenGrant(
            principals=frozenset({token, client_id}),
            client_id=client_id,
            expires_at=self.clock() + self.lifetime,
        )
        self.minted += 1
        return token

    def revoke(self, token: str, client_id: str | None = None) -> None:
        """End ``token`` if it is held by ``client_id`` (any holder when ``None``)."""
        grant = self._tokens.get(token)
        if grant is not None and (client_id is None or grant.client_id == client_id):
            del self._tokens[token]

    def expire_all(self) -> None:
        """Make every minted token expire now (static tokens are kept)."""
        now = self.clock()
        for token, grant in list(self._tokens.items()):
            if grant.expires_at is not None:
                self._tokens[token] = attrs.evolve(grant, expires_at=now - 1.0)

    def lookup(self, token: str) -> TokenGrant | None:
        """The grant of a live token, or ``None`` (unknown, revoked or expired)."""
        grant = self._tokens.get(token)
        if grant is None:
            return None
        if grant.expires_at is not None and self.clock() >= grant.expires_at:
            del self._tokens[token]
            return None
        return grant

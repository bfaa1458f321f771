"""The request log: one :class:`LoggedRequest` per request the simulator answered.

Tests assert on it ("page 3 was asked for twice", "no request carried Basic
auth"), so it records what a request *was*, never what it *carried*: the
``Authorization`` header is reduced to its scheme, and query parameters whose
name suggests a credential are replaced by ``"***"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

__all__ = ["LoggedRequest", "redact_query", "scheme_of"]

_SECRET_PARAMS: Final = frozenset(
    {"token", "access_token", "client_secret", "password", "secret", "api_key"}
)
_SCHEMES: Final = {"digest": "Digest", "bearer": "Bearer", "basic": "Basic"}


@attrs.frozen(kw_only=True)
class LoggedRequest:
    """One request as the simulator saw it, without any credential.

    Attributes:
        method: HTTP method, upper case.
        path: URL path, without the query string.
        query: Query parameters (last value wins); credential-like ones redacted.
        auth_scheme: ``"Digest"``, ``"Bearer"``, ``"Basic"`` or ``None``: the
            scheme of the ``Authorization`` header sent, valid or not.
        status: HTTP status sent; ``0`` when no answer was sent (a ``reset``
            fault, or a client that went away before the answer).
            With ``envelope=true`` an error is sent as HTTP 200, and 200 is logged.
        time: ``time.monotonic()`` when the request arrived.
        page_num: ``pageNum`` of a list request (``1`` when absent), else ``None``.
    """

    method: str
    path: str
    query: dict[str, str]
    auth_scheme: str | None
    status: int
    time: float
    page_num: int | None


def scheme_of(authorization: str | None) -> str | None:
    """Return the canonical scheme name of an ``Authorization`` header value."""
    if not authorization:
        return None
    scheme = authorization.split(" ", 1)[0].lower()
    return _SCHEMES.get(scheme, scheme.capitalize() or None)


def redact_query(query: Mapping[str, str]) -> dict[str, str]:
    """Copy ``query``, replacing values of credential-like parameters."""
    return {
        name: "***" if name.lower() in _SECRET_PARAMS else value
        for name, value in query.items()
    }

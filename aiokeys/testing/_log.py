"""The request log: one :class:`LoggedRequest` per request the simulator answered.

Tests assert on it ("page 3 was asked for twice", "no request carried Basic
auth"), so it records what a request *was*, never what it *carried*. Both rules are
allow-lists, since a credential can hide under any name:

* the ``Authorization`` header is reduced to one of three scheme names, and any
  other value (a raw token, a mistyped scheme) to ``"Other"``;
* only the documented query parameters keep their values; every other
  parameter is logged by name with the value ``"***"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

__all__ = ["DOCUMENTED_PARAMS", "LoggedRequest", "redact_query", "scheme_of"]

#: Query parameters of the contract (plus ``includeCount`` of other Atlas lists):
#: the only ones whose values are logged.
DOCUMENTED_PARAMS: Final = frozenset(
    {"itemsPerPage", "pageNum", "envelope", "pretty", "includeCount"}
)
_SCHEMES: Final = {"digest": "Digest", "bearer": "Bearer", "basic": "Basic"}


@attrs.frozen(kw_only=True)
class LoggedRequest:
    """One request as the simulator saw it, without any credential.

    Attributes:
        method: HTTP method, upper case.
        path: URL path, without the query string.
        query: Query parameters (last value wins); the values of all but the
            documented ones (``itemsPerPage``, ``pageNum``, ``envelope``,
            ``pretty``, ``includeCount``) are ``"***"``.
        auth_scheme: The scheme of the ``Authorization`` header sent, valid
            or not: ``"Digest"``, ``"Bearer"``, ``"Basic"``, ``"Other"`` for
            any other value, ``None`` when the header is absent or blank.
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
    """Name the scheme of an ``Authorization`` value, never echoing any of it.

    Schemes are case-insensitive (RFC 9110 section 11.1), so ``bearer x`` is
    ``"Bearer"``. Anything else is ``"Other"``: a value without a known scheme
    may well be the credential itself.
    """
    if authorization is None or not authorization.strip():
        return None
    scheme = authorization.strip().split(" ", 1)[0].lower()
    return _SCHEMES.get(scheme, "Other")


def redact_query(query: Mapping[str, str]) -> dict[str, str]:
    """Copy ``query``, blanking the values of undocumented parameters.

    Of a repeated name the last value wins.
    """
    return {
        name: value if name in DOCUMENTED_PARAMS else "***"
        for name, value in query.items()
    }

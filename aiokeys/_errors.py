"""The exceptions aiokeys raises, and nothing else leaves the public API.

::

    AiokeysError
    ├── InvalidArgumentError (also ValueError)   bad argument, raised before any request
    │   └── MissingCredentialsError              auth_from_env() found no credentials
    ├── ApiError                                 Atlas answered with an error status
    │   ├── BadRequestError                      400
    │   ├── AuthenticationError                  401
    │   ├── PermissionDeniedError                403
    │   ├── NotFoundError                        404
    │   ├── RateLimitError                       429, with ``retry_after``
    │   └── ServerError                          5xx
    ├── UnexpectedResponseError                  a success status whose body is not a page or key
    ├── TransportError                           refused or reset connection, body cut short
    │   └── RequestTimeoutError                  a request or a listing deadline ran out
    └── DriftError                               ``on_drift="raise"`` and the listing shifted

The status alone picks the :class:`ApiError` subclass, so an HTML 502 from a proxy
is still a :class:`ServerError`; its ``error_code`` is then ``None`` and
``body_snippet`` keeps a short, printable start of the body. Every error keeps the
underlying aiohttp, json or cattrs exception as ``__cause__``.

Messages and reprs never carry headers, query strings, request bodies or secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = [
    "AiokeysError",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BadRequestField",
    "DriftError",
    "InvalidArgumentError",
    "MissingCredentialsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "UnexpectedResponseError",
]


class AiokeysError(Exception):
    """Root of every exception aiokeys raises on purpose.

    Listings attach where they stopped, so a caller can resume:
    ``page_num`` is the page that failed (``None`` outside a listing) and
    ``keys_yielded`` how many keys the stream had already handed out.
    """

    page_num: int | None = None
    keys_yielded: int | None = None


class InvalidArgumentError(AiokeysError, ValueError):
    """An argument is out of range or malformed; no request was sent."""


class MissingCredentialsError(InvalidArgumentError):
    """No usable credentials were found where they were looked for."""


@attrs.frozen(kw_only=True)
class BadRequestField:
    """One entry of Atlas' ``badRequestDetail.fields``."""

    field: str
    description: str


class ApiError(AiokeysError):
    """Atlas (or a proxy in front of it) answered with an error status.

    Attributes:
        status: The HTTP status, or the ``status`` of an ``envelope=true`` body.
        error_code: Atlas' ``errorCode``, ``None`` when the body was not Atlas JSON.
        reason: Atlas' ``reason`` (the status phrase).
        detail: Atlas' human-readable ``detail``.
        parameters: Atlas' ``parameters`` list.
        bad_request_fields: ``badRequestDetail.fields``, empty when absent.
        method: The request method.
        url: The request URL without its query string.
        page_num: The page number of a listing request, else ``None``.
        body_snippet: A short printable start of a body that was not Atlas JSON.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        error_code: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
        parameters: Sequence[str | int | float] = (),
        bad_request_fields: Sequence[BadRequestField] = (),
        page_num: int | None = None,
        body_snippet: str | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.error_code = error_code
        self.reason = reason
        self.detail = detail
        self.parameters = tuple(parameters)
        self.bad_request_fields = tuple(bad_request_fields)
        self.page_num = page_num
        self.body_snippet = body_snippet
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.status}"
        if self.error_code:
            head += f" {self.error_code}"
        elif self.reason:
            head += f" {self.reason}"
        where = f"{self.method} {self.url}"
        if self.page_num is not None:
            where += f" (page {self.page_num})"
        text = f"{head} from {where}"
        if self.detail:
            text += f": {self.detail}"
        elif self.body_snippet:
            text += f": {self.body_snippet!r}"
        for bad in self.bad_request_fields:
            text += f"; {bad.field}: {bad.description}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, "
            f"error_code={self.error_code!r}, url={self.url!r}, "
            f"page_num={self.page_num!r})"
        )


class BadRequestError(ApiError):
    """400: Atlas rejected a parameter; ``bad_request_fields`` names it."""


class AuthenticationError(ApiError):
    """401: the credentials are missing, wrong, expired or revoked."""


class PermissionDeniedError(ApiError):
    """403: the credentials are valid but may not see this org or project."""


class NotFoundError(ApiError):
    """404: no such org, project or key."""


class RateLimitError(ApiError):
    """429: the token bucket is empty; ``retry_after`` is the server's wait in seconds."""

    def __init__(self, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)  # type: ignore[arg-type]


class ServerError(ApiError):
    """5xx: Atlas or a proxy failed; retried by the default policy."""


class UnexpectedResponseError(AiokeysError):
    """A success status came with a body that is not a valid page or key."""


class TransportError(AiokeysError):
    """The request never produced a complete response (refused, reset, cut short)."""


class RequestTimeoutError(TransportError):
    """A request timed out, or a listing's deadline ran out."""


class DriftError(AiokeysError):
    """The listing shifted under us and ``on_drift="raise"`` was asked for."""

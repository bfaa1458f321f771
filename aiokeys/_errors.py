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
    ├── DriftError                               ``on_drift="raise"`` and the listing shifted
    └── ClientClosedError                        the client was closed under an open listing

The status alone picks the :class:`ApiError` subclass, so an HTML 502 from a proxy
is still a :class:`ServerError`; its ``error_code`` is then ``None`` and
``body_snippet`` keeps a short, printable start of the body. Every error keeps the
underlying aiohttp, json or cattrs exception as ``__cause__``.

Messages and reprs never carry headers, query strings, request bodies or secrets.

:func:`error_from_response` (raw body) and :func:`error_from_payload` (decoded
body, e.g. the ``content`` of an ``envelope=true`` answer) are how the wire layer
builds an :class:`ApiError`; :func:`error_class` is the status-to-class table.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Collection, Mapping, Sequence

import attrs

__all__ = [
    "AiokeysError",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BadRequestField",
    "ClientClosedError",
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
    "error_class",
    "error_from_payload",
    "error_from_response",
    "safe_snippet",
    "scrub_bytes",
    "scrub_error",
]

#: The longest ``body_snippet`` kept from a body that is not Atlas JSON.
SNIPPET_LIMIT = 120
#: What a credential's secret is replaced with in an error.
REDACTED = "***"
#: The shortest start of a secret redacted at the end of a cut snippet.
_TAIL_MIN = 3
#: Secrets this long are replaced wherever they occur. A shorter one (no real
#: Atlas credential is) only where it stands alone, so that a test token such
#: as ``"t"`` does not turn every ``t`` of a message into ``***``.
_SUBSTRING_MIN = 8
#: A character of a header token (RFC 9110 token68, plus ``_``-style words).
_TOKEN_CHAR = r"[\w.~+/=-]"


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
        retry_after: The server's ``Retry-After`` in seconds (429 and 503), or
            ``None`` when it sent none.
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
        retry_after: float | None = None,
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
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        # Server text is escaped where it is not printable: a ``detail`` with a
        # newline or an ANSI escape must not forge a log line or drive a terminal.
        head = f"{self.status}"
        if self.error_code:
            head += f" {_printable(self.error_code)}"
        elif self.reason:
            head += f" {_printable(self.reason)}"
        where = f"{self.method} {self.url}"
        if self.page_num is not None:
            where += f" (page {self.page_num})"
        text = f"{head} from {where}"
        if self.detail:
            text += f": {_printable(self.detail)}"
        elif self.body_snippet:
            text += f": {self.body_snippet!r}"
        for bad in self.bad_request_fields:
            text += f"; {_printable(bad.field)}: {_printable(bad.description)}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, "
            f"error_code={self.error_code!r}, url={self.url!r}, "
            f"page_num={self.page_num!r})"
        )


def _printable(text: str) -> str:
    """``text`` with every non-printable character written as its escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


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


class ServerError(ApiError):
    """5xx: Atlas or a proxy failed; retried by the default policy."""


class UnexpectedResponseError(AiokeysError):
    """A success status came with a body that is not a valid page or key."""


class TransportError(AiokeysError):
    """The request never produced a complete response (refused, reset, cut short)."""


class RequestTimeoutError(TransportError):
    """A request timed out, or a listing's deadline ran out.

    ``deadline_exceeded`` is true when the caller's deadline, not a socket
    timeout, ended the request; such an error is never retried.
    """

    def __init__(self, message: str, *, deadline_exceeded: bool = False) -> None:
        super().__init__(message)
        self.deadline_exceeded = deadline_exceeded


class DriftError(AiokeysError):
    """The listing shifted under us and ``on_drift="raise"`` was asked for."""


_CLASS_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}
_TAG = re.compile(r"<[^>]*>")
_BLANKS = re.compile(r"\s+")


def error_class(status: int) -> type[ApiError]:
    """The :class:`ApiError` subclass for ``status``; the body never decides."""
    if status >= 500:
        return ServerError
    return _CLASS_BY_STATUS.get(status, ApiError)


def safe_snippet(text: str, *, limit: int = SNIPPET_LIMIT) -> str | None:
    """A short, printable, single-line start of a body that is not Atlas JSON.

    Markup is dropped (an HTML error page keeps its words), whitespace is
    collapsed and control characters removed, so the snippet can go into a
    message without breaking a log line; ``None`` when nothing is left.
    """
    words = _BLANKS.sub(" ", _TAG.sub(" ", text))
    printable = "".join(ch for ch in words if ch.isprintable()).strip()
    if not printable:
        return None
    if len(printable) > limit:
        return printable[: limit - 1].rstrip() + "…"
    return printable


def error_from_response(
    status: int,
    body: bytes,
    *,
    method: str,
    url: str,
    page_num: int | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the error for an HTTP error ``status`` and its raw ``body``.

    The status picks the class. An Atlas JSON body fills ``error_code``,
    ``reason``, ``detail``, ``parameters`` and ``bad_request_fields``; any other
    body (HTML from a proxy, empty, truncated) leaves them ``None`` and keeps a
    :func:`safe_snippet` instead.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        payload: object = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if not _is_atlas_error(payload):
        payload = text
    return error_from_payload(
        status,
        payload,
        method=method,
        url=url,
        page_num=page_num,
        retry_after=retry_after,
    )


def error_from_payload(
    status: int,
    payload: object,
    *,
    method: str,
    url: str,
    page_num: int | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the error for ``status`` from an already decoded body.

    Used directly for the ``content`` of an ``envelope=true`` error, where the
    HTTP status was 200 and the body's ``status`` tells the truth. A ``str``
    payload is taken as a body that was not Atlas JSON.
    """
    cls = error_class(status)
    if isinstance(payload, Mapping) and _is_atlas_error(payload):
        return cls(
            status=status,
            method=method,
            url=url,
            page_num=page_num,
            retry_after=retry_after,
            error_code=_str_or_none(payload.get("errorCode")),
            reason=_str_or_none(payload.get("reason")),
            detail=_str_or_none(payload.get("detail")),
            parameters=_parameters(payload.get("parameters")),
            bad_request_fields=_bad_request_fields(payload.get("badRequestDetail")),
        )
    return cls(
        status=status,
        method=method,
        url=url,
        page_num=page_num,
        retry_after=retry_after,
        reason=_phrase(status),
        body_snippet=_snippet_of(payload),
    )


def _is_atlas_error(payload: object) -> bool:
    if not isinstance(payload, Mapping):
        return False
    code = payload.get("errorCode")
    error = payload.get("error")
    return isinstance(code, str) or (
        isinstance(error, int) and not isinstance(error, bool)
    )


def _parameters(params: object) -> tuple[str | int | float, ...]:
    if not isinstance(params, list):
        return ()
    return tuple(
        p
        for p in params
        if isinstance(p, str | int | float) and not isinstance(p, bool)
    )


def _snippet_of(payload: object) -> str | None:
    if payload is None:
        return None
    if isinstance(payload, str):
        return safe_snippet(payload)
    return safe_snippet(json.dumps(payload))


def _bad_request_fields(detail: object) -> tuple[BadRequestField, ...]:
    fields = detail.get("fields") if isinstance(detail, Mapping) else None
    if not isinstance(fields, list):
        return ()
    return tuple(
        BadRequestField(field=item["field"], description=item["description"])
        for item in fields
        if isinstance(item, Mapping)
        and isinstance(item.get("field"), str)
        and isinstance(item.get("description"), str)
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _phrase(status: int) -> str | None:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return None


class ClientClosedError(AiokeysError):
    """The client was closed while a listing was still being read.

    Raised by the listing's next ``__anext__`` so that a consumer in another
    task never mistakes a cut-off listing for a complete one.
    """


def scrub_bytes(body: bytes, secrets: Collection[str]) -> bytes:
    """``body`` with every secret replaced by :data:`REDACTED`.

    Applied to an error body before a snippet is cut from it, so that a cut
    never leaves the first half of a secret behind.
    """
    for secret in _longest_first(secrets):
        raw = secret.encode()
        if len(secret) >= _SUBSTRING_MIN:
            body = body.replace(raw, REDACTED.encode())
        else:
            body = _alone_bytes(secret).sub(REDACTED.encode(), body)
    return body


def scrub_error(error: BaseException, secrets: Collection[str]) -> None:
    """Replace every secret in ``error`` and the aiokeys errors chained to it, in place.

    A server or proxy may echo the request's ``Authorization`` header, or a
    token, into its error page or Atlas' ``detail``. Every text field of an
    :class:`ApiError` (``detail``, ``reason``, ``parameters``,
    ``body_snippet``, ``bad_request_fields``, ``error_code``, ``url``) is
    scrubbed and its message rebuilt; other aiokeys errors get their
    message scrubbed. A secret shorter than :data:`_SUBSTRING_MIN` characters
    is replaced only where it stands alone. Scrubbing twice changes nothing.
    """
    ordered = _longest_first(secrets)
    if not ordered:
        return
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AiokeysError):
            _scrub_one(current, ordered)
        current = current.__cause__ or current.__context__


def _scrub_one(error: AiokeysError, secrets: Sequence[str]) -> None:
    def clean(text: str) -> str:
        for secret in secrets:
            if len(secret) >= _SUBSTRING_MIN:
                text = text.replace(secret, REDACTED)
            else:
                text = _alone(secret).sub(REDACTED, text)
        return text

    if isinstance(error, ApiError):
        for name in ("error_code", "reason", "detail", "body_snippet", "url"):
            value = getattr(error, name)
            if isinstance(value, str):
                setattr(error, name, clean(value))
        if error.body_snippet is not None:
            error.body_snippet = _cut_secret_tail(error.body_snippet, secrets)
        error.parameters = tuple(
            clean(p) if isinstance(p, str) else p for p in error.parameters
        )
        error.bad_request_fields = tuple(
            BadRequestField(field=clean(f.field), description=clean(f.description))
            for f in error.bad_request_fields
        )
        error.args = (error._message(),)
        return
    error.args = tuple(clean(a) if isinstance(a, str) else a for a in error.args)


def _cut_secret_tail(snippet: str, secrets: Sequence[str]) -> str:
    """Redact the start of a secret that a snippet's cut left at its end.

    :func:`safe_snippet` cuts long text and ends it with ``…``; when the cut
    falls inside a secret, a plain search no longer finds the secret, but
    its first characters are still there.
    """
    if not snippet.endswith("…"):
        return snippet
    text = snippet[:-1]
    for secret in secrets:
        for size in range(len(secret) - 1, _TAIL_MIN - 1, -1):
            if text.endswith(secret[:size]):
                return text[:-size] + REDACTED + "…"
    return snippet


def _alone(secret: str) -> re.Pattern[str]:
    """``secret`` standing alone in text, not inside a longer token."""
    return re.compile(rf"(?<!{_TOKEN_CHAR}){re.escape(secret)}(?!{_TOKEN_CHAR})")


def _alone_bytes(secret: str) -> re.Pattern[bytes]:
    """:func:`_alone` for a raw body."""
    return re.compile(_alone(secret).pattern.encode())


def _longest_first(secrets: Collection[str]) -> list[str]:
    """Non-empty secrets, longest first, so one inside another is not half replaced."""
    return sorted({s for s in secrets if s}, key=len, reverse=True)

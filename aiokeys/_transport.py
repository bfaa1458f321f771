"""The wire layer: one JSON ``GET`` against Atlas, its errors and its retries.

A :class:`Transport` belongs to one client and is shared by all its streams.
Each :meth:`Transport.get_json` call is one logical request: it may take several
attempts, paced by the client's :class:`~aiokeys.RetryPolicy` through
:func:`backoff.on_exception`, and it ends in decoded JSON or in an
:class:`~aiokeys.AiokeysError` whose ``__cause__`` is the aiohttp or json
exception behind it (for aiohttp's response errors, a copy without the
request's headers: see :func:`safe_cause`).

Every error is scrubbed of the bound credential's secrets
(:meth:`~aiokeys._auth.BoundAuth.secrets`) before it is raised: a proxy's error
page or Atlas' ``detail`` may echo the ``Authorization`` header.

Nothing is sent to another origin: :class:`OriginGuard`, the first request
middleware, refuses a redirect that leaves the base URL's origin, and the
call fails with :class:`~aiokeys.UnexpectedResponseError`.

Three budgets meet here:

* a client-wide semaphore of ``concurrency`` attempts in flight, held only
  while an attempt talks to the server, never during a backoff sleep;
* a per-scope (org or project) gate: after a 429, every request of that scope
  waits until the server's ``Retry-After`` is over instead of draining the
  token bucket again;
* an optional ``deadline`` (a :func:`time.monotonic` value) bounding the call,
  retries and waits included.

aiohttp itself re-sends an idempotent request once, at once, when the connection
breaks before any answer (RFC 9112 §9.3.1); that happens inside one attempt
here, so a persistently resetting server sees up to ``2 * max_tries`` requests.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final

import aiohttp
import attrs
import backoff
from aiohttp import hdrs
from backoff.types import Details
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._auth import BoundAuth, same_origin
from ._errors import (
    AiokeysError,
    ApiError,
    InvalidArgumentError,
    RateLimitError,
    RequestTimeoutError,
    TransportError,
    UnexpectedResponseError,
    error_from_payload,
    error_from_response,
    safe_snippet,
    scrub_bytes,
    scrub_error,
)
from ._retry import RetryPolicy, is_retryable, parse_retry_after

__all__ = ["OriginGuard", "Transport", "safe_cause"]

_log = logging.getLogger(__name__)

_METHOD: Final = "GET"
_RETRIED: Final = (ApiError, TransportError)


def _give_up(exc: Exception) -> bool:
    """The ``giveup`` predicate handed to ``backoff``: the same for every call."""
    return not is_retryable(exc)


@attrs.frozen(kw_only=True)
class _Reply:
    """What an attempt keeps of a response once its body is read and released."""

    status: int
    body: bytes
    content_type: str
    retry_after: float | None


@attrs.define(kw_only=True)
class _Call:
    """One :meth:`Transport.get_json` call, carried across its attempts."""

    url: URL
    params: dict[str, str]
    scope: str
    page_num: int | None
    deadline: float | None
    on_retry: Callable[[BaseException], None] | None
    attempt: int = 0
    last_failure: BaseException | None = None

    @property
    def where(self) -> str:
        """The URL without its query string, for messages and logs."""
        return str(self.url.with_query(None))

    @property
    def envelope(self) -> bool:
        return self.params.get("envelope", "").lower() == "true"

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None``."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def deadline_error(self) -> RequestTimeoutError:
        """The error for a deadline that ran out; chain it to the cause."""
        text = (
            f"{_METHOD} {self.where}{_page_note(self.page_num)}: deadline reached "
            f"during attempt {self.attempt}"
        )
        if self.last_failure is not None:
            text += f", after {_cause(self.last_failure)}"
        error = RequestTimeoutError(text, deadline_exceeded=True)
        error.page_num = self.page_num
        return error


class Transport:
    """Sends the client's Atlas ``GET`` requests: auth, retries, errors, JSON.

    Args:
        session: The client's session; the transport never closes it.
        base_url: The Atlas origin, already validated.
        api_version: Goes into ``Accept: application/vnd.atlas.<version>+json``.
        auth: The bound credential, passed to aiohttp as request middleware.
        retry: The policy every call of this client follows.
        concurrency: Attempts in flight at once across the whole client.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_url: URL,
        api_version: str,
        auth: BoundAuth,
        retry: RetryPolicy,
        concurrency: int,
    ) -> None:
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or concurrency < 1
        ):
            # A zero semaphore would hang every request without a word.
            raise InvalidArgumentError(
                f"concurrency must be an integer >= 1, got {concurrency!r}"
            )
        self._session = session
        self._base_url = base_url
        self._accept = f"application/vnd.atlas.{api_version}+json"
        self._auth = auth
        self._guard = OriginGuard(base_url)
        self._retry = retry
        self._slots = asyncio.Semaphore(concurrency)
        self._cpu = asyncio.Lock()
        # scope -> monotonic time before which no request of that scope starts
        self._gates: dict[str, float] = {}
        self._retrying = self._with_retries(max_time=retry.max_time)

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy every call follows."""
        return self._retry

    @property
    def cpu_turn(self) -> asyncio.Lock:
        """Held while a response is parsed or a page decoded, one at a time.

        When many pages land in the same turn of the event loop, parsing and
        decoding them one after another in that turn would hold the loop for
        the sum of them all. Taking turns on this lock spreads the work over
        several turns of the loop, so the application's own tasks keep running
        while a listing decodes (``nox -s bench``, scenario 5).
        """
        return self._cpu

    async def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        scope: str,
        page_num: int | None = None,
        on_retry: Callable[[BaseException], None] | None = None,
        deadline: float | None = None,
    ) -> Any:
        """``GET`` ``path`` and return its decoded JSON, retrying what is worth it.

        Args:
            path: Relative to the base URL, e.g. ``/api/atlas/v2/orgs/{id}/aiModelApiKeys``.
            params: Query parameters; ``envelope=true`` bodies are unwrapped.
            scope: The org or project id whose 429s this request shares.
            page_num: The listing page, attached to errors and log lines.
            on_retry: Called with the failure once per scheduled retry.
            deadline: A :func:`time.monotonic` value bounding the whole call.

        Returns:
            The JSON body; for ``envelope=true``, a list without its ``status``
            or a single resource's ``content``.

        Raises:
            ApiError: An error status (or envelope status), once retries are over.
            TransportError: No complete response, once retries are over;
                :class:`RequestTimeoutError` when ``deadline`` ran out.
            UnexpectedResponseError: A success status with a body that is not JSON.
        """
        call = _Call(
            url=self._base_url.with_path(path),
            params=dict(params or {}),
            scope=scope,
            page_num=page_num,
            deadline=deadline,
            on_retry=on_retry,
        )
        remaining = call.remaining()
        if remaining is None or remaining >= self._retry.max_time:
            return await self._retrying(call)
        # A deadline sooner than the policy's max_time shortens this call's budget.
        return await self._with_retries(max_time=remaining)(call)

    def _with_retries(
        self, *, max_time: float
    ) -> Callable[[_Call], Coroutine[Any, Any, Any]]:
        """:meth:`_attempt` wrapped in the policy's retries, ``max_time`` bounding them."""
        return backoff.on_exception(
            self._retry.waits,
            _RETRIED,
            max_tries=self._retry.max_tries,
            max_time=max_time,
            jitter=None,  # the policy's wait generator jitters, Retry-After aside
            giveup=_give_up,
            on_backoff=self._on_backoff,
            logger=None,  # backoff's own lines would carry exception messages
            budget=max_time,  # handed to the wait generator (RetryPolicy.waits)
        )(self._attempt)

    def _on_backoff(self, details: Details) -> None:
        """Log the scheduled retry, close the scope's gate on a 429, tell the caller."""
        (call,) = details["args"]
        exc = details.get("exception")
        wait = details.get("wait", 0.0)
        call.last_failure = exc
        _log.info(
            "retrying %s page=%s in %.2fs after %s (attempt %d of %d)",
            call.url.path,
            call.page_num,
            wait,
            _cause(exc),
            call.attempt,
            self._retry.max_tries,
        )
        if isinstance(exc, RateLimitError):
            until = time.monotonic() + wait
            self._gates[call.scope] = max(self._gates.get(call.scope, 0.0), until)
        if call.on_retry is not None and exc is not None:
            call.on_retry(exc)

    async def _attempt(self, call: _Call) -> Any:
        """One attempt; every error it raises is scrubbed of the credential's secrets.

        Scrubbed here rather than once at the end, so that ``on_retry`` and the
        retry log see clean errors too.
        """
        try:
            return await self._attempt_once(call)
        except AiokeysError as exc:
            scrub_error(exc, self._auth.secrets())
            raise

    async def _attempt_once(self, call: _Call) -> Any:
        """Wait for the scope's gate, send, read, decode."""
        call.attempt += 1
        await self._pass_gate(call)
        async with self._slots:
            started = time.monotonic()
            reply = await self._send(call, started)
        self._log_attempt(call, reply.status, started)
        async with self._cpu:
            decoded = self._decode(call, reply)
        await asyncio.sleep(0)  # the next parse or decode waits for the next turn
        return decoded

    async def _pass_gate(self, call: _Call) -> None:
        """Wait while a 429 of ``call.scope`` is being waited out, or the deadline."""
        while True:
            remaining = call.remaining()
            if remaining == 0.0:
                raise call.deadline_error() from call.last_failure
            until = self._gates.get(call.scope)
            now = time.monotonic()
            if until is None or until <= now:
                self._gates.pop(call.scope, None)
                return
            pause = until - now
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))

    async def _send(self, call: _Call, started: float) -> _Reply:
        """Send one request and read its whole body, mapping failures to ours.

        The error is raised after the ``except`` clause, so that it chains only
        :func:`safe_cause`'s copy of aiohttp's exception, not the original as
        ``__context__``: that one may carry the request's headers.
        """
        timeout = asyncio.timeout(call.remaining())
        try:
            async with (
                timeout,
                self._session.get(
                    call.url,
                    params=call.params,
                    headers={hdrs.ACCEPT: self._accept},
                    middlewares=(self._guard, self._auth),
                    raise_for_status=False,
                ) as response,
            ):
                return await _read(response)
        except OffOrigin as exc:
            failure: AiokeysError = _off_origin_error(call, exc.origin)
            cause = None
        except (aiohttp.ClientError, OSError) as exc:
            # TimeoutError is an OSError: asyncio's, aiohttp's socket timeouts, ours.
            self._log_attempt(call, None, started)
            expired = timeout.expired()
            failure = call.deadline_error() if expired else _transport_error(call, exc)
            cause = safe_cause(exc)
        raise failure from cause

    def _decode(self, call: _Call, reply: _Reply) -> Any:
        """Turn a complete response into JSON, or raise what it means."""
        if not 200 <= reply.status < 300:
            raise error_from_response(
                reply.status,
                scrub_bytes(reply.body, self._auth.secrets()),
                method=_METHOD,
                url=call.where,
                page_num=call.page_num,
                retry_after=reply.retry_after,
            )
        payload = _parse_json(call, reply, secrets=self._auth.secrets())
        if call.envelope:
            return _unwrap(call, reply, payload)
        return payload

    def _log_attempt(self, call: _Call, status: int | None, started: float) -> None:
        _log.debug(
            "GET %s page=%s size=%s status=%s attempt=%d elapsed=%.3fs",
            call.url.path,
            call.page_num,
            call.params.get("itemsPerPage"),
            status if status is not None else "-",
            call.attempt,
            time.monotonic() - started,
        )


async def _read(response: aiohttp.ClientResponse) -> _Reply:
    """Read the whole body and what else an attempt keeps of the response."""
    body = await response.read()
    return _Reply(
        status=response.status,
        body=body,
        content_type=response.content_type,
        retry_after=parse_retry_after(response.headers.get(hdrs.RETRY_AFTER)),
    )


class OffOrigin(Exception):
    """Raised by :class:`OriginGuard` for a request to ``origin``; caught in ``_send``."""

    def __init__(self, origin: str) -> None:
        super().__init__(origin)
        self.origin = origin


@attrs.frozen
class OriginGuard:
    """The first request middleware: nothing is sent to another origin.

    aiohttp runs request middlewares again on every redirect hop, so this
    sees each hop before the credential does. A redirect to the base URL's
    own origin is followed (and signed); one anywhere else is refused before
    any byte is sent there, because a page answered by another origin could
    hand the caller keys that Atlas never listed.
    """

    origin: URL

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if not same_origin(request.url, self.origin):
            raise OffOrigin(str(request.url.origin()))
        return await handler(request)


def safe_cause(exc: BaseException) -> BaseException | None:
    """``exc``, or for aiohttp's response errors a copy that carries no headers.

    :class:`aiohttp.ClientResponseError` and its kind (``TooManyRedirects``,
    ``ContentTypeError``, ...) keep the request's ``request_info``, whose
    headers include ``Authorization``, and a ``history`` of responses that
    keep theirs; their ``repr`` and any error reporter walking ``__cause__``
    would show them. The copy keeps the class, URL, method, status and
    message; when it cannot be built, nothing is chained.
    """
    if not isinstance(exc, aiohttp.ClientResponseError):
        return exc
    info = exc.request_info
    bare = aiohttp.RequestInfo(
        info.url, info.method, CIMultiDictProxy(CIMultiDict()), info.real_url
    )
    try:
        return type(exc)(bare, (), status=exc.status, message=exc.message)
    except TypeError:
        return None


def _off_origin_error(call: _Call, origin: str) -> UnexpectedResponseError:
    error = UnexpectedResponseError(
        f"{_METHOD} {call.where}{_page_note(call.page_num)}: redirected to another "
        f"origin {origin}; not followed"
    )
    error.page_num = call.page_num
    return error


def _parse_json(call: _Call, reply: _Reply, *, secrets: Sequence[str] = ()) -> Any:
    """Decode a success body; a body cut short is a transport fault, not ours.

    ``secrets`` are removed from a body quoted in an error before it is cut.
    """
    if not _is_json(reply.content_type):
        what = f"content type {reply.content_type!r}"
        raise _unexpected(call, what, scrub_bytes(reply.body, secrets))
    if not reply.body.strip():
        raise _unexpected(call, "an empty body", reply.body)
    try:
        return json.loads(reply.body)
    except json.JSONDecodeError as exc:
        if _cut_short(exc):
            error = TransportError(
                f"{_METHOD} {call.where}{_page_note(call.page_num)}: "
                "response body cut short (incomplete JSON)"
            )
            error.page_num = call.page_num
            raise error from exc
        body = scrub_bytes(reply.body, secrets)
        raise _unexpected(call, "a body that is not JSON", body) from exc
    except (ValueError, RecursionError) as exc:
        body = scrub_bytes(reply.body, secrets)
        raise _unexpected(call, "a body that is not JSON", body) from exc


def _cut_short(exc: json.JSONDecodeError) -> bool:
    """Whether the document just stopped: the failure is at its very end."""
    return exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string")


def _unwrap(call: _Call, reply: _Reply, payload: Any) -> Any:
    """Undo ``envelope=true``; a body ``status`` >= 400 raises as that status would."""
    if not isinstance(payload, dict):
        return payload
    status = payload.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        return payload
    if status >= 400:
        raise error_from_payload(
            status,
            payload.get("content"),
            method=_METHOD,
            url=call.where,
            page_num=call.page_num,
            retry_after=reply.retry_after,
        )
    if "content" in payload and "results" not in payload:
        return payload["content"]
    return {name: value for name, value in payload.items() if name != "status"}


def _is_json(content_type: str) -> bool:
    kind = content_type.lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _unexpected(call: _Call, what: str, body: bytes) -> UnexpectedResponseError:
    snippet = safe_snippet(body[:1024].decode("utf-8", errors="replace"))
    text = (
        f"{_METHOD} {call.where}{_page_note(call.page_num)}: success status with {what}"
    )
    if snippet:
        text += f": {snippet!r}"
    error = UnexpectedResponseError(text)
    error.page_num = call.page_num
    return error


def _transport_error(call: _Call, exc: BaseException) -> AiokeysError:
    """Our error for an aiohttp or socket failure; the message names no secret.

    Network faults become :class:`TransportError` (retried). A URL aiohttp
    refuses and a response it refuses to follow (too many redirects) are not
    passing faults: they become errors that are not retried.
    """
    text = f"{_METHOD} {call.where}{_page_note(call.page_num)}: {_describe(exc)}"
    error: AiokeysError
    if isinstance(exc, TimeoutError):
        error = RequestTimeoutError(text)
    elif isinstance(exc, aiohttp.InvalidURL):
        error = InvalidArgumentError(text)
    elif isinstance(exc, aiohttp.ClientResponseError):
        error = UnexpectedResponseError(text)
    else:
        error = TransportError(text)
    error.page_num = call.page_num
    return error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        what = "timed out"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        what = "could not connect"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        what = "server closed the connection"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        what = "response body cut short"
    elif isinstance(exc, aiohttp.InvalidURL):
        what = "invalid URL"
    elif isinstance(exc, aiohttp.TooManyRedirects):
        what = "too many redirects"
    elif isinstance(exc, ConnectionResetError) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNRESET
    ):
        what = "connection reset"
    else:
        what = "request failed"
    return f"{what} ({type(exc).__name__})"


def _cause(exc: BaseException | None) -> str:
    if isinstance(exc, ApiError):
        return f"{type(exc).__name__} {exc.status}"
    return type(exc).__name__


def _page_note(page_num: int | None) -> str:
    return "" if page_num is None else f" (page {page_num})"

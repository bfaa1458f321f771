"""The public :class:`Client`: listings, single pages and single keys.

A client owns (or borrows) one aiohttp session, binds its credential to it,
and shares one :class:`~aiokeys._transport.Transport` (and so one budget of
requests in flight) between every listing it opens. It holds no global state
and may be used by many tasks at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import aiohttp
import cattrs
from yarl import URL

from ._auth import Auth, AuthContext, BoundAuth, validate_base_url
from ._decode import decode_key, decode_page_yielding
from ._errors import ClientClosedError, InvalidArgumentError
from ._models import ApiKey, Page, make_converter
from ._retry import RetryPolicy
from ._stream import KeyStream, ListingSpec, OnDrift
from ._transport import Transport

if TYPE_CHECKING:
    from ._bulk import BulkKeyStream, OnError

__all__ = ["Client"]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://cloud.mongodb.com"
DEFAULT_API_VERSION: Final = "2025-03-12"
#: Seconds one attempt may take when the client builds its own session.
DEFAULT_TIMEOUT: Final = 30.0
MAX_PAGE_SIZE: Final = 500

_SCOPE_ID: Final = re.compile(r"[a-f0-9]{24}")
# One URL path segment; starting with a letter or digit rules out "." and "..".
_KEY_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
# A release date, optionally Atlas' ".upcoming" form of it, or "preview".
_API_VERSION: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(\.upcoming)?|preview")
_ON_DRIFT: Final = frozenset({"repair", "warn", "raise"})
_PREFIX: Final = "/api/atlas/v2"


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``low..high``; else name it in an error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise InvalidArgumentError(f"{name} must be {bound}, got {value!r}")
    return value


def _check_seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < float("inf")
    ):
        raise InvalidArgumentError(
            f"{name} must be a positive number of seconds, got {value!r}"
        )
    return float(value)


def _check_id(name: str, value: object, pattern: re.Pattern[str] = _SCOPE_ID) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        what = "24 lowercase hex digits" if pattern is _SCOPE_ID else "a key id"
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}")
    return value


def _check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False``: ``"yes"`` or 1 is a slip."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def _check_base_url(base_url: object, *, allow_insecure_http: object) -> URL:
    """Check the base URL's type first: yarl's own TypeError names no argument."""
    if not isinstance(base_url, str | URL):
        raise InvalidArgumentError(
            f"base_url must be a str or yarl.URL, got a {type(base_url).__name__}"
        )
    insecure = _check_bool("allow_insecure_http", allow_insecure_http)
    return validate_base_url(base_url, allow_insecure_http=insecure)


def _check_options(
    *,
    auth: object,
    api_version: object,
    retry: object,
    session: object,
    timeout: object,
) -> float | None:
    """Check the constructor's non-numeric options; return the timeout in seconds."""
    if not callable(getattr(auth, "bind", None)):
        # Only the type: a token passed here by mistake must not be echoed.
        raise InvalidArgumentError(
            f"auth must be an aiokeys credential such as BearerToken, "
            f"got a {type(auth).__name__}"
        )
    if not isinstance(api_version, str) or not _API_VERSION.fullmatch(api_version):
        raise InvalidArgumentError(
            f"api_version must look like 2025-03-12 or preview, got {api_version!r}"
        )
    if not isinstance(retry, RetryPolicy):
        raise InvalidArgumentError(f"retry must be a RetryPolicy, got {retry!r}")
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise InvalidArgumentError(
            f"session must be an aiohttp.ClientSession, got a {type(session).__name__}"
        )
    if isinstance(session, aiohttp.ClientSession) and session.closed:
        raise InvalidArgumentError("session is closed: pass an open ClientSession")
    seconds = _check_seconds("timeout", timeout)
    if session is not None and seconds is not None:
        raise InvalidArgumentError(
            "timeout applies to the client's own session; set it on the given session"
        )
    return seconds


class Client:
    """An async client for the Atlas AI model API keys endpoints.

    Use it as ``async with Client(auth=...) as client:`` or call
    :meth:`aclose` when done. Closing it closes every listing still open
    (cancelling and awaiting their requests), unbinds the credential and, if
    the client built it, closes the session.

    Args:
        auth: A credential: :class:`~aiokeys.BearerToken`,
            :class:`~aiokeys.DigestAuth` or :class:`~aiokeys.ServiceAccount`.
        base_url: The Atlas origin; plain ``http`` only for loopback or with
            ``allow_insecure_http=True``.
        api_version: The versioned media type, ``2025-03-12`` by default.
        concurrency: Requests in flight at once across the whole client (>= 1),
            and at most that many per listing.
        retry: How each request is retried.
        session: An aiohttp session to use; the client then never closes it.
        window: Pages a listing may have in flight or waiting for its
            consumer (>= 1); by default ``2 * concurrency``. Bounds a
            listing's memory to about ``window * page_size`` keys.
        timeout: Seconds one attempt may take, for the session the client
            builds itself (default 30); with ``session=`` configure that
            session's timeout instead.
        allow_insecure_http: Accept a plain ``http`` base URL that is not
            loopback (credentials would travel in clear).
        envelope: Send ``envelope=true`` with every request, for networks
            whose proxies hide HTTP statuses: Atlas then answers 200 with the
            status in the body. Bodies are unwrapped, and a body ``status`` of
            400 or more raises exactly what that HTTP status would.

    Raises:
        InvalidArgumentError: Any argument is invalid (nothing is sent).
    """

    def __init__(
        self,
        *,
        auth: Auth,
        base_url: str | URL = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        concurrency: int = 8,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        session: aiohttp.ClientSession | None = None,
        window: int | None = None,
        timeout: float | None = None,
        allow_insecure_http: bool = False,
        envelope: bool = False,
    ) -> None:
        self._base_url = _check_base_url(
            base_url, allow_insecure_http=allow_insecure_http
        )
        self._envelope = _check_bool("envelope", envelope)
        self._timeout = _check_options(
            auth=auth,
            api_version=api_version,
            retry=retry,
            session=session,
            timeout=timeout,
        )
        self.concurrency = _check_int("concurrency", concurrency, 1)
        self.window = _check_int(
            "window", 2 * self.concurrency if window is None else window, 1
        )
        self._auth = auth
        self._api_version = api_version
        self._retry = retry
        self._session = session
        self._owns_session = session is None
        self.converter: cattrs.Converter = make_converter()
        self._bound: BoundAuth | None = None
        self._transport: Transport | None = None
        self._streams: weakref.WeakSet[KeyStream] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<aiokeys.Client {self._base_url} concurrency={self.concurrency}>"

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def transport(self) -> Transport:
        """The client's transport (opened on first use, inside the event loop)."""
        return self._open()

    def _open(self) -> Transport:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._transport is not None:
            return self._transport
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout or DEFAULT_TIMEOUT)
            )
        self._bound = self._auth.bind(
            AuthContext(
                session=self._session, base_url=self._base_url, retry=self._retry
            )
        )
        self._transport = Transport(
            session=self._session,
            base_url=self._base_url,
            api_version=self._api_version,
            auth=self._bound,
            retry=self._retry,
            concurrency=self.concurrency,
        )
        return self._transport

    async def aclose(self) -> None:
        """Close open listings, await their requests, unbind auth, close the own session.

        Idempotent; the client cannot be used afterwards.
        """
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.abort(
                ClientClosedError(
                    f"listing {stream.label} stopped: its client was closed"
                )
            )
        await self._reap_tasks()
        if self._bound is not None:
            await self._bound.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()
        _log.debug("client for %s closed", self._base_url)

    async def _reap_tasks(self) -> None:
        """Cancel and await page requests of listings no one closed (or kept)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _spawn(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Start a task the client tracks, cancels and awaits when it closes."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: an abandoned listing logs nothing

    # -- listings -----------------------------------------------------------

    def org_keys(
        self,
        org_id: str,
        *,
        page_size: int = 100,
        max_items: int | None = None,
        ordered: bool = True,
        on_drift: OnDrift = "repair",
        start_page: int = 1,
        deadline: float | None = None,
    ) -> KeyStream:
        """Every key of an organization, as a :class:`~aiokeys.KeyStream`.

        Nothing is requested until the stream is iterated. Page 1 (or
        ``start_page``) is read alone, then the other pages concurrently; see
        :class:`~aiokeys.KeyStream` for the end rule and drift.

        Args:
            org_id: The organization, 24 lowercase hex digits.
            page_size: Keys per request, 1..500.
            max_items: Stop after this many keys (>= 1); pages not needed for
                them are never requested.
            ordered: Keys in server order (page ``k`` after ``k - 1``), or
                ``False`` for pages as they land.
            on_drift: What a listing that shifted under us does: ``"repair"``
                re-reads it until a clean pass and yields the keys it missed
                last; ``"warn"`` only records; ``"raise"`` raises
                :class:`~aiokeys.DriftError`.
            start_page: The first page to read (>= 1). After a failure, pass
                the error's ``page_num``: with ``ordered=True`` the keys of the
                earlier pages were all delivered and none of that page, so
                the listing resumes with neither gap nor repeat (unless the
                list changed in between).
            deadline: Seconds the whole listing may take from its first
                request, retries, re-reads and a slow consumer included; past
                it the next ``__anext__`` raises
                :class:`~aiokeys.RequestTimeoutError`.

        Returns:
            A stream of the organization's keys; nothing is sent before it
            is iterated. Its errors are those listed in :class:`KeyStream`.

        Raises:
            InvalidArgumentError: An invalid argument (nothing is sent).
            ClientClosedError: The client is closed.
        """
        spec = self._spec(
            f"orgs/{_check_id('org_id', org_id)}",
            page_size=page_size,
            max_items=max_items,
            ordered=ordered,
            on_drift=on_drift,
            start_page=start_page,
            deadline=deadline,
        )
        return self._listing("orgs", org_id, spec)

    def group_keys(
        self,
        group_id: str,
        *,
        page_size: int = 100,
        max_items: int | None = None,
        ordered: bool = True,
        on_drift: OnDrift = "repair",
        start_page: int = 1,
        deadline: float | None = None,
    ) -> KeyStream:
        """Every key of a project (group), as a :class:`~aiokeys.KeyStream`.

        The same listing as :meth:`org_keys`, over
        ``/groups/{group_id}/aiModelApiKeys``; every other argument means
        what it means there.

        Args:
            group_id: The project, 24 lowercase hex digits.
            page_size: Keys per request, 1..500.
            max_items: Stop after this many keys (>= 1).
            ordered: Server order, or ``False`` for pages as they land.
            on_drift: ``"repair"``, ``"warn"`` or ``"raise"``.
            start_page: The first page to read (>= 1).
            deadline: Seconds the whole listing may take.

        Returns:
            A stream of the project's keys; nothing is sent before it is iterated.

        Raises:
            InvalidArgumentError: An invalid argument (nothing is sent).
            ClientClosedError: The client is closed.
        """
        spec = self._spec(
            f"groups/{_check_id('group_id', group_id)}",
            page_size=page_size,
            max_items=max_items,
            ordered=ordered,
            on_drift=on_drift,
            start_page=start_page,
            deadline=deadline,
        )
        return self._listing("groups", group_id, spec)

    def _listing(self, kind: str, scope_id: str, spec: ListingSpec) -> KeyStream:
        if self._closed:
            raise ClientClosedError("the client is closed")
        path = f"{_PREFIX}/{kind}/{scope_id}/aiModelApiKeys"

        async def fetch(
            page_num: int, deadline_at: float | None, on_retry: Any
        ) -> Page:
            return await self._get_page(
                path,
                scope_id,
                page_num,
                spec.page_size,
                deadline_at=deadline_at,
                on_retry=on_retry,
            )

        stream = KeyStream(
            spec=spec, fetch=fetch, spawn=self._spawn, on_close=self._streams.discard
        )
        self._streams.add(stream)
        return stream

    def _spec(
        self,
        label: str,
        *,
        page_size: object,
        max_items: object,
        ordered: object,
        on_drift: object,
        start_page: object,
        deadline: object,
    ) -> ListingSpec:
        _check_int("page_size", page_size, 1, MAX_PAGE_SIZE)
        if max_items is not None:
            _check_int("max_items", max_items, 1)
        if not isinstance(ordered, bool):
            raise InvalidArgumentError(
                f"ordered must be True or False, got {ordered!r}"
            )
        if not isinstance(on_drift, str) or on_drift not in _ON_DRIFT:
            raise InvalidArgumentError(
                f"on_drift must be 'repair', 'warn' or 'raise', got {on_drift!r}"
            )
        _check_int("start_page", start_page, 1)
        return ListingSpec(
            label=label,
            page_size=page_size,  # type: ignore[arg-type]
            max_items=max_items,  # type: ignore[arg-type]
            ordered=ordered,
            on_drift=on_drift,  # type: ignore[arg-type]
            start_page=start_page,  # type: ignore[arg-type]
            deadline=_check_seconds("deadline", deadline),
            concurrency=self.concurrency,
            window=self.window,
        )

    # -- single pages and keys ----------------------------------------------

    async def org_keys_page(
        self, org_id: str, *, page_num: int = 1, page_size: int = 100
    ) -> Page:
        """One page of an organization's keys, as Atlas returns it.

        A single request (retried like any other): no end rule, no dedupe, no
        drift check. Use it to look at the raw paging, e.g. ``totalCount``.

        Args:
            org_id: The organization, 24 lowercase hex digits.
            page_num: The page to read (>= 1).
            page_size: Keys asked for, 1..500.

        Returns:
            The decoded page: its keys (``items``), ``total_count`` (``None``
            when Atlas sent none) and ``links``.

        Raises:
            InvalidArgumentError: An invalid argument (nothing is sent).
            ApiError: Atlas answered with an error status (a subclass per
                status: 401, 403, 404, 429, 5xx...), once retries are over.
            UnexpectedResponseError: The body is not a page.
            TransportError: No complete answer (refused, reset, timed out).
            ClientClosedError: The client is closed.
        """
        return await self._one_page(
            "orgs", _check_id("org_id", org_id), page_num, page_size
        )

    async def group_keys_page(
        self, group_id: str, *, page_num: int = 1, page_size: int = 100
    ) -> Page:
        """One page of a project's keys, as Atlas returns it.

        Args:
            group_id: The project, 24 lowercase hex digits.
            page_num: The page to read (>= 1).
            page_size: Keys asked for, 1..500.

        Returns:
            The decoded page, as :meth:`org_keys_page` returns it.

        Raises:
            InvalidArgumentError: An invalid argument (nothing is sent).
            ApiError: An error status, once retries are over.
            UnexpectedResponseError: The body is not a page.
            TransportError: No complete answer.
            ClientClosedError: The client is closed.
        """
        return await self._one_page(
            "groups", _check_id("group_id", group_id), page_num, page_size
        )

    async def _one_page(
        self, kind: str, scope_id: str, page_num: int, page_size: int
    ) -> Page:
        _check_int("page_num", page_num, 1)
        _check_int("page_size", page_size, 1, MAX_PAGE_SIZE)
        path = f"{_PREFIX}/{kind}/{scope_id}/aiModelApiKeys"
        return await self._get_page(path, scope_id, page_num, page_size)

    async def _get_page(
        self,
        path: str,
        scope_id: str,
        page_num: int,
        page_size: int,
        *,
        deadline_at: float | None = None,
        on_retry: Any = None,
    ) -> Page:
        # Every request of a listing carries these same parameters but pageNum.
        params = {"itemsPerPage": str(page_size), "pageNum": str(page_num)}
        params.update(self._extra_params())
        body = await self._open().get_json(
            path,
            params,
            scope=scope_id,
            page_num=page_num,
            on_retry=on_retry,
            deadline=deadline_at,
        )
        async with self._open().cpu_turn:  # one page decodes at a time
            return await decode_page_yielding(
                self.converter, body, page_num=page_num, page_size=page_size
            )

    async def get_org_key(self, org_id: str, api_key_id: str) -> ApiKey:
        """One key of an organization, by its id.

        Args:
            org_id: The organization, 24 lowercase hex digits.
            api_key_id: The key's ``apiKeyId``: one URL path segment of
                letters, digits and ``._~-``, not starting with a dot.

        Returns:
            The key. Atlas sends no ``secret`` here, so ``secret`` is ``None``.

        Raises:
            InvalidArgumentError: An invalid id (nothing is sent).
            NotFoundError: No such key in that organization (or no such org).
            ApiError: Any other error status, once retries are over.
            UnexpectedResponseError: The body is not a key.
            TransportError: No complete answer.
            ClientClosedError: The client is closed.
        """
        return await self._one_key("orgs", _check_id("org_id", org_id), api_key_id)

    async def get_group_key(self, group_id: str, api_key_id: str) -> ApiKey:
        """One key of a project, by its id.

        Args:
            group_id: The project, 24 lowercase hex digits.
            api_key_id: The key's ``apiKeyId`` (see :meth:`get_org_key`).

        Returns:
            The key.

        Raises:
            InvalidArgumentError: An invalid id (nothing is sent).
            NotFoundError: No such key in that project (or no such project).
            ApiError: Any other error status, once retries are over.
            UnexpectedResponseError: The body is not a key.
            TransportError: No complete answer.
            ClientClosedError: The client is closed.
        """
        return await self._one_key(
            "groups", _check_id("group_id", group_id), api_key_id
        )

    async def _one_key(self, kind: str, scope_id: str, api_key_id: str) -> ApiKey:
        _check_id("api_key_id", api_key_id, _KEY_ID)
        path = f"{_PREFIX}/{kind}/{scope_id}/aiModelApiKeys/{api_key_id}"
        body = await self._open().get_json(
            path, self._extra_params() or None, scope=scope_id
        )
        return decode_key(self.converter, body, where=f"key {api_key_id}")

    def _extra_params(self) -> dict[str, str]:
        """Query parameters every request carries (``envelope=true`` if asked)."""
        return {"envelope": "true"} if self._envelope else {}

    # -- many orgs -----------------------------------------------------------

    def keys_for_orgs(
        self,
        org_ids: Iterable[str],
        *,
        page_size: int = 100,
        on_error: OnError = "raise",
        org_concurrency: int | None = None,
    ) -> BulkKeyStream:
        """Every key of many organizations, as ``(org_id, ApiKey)`` pairs.

        Runs one ordinary listing per org (page 1 alone, then concurrent
        pages, dedupe, ``on_drift="repair"``), several orgs at a time, all
        under this client's one budget of ``concurrency`` requests in flight.
        Each org's keys come out in that org's server order; keys of
        different orgs interleave. Memory stays bounded whatever the number
        of orgs or keys (about ``org_concurrency x (window + 2) x page_size``
        keys). Use it as::

            async with client.keys_for_orgs(org_ids) as pairs:
                async for org_id, key in pairs:
                    ...

        Args:
            org_ids: 24-hex org ids (any iterable but a single string), in
                the order their listings should start; repeats are listed once.
            page_size: Keys per request for every org, 1..500.
            on_error: What a 403 or 404 of one org does: ``"raise"`` ends the
                export with it, ``"skip"`` leaves the org out, ``"collect"``
                leaves it out and records it in
                :attr:`~aiokeys.BulkKeyStream.errors`. Any other error (401,
                429 or 5xx after retries, a transport fault) ends the export.
            org_concurrency: Orgs listed at once (>= 1); by default the
                client's ``concurrency``.

        Returns:
            A :class:`~aiokeys.BulkKeyStream`; nothing is sent before it is
            iterated. Its :attr:`~aiokeys.BulkKeyStream.progress` sums up
            the orgs, pages, keys and retries.

        Raises:
            InvalidArgumentError: A bad id or option (nothing is sent).
            ClientClosedError: The client is closed.
        """
        from ._bulk import keys_for_orgs

        if self._closed:
            raise ClientClosedError("the client is closed")
        return keys_for_orgs(
            self,
            org_ids,
            page_size=page_size,
            on_error=on_error,
            org_concurrency=org_concurrency,
        )

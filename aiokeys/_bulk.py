"""Many listings as one stream: :func:`keys_for_orgs` and :class:`BulkKeyStream`.

An audit wants every key of hundreds of orgs. :class:`BulkKeyStream` runs one
ordinary :class:`~aiokeys._stream.KeyStream` per org, several orgs at a time,
and hands out ``(org_id, ApiKey)`` pairs as they come:

- **One budget.** All listings share the client's transport, whose semaphore
  bounds the requests in flight across every org; running more orgs at once
  only keeps that budget busy while an org waits for its first page.
- **Per-org order.** Each org is listed by one worker, start to end, into one
  FIFO queue: the keys of an org come out in that org's server order, while
  keys of different orgs interleave.
- **Bounded memory.** The queue holds at most two pages' worth of pairs and
  each running listing its own window of pages (the client's ``window``); a
  slow consumer stops the workers. At most about ``org_concurrency x (window
  + 2) x page_size`` keys are held, whatever the number of orgs or keys
  (measured: the ``aiokeys export`` process of 5 orgs at page size 500 peaks
  at about 80 MB resident for 100,000 keys and for 200,000 keys alike); pass
  a smaller ``org_concurrency`` to hold less.
- **Lifecycle.** The workers are tasks owned by the stream, never a
  ``TaskGroup`` around a ``yield``. Leaving ``async with``, :meth:`aclose`, an
  error, or cancelling the consumer (inside ``async with``) cancels every
  worker, which closes its listing, and waits for them. The client also
  tracks the workers: closing it cancels them, and a consumer still reading
  gets :class:`~aiokeys.ClientClosedError` once the pairs already queued are
  handed out, never a quiet, shorter end.
- **A bare break** (``break`` without ``async with``) closes nothing. The
  workers go on until the queue is full, then wait: every org started takes
  a place in the queue, as a pair does, so they stop starting orgs as well
  as pages. What it costs: each running listing finishes filling its window
  (the client's ``window`` pages ahead of the page its worker is reading)
  and the workers add at most ``2 x page_size`` pairs or org starts to the
  queue, an org without keys costing one request. That is about
  ``org_concurrency x (window + 1)`` page requests, plus one per org without
  keys started while the queue had room (measured: 6 orgs of 3,000 keys at
  page size 50 with the default window of 16 send 98 requests after the
  break, of 360). The idle workers, and the keys they hold, stay until
  :meth:`aclose` or until the client closes, which cancels and awaits them.
  Hence: use ``async with``.

``on_error`` decides what a 403 (:class:`~aiokeys.PermissionDeniedError`) or a
404 (:class:`~aiokeys.NotFoundError`) of one org does: ``"raise"`` ends the
export with it; ``"skip"`` leaves the org out; ``"collect"`` leaves it out and
records it in :attr:`BulkKeyStream.errors`. Every other error (401, 429 or 5xx
after retries, a transport fault) ends the export whatever ``on_error`` says:
it concerns the credentials or the service, not one org.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, Self, TypeAlias

import attrs

from ._errors import (
    AiokeysError,
    ApiError,
    ClientClosedError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from ._models import ApiKey

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "BulkKeyStream",
    "BulkProgress",
    "OnError",
    "OrgFailure",
    "keys_for_orgs",
]

logger = logging.getLogger(__name__)

OnError: TypeAlias = Literal["raise", "skip", "collect"]
_ON_ERROR: Final[frozenset[str]] = frozenset({"raise", "skip", "collect"})
_ID_PATTERN: Final = re.compile(r"[a-f0-9]{24}")
_LEFT_OUT: Final = (PermissionDeniedError, NotFoundError)

Scope: TypeAlias = tuple[Literal["org", "group"], str]
#: spawn(coroutine, name) -> a task its owner (the client) also tracks
Spawn: TypeAlias = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class _ListingProgress(Protocol):
    """The part of a listing's progress snapshot the bulk totals add up."""

    @property
    def pages_done(self) -> int: ...

    @property
    def pages_expected(self) -> int | None: ...

    @property
    def retries(self) -> int: ...


class _Listing(Protocol):
    """What the bulk stream needs of one listing (a ``KeyStream``)."""

    def __aiter__(self) -> AsyncIterator[ApiKey]: ...

    async def aclose(self) -> None: ...

    @property
    def progress(self) -> _ListingProgress: ...


@attrs.frozen(kw_only=True)
class OrgFailure:
    """An org left out of a bulk export, and why.

    Attributes:
        org_id: The org (or, from the command line's ``--group``, project) id.
        error: The 403 or 404 it answered. If it failed part-way through its
            listing, ``error.keys_yielded`` says how many of its keys had
            already been handed out (they cannot be taken back).
    """

    org_id: str
    error: ApiError


@attrs.frozen(kw_only=True)
class BulkProgress:
    """A snapshot of a bulk export's progress.

    Attributes:
        orgs_total: Orgs to list (after removing repeated ids).
        orgs_started: Orgs whose listing has begun.
        orgs_done: Orgs finished, listed or left out.
        orgs_failed: Orgs left out under ``on_error="skip"`` or ``"collect"``.
        pages_done: Pages fetched, over all orgs.
        pages_expected: Pages expected of the orgs started so far: for a
            running org its listing's estimate, for a finished org the pages
            it took. Orgs not yet started add nothing, so this grows until
            ``orgs_started == orgs_total``.
        keys_yielded: ``(org_id, key)`` pairs handed to the consumer.
        retries: Retries scheduled, over all orgs.
    """

    orgs_total: int
    orgs_started: int
    orgs_done: int
    orgs_failed: int
    pages_done: int
    pages_expected: int
    keys_yielded: int
    retries: int


@attrs.define
class _Totals:
    """What finished listings contributed, kept once they are gone."""

    started: int = 0
    done: int = 0
    failed: int = 0
    pages: int = 0
    retries: int = 0

    def finish(self, progress: _ListingProgress, *, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        self.pages += progress.pages_done
        self.retries += progress.retries


class _Marker:
    """A queue item that is not a pair; the consumer skips it."""


#: Put by a worker before it starts an org: every org, even one without keys,
#: takes a place in the bounded queue, so workers stop starting orgs once the
#: queue is full and nobody reads it.
_ORG_START: Final = _Marker()
#: Put by whoever ends the export when the queue is empty, so that a consumer
#: waiting in ``get()`` wakes and reads the stored end.
_WAKE: Final = _Marker()

# What the workers put in the queue. How the export ends is not queued: it is
# stored on the stream (``_end_with``), so no cancelled ``put`` can lose it.
_Item: TypeAlias = "tuple[str, ApiKey] | _Marker"


def validate_scopes(ids: Iterable[str], what: str) -> list[str]:
    """Check every id before any request; return them without repeats, in order.

    Raises:
        InvalidArgumentError: ``ids`` is a single string (a common slip that
            would otherwise list one org per character), or an id is not 24
            lowercase hexadecimal digits.
    """
    if isinstance(ids, str | bytes):
        raise InvalidArgumentError(
            f"{what} ids must be a collection of ids, not one string: {ids!r}"
        )
    if not isinstance(ids, Iterable):
        raise InvalidArgumentError(
            f"{what} ids must be an iterable of ids, got {ids!r}"
        )
    checked = []
    for scope_id in ids:
        # Checked before dedupe: an unhashable entry must be named, not crash.
        if not isinstance(scope_id, str) or not _ID_PATTERN.fullmatch(scope_id):
            raise InvalidArgumentError(
                f"{what} id must be 24 lowercase hexadecimal digits, got {scope_id!r}"
            )
        checked.append(scope_id)
    return list(dict.fromkeys(checked))


def _validate_options(page_size: int, on_error: str, workers: int | None) -> None:
    if type(page_size) is not int or not 1 <= page_size <= 500:
        raise InvalidArgumentError(
            f"page_size must be an integer from 1 to 500, got {page_size!r}"
        )
    if not isinstance(on_error, str) or on_error not in _ON_ERROR:
        raise InvalidArgumentError(
            f"on_error must be 'raise', 'skip' or 'collect', got {on_error!r}"
        )
    if workers is not None and (type(workers) is not int or workers < 1):
        raise InvalidArgumentError(
            f"org_concurrency must be an integer >= 1, got {workers!r}"
        )


class BulkKeyStream:
    """``(org_id, ApiKey)`` pairs of many orgs; see the module docstring.

    Use it as ``async with client.keys_for_orgs(ids) as stream: async for
    org_id, key in stream: ...``. Workers start at the first ``__anext__``.
    """

    def __init__(
        self,
        *,
        scopes: list[Scope],
        open_listing: Callable[[Scope], _Listing],
        page_size: int,
        on_error: OnError,
        workers: int,
        spawn: Spawn,
    ) -> None:
        self._spawn = spawn
        self._pending: deque[Scope] = deque(scopes)
        self._open_listing = open_listing
        self._on_error = on_error
        self._workers_wanted = max(1, min(workers, len(scopes)))
        self._orgs_total = len(scopes)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=2 * page_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[Scope, _Listing] = {}
        self._totals = _Totals()
        self._errors: list[OrgFailure] = []
        self._keys_yielded = 0
        self._live = 0
        self._started = False
        self._closed = False
        self._busy = False
        self._ended = False
        self._end_error: Exception | None = None

    @property
    def errors(self) -> tuple[OrgFailure, ...]:
        """Orgs left out under ``on_error="collect"``, in the order they failed."""
        return tuple(self._errors)

    @property
    def progress(self) -> BulkProgress:
        """A snapshot of the whole export's progress (see :class:`BulkProgress`)."""
        running = [listing.progress for listing in self._running.values()]
        pages_done = self._totals.pages + sum(p.pages_done for p in running)
        expected = self._totals.pages + sum(
            max(p.pages_expected or 0, p.pages_done) for p in running
        )
        return BulkProgress(
            orgs_total=self._orgs_total,
            orgs_started=self._totals.started,
            orgs_done=self._totals.done,
            orgs_failed=self._totals.failed,
            pages_done=pages_done,
            pages_expected=expected,
            keys_yielded=self._keys_yielded,
            retries=self._totals.retries + sum(p.retries for p in running),
        )

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, ApiKey]:
        if self._closed:
            raise StopAsyncIteration
        if self._busy:
            # A second consumer would silently take pairs from the first.
            raise AiokeysError(
                "BulkKeyStream is already being iterated by another task"
            )
        self._busy = True
        try:
            return await self._next_pair()
        finally:
            self._busy = False

    async def _next_pair(self) -> tuple[str, ApiKey]:
        """Hand out the queued pairs, then end as the stored end says.

        The end is checked only when the queue is empty, and whoever records
        it puts ``_WAKE`` into an empty queue: a consumer waiting in ``get()``
        is therefore always woken, whatever order the workers end in.
        """
        self._start()

        while not (self._ended and self._queue.empty()):
            item = await self._queue.get()
            if isinstance(item, tuple):
                self._keys_yielded += 1
                return item

        await self.aclose()
        if self._end_error is not None:
            raise self._end_error
        raise StopAsyncIteration

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel every worker (closing its listing) and wait for them.

        Idempotent. Afterwards the stream yields nothing more.
        """
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if not self._pending:
            self._end_with(None)
            return
        self._live = self._workers_wanted
        self._tasks = [
            self._spawn(self._worker(), f"aiokeys bulk worker {n}")
            for n in range(self._workers_wanted)
        ]
        for task in self._tasks:
            task.add_done_callback(self._worker_ended)

    def _end_with(self, error: Exception | None) -> None:
        """Record how the export ends (the first call wins); wake the consumer.

        Synchronous on purpose: a worker cancelled right after (its client
        closing) cannot take the end with it, as an awaited ``put`` could.
        """
        if self._ended:
            return
        self._ended, self._end_error = True, error
        if self._queue.empty():  # an empty queue has room: this cannot fail
            self._queue.put_nowait(_WAKE)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        """End the export once the last worker is done, or when one was cut off.

        A worker cancelled from outside (its client closed under it) means the
        export did not finish: the consumer, perhaps in another task, must get
        ClientClosedError rather than wait forever or see a short export that
        looks complete. Workers cancelled by :meth:`aclose` or by another
        worker's error find the end already recorded.
        """
        self._live -= 1
        if self._closed:
            return
        if task.cancelled():
            self._end_with(
                ClientClosedError(
                    "bulk export stopped before its end: its client was closed"
                )
            )
        elif self._live == 0:
            self._end_with(None)

    async def _worker(self) -> None:
        """List orgs one after another until none is left, or one fails."""
        try:
            while self._pending and not self._ended:
                # Waits while the queue is full: nobody reading, no new org.
                await self._queue.put(_ORG_START)
                if self._pending and not self._ended:
                    await self._list_one(self._pending.popleft())
        except Exception as exc:  # raised to the consumer after the queued pairs
            self._end_with(exc)
            self._stop_others()

    async def _list_one(self, scope: Scope) -> None:
        """Feed one org's keys, in order, to the queue; leave it out if allowed."""
        listing = self._open_listing(scope)
        self._running[scope] = listing
        self._totals.started += 1
        failed = False
        logger.debug("bulk listing of %s %s started", *scope)
        try:
            async for key in listing:
                await self._queue.put((scope[1], key))
        except _LEFT_OUT as exc:
            if self._on_error == "raise":
                raise
            failed = True
            self._leave_out(scope, exc)
        finally:
            await listing.aclose()
            del self._running[scope]
            self._totals.finish(listing.progress, failed=failed)

    def _leave_out(self, scope: Scope, exc: ApiError) -> None:
        logger.info(
            "%s %s left out of the export: %s %s",
            scope[0],
            scope[1],
            exc.status,
            exc.error_code or "",
        )
        if self._on_error == "collect":
            self._errors.append(OrgFailure(org_id=scope[1], error=exc))

    def _stop_others(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()


def open_bulk(
    client: Client,
    scopes: list[Scope],
    *,
    page_size: int,
    on_error: OnError,
    org_concurrency: int | None,
) -> BulkKeyStream:
    """Build a bulk stream over org and project scopes of ``client`` (validated)."""
    _validate_options(page_size, on_error, org_concurrency)

    def open_listing(scope: Scope) -> _Listing:
        kind, scope_id = scope
        if kind == "org":
            return client.org_keys(scope_id, page_size=page_size)
        return client.group_keys(scope_id, page_size=page_size)

    # The workers are spawned by the client, which cancels and awaits its tasks
    # when it closes: a stream left behind by a bare ``break`` does not outlive
    # its client.
    return BulkKeyStream(
        scopes=scopes,
        open_listing=open_listing,
        page_size=page_size,
        on_error=on_error,
        workers=org_concurrency or client.concurrency,
        spawn=client._spawn,
    )


def keys_for_orgs(
    client: Client,
    org_ids: Iterable[str],
    *,
    page_size: int = 100,
    on_error: OnError = "raise",
    org_concurrency: int | None = None,
) -> BulkKeyStream:
    """Stream ``(org_id, ApiKey)`` for every key of every org in ``org_ids``.

    Every id and option is checked here, before any request. Repeated ids are
    listed once. See the module docstring for ordering, memory and errors.

    Args:
        client: The client whose transport, budget and retries are used.
        org_ids: 24-hex org ids, in the order their listings should start.
        page_size: Keys per page, 1..500, for every org.
        on_error: What a 403 or 404 of one org does: ``"raise"``, ``"skip"``
            or ``"collect"`` (see :attr:`BulkKeyStream.errors`).
        org_concurrency: How many orgs are listed at once; by default the
            client's ``concurrency``. Requests in flight stay bounded by the
            client's ``concurrency`` either way.

    Raises:
        InvalidArgumentError: A bad id or option (before any request).
    """
    scopes: list[Scope] = [("org", org) for org in validate_scopes(org_ids, "org")]
    return open_bulk(
        client,
        scopes,
        page_size=page_size,
        on_error=on_error,
        org_concurrency=org_concurrency,
    )

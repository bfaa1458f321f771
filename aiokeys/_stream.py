"""The listing engine: :class:`KeyStream` and its :class:`Progress` snapshots.

How a listing runs
------------------
Page ``start_page`` (1 unless resuming) is requested alone. Once it answers,
the pages the end rule says are needed (see :mod:`aiokeys._paging`) are
requested concurrently, under two bounds:

* at most ``concurrency`` requests of this stream in flight (the client's
  transport also holds a client-wide semaphore shared by all its streams);
* at most ``window`` pages either in flight or finished and waiting for the
  consumer, counted from the first page the consumer has not taken yet. A
  slow consumer therefore slows the fetching down, and memory stays about
  ``(window + 1) * page_size`` keys (the window plus the page being read),
  plus one short id per delivered key for the dedupe.

Each landed page refills the window at once, from its task's done callback,
so fetching runs ahead of a busy consumer up to the window and no further.

The page requests are tasks owned by a ``_Pass`` object, never a TaskGroup
around a ``yield``: leaving ``async with``, :meth:`KeyStream.aclose`, the end
of the listing, a raised error, or cancelling the consuming task while it
waits in ``__anext__`` cancels them and waits for them. After a bare
``break`` (no ``async with``) the current window finishes filling, each
landed page starting the next one up to the window's edge, and nothing
beyond the window is started; those requests finish, or are cancelled and
awaited when the client closes (the client keeps every page task it
spawned). Cancelling a consumer busy with a key *outside* ``__anext__`` and
outside ``async with`` is the same as a bare ``break``. Hence: use
``async with``.

One stream has one consumer: an ``__anext__`` entered while another task's
``__anext__`` of the same stream is still running raises
:class:`~aiokeys.AiokeysError` ("already being iterated by another task")
and leaves the first consumer undisturbed. Two consumers would otherwise
each get part of the keys, and neither would know.

Drift
-----
Keys created or deleted while a listing runs shift the offsets of later pages:
a key can show up twice, or slip from page ``k + 1`` to page ``k`` after page
``k`` was read. Duplicates are always dropped by ``api_key_id``. A changed
``totalCount``, a key seen twice, a short page before the expected end,
keys on a page after the end page, or a *shortfall* is *drift*: it is
recorded in :attr:`Progress.drift` and logged (one WARNING per listing, plus
one WARNING for a shortfall; further notes at DEBUG).

A shortfall: a pass ended with fewer entries than the ``totalCount`` of its
last pages promised it (``totalCount - (start_page - 1) * page_size``),
counting entries as the pages served them, a key repeated by the server
included (the repeat is drift of its own). It means either that the count
is wrong or that the server gave fewer results than asked and keys were
never served; the listing cannot tell which, so it never ends quietly on one.

Then ``on_drift`` decides:

* ``"repair"`` (default): once the listing reaches its end it is read again
  from ``start_page``, yielding only keys not delivered yet, until a re-read is
  *steady*: it found no new key, no duplicate the pass before it did not show
  too, nothing past the end, and its pages reported one steady
  ``totalCount`` or the same counts as the pass before it (at most
  :data:`MAX_REPAIR_PASSES` re-reads; then the listing ends with a last
  drift note). A re-read reads ahead only up to the page where the first
  pass ended. Every key present from the start to the end of the listing is
  then delivered exactly once. **Late keys come last:** keys found by a
  re-read are yielded after all the keys of the first pass, so the output is
  in server order except for those late keys at the end. Keys without an
  ``apiKeyId`` cannot be deduplicated and are yielded by the first pass only.
  **A shortfall that a steady re-read repeats, on a pass with a short page
  before its last page of keys, raises** :class:`~aiokeys.DriftError`
  after every key found was delivered, e.g.
  "totalCount says 1000 but the list ended after 200 keys (page 3), the same
  on 2 reads; the server returned 100 items for pages of 500, as if it capped
  its pages: try page_size=100". The cap is named when every page but the
  last of the keys held the same number of items, fewer than asked. Its
  ``page_num`` is ``None`` (there is no page to resume from) and
  ``keys_yielded`` says how many keys were delivered. When every page but
  the last was full, the server served every offset it was asked for and
  only its count is off (Atlas calls it an estimate): the shortfall stays a
  recorded, logged drift note and the listing ends normally.
* ``"warn"``: only records and logs (a shortfall at WARNING); a key that
  slid back is missed.
* ``"raise"``: raises :class:`~aiokeys.DriftError` as soon as drift is seen;
  its ``page_num`` is the page being delivered when it was seen (``None``
  for a shortfall, seen once the list has ended).

Drift is only seen through what the pages show. A deletion and an insertion
that balance out between two page reads leave ``totalCount`` unchanged and
repeat no key, so a key that slid back across a page boundary then goes
unnoticed, even with ``"repair"`` (``tests/test_stream_model.py`` generates
every other kind of mutation and pins the guarantee for those).

Errors, resuming, deadline
--------------------------
When a page gives up (retries exhausted, a 4xx, a body that is not a page),
the error is raised when the consumer reaches that page, after every earlier
page was delivered; the stream is closed first. The error carries
``page_num``, the failed page, and ``keys_yielded``. With ``ordered=True``
every key of the pages before ``page_num`` was delivered and none of page
``page_num`` or later, so ``start_page=err.page_num`` resumes with neither gap
nor repeat (unless the list itself changed in between). With
``ordered=False`` some later pages may already have been delivered: resuming
repeats them, so dedupe by ``api_key_id``.

An error during a re-read (``progress.repair_passes > 0`` when it arrives)
has ``page_num`` one past the page where the first pass ended: every key the
first pass found was delivered, and so was every key the re-read found, so
``start_page=err.page_num`` repeats nothing (and finds keys added at the end
since). Keys that slid back onto pages the re-read had not reached yet are
not found that way: to be sure of them, list again from page 1 and drop the
ids already seen. The message still names the re-read's page that failed.

``deadline`` (seconds) bounds the whole listing, re-reads and retries
included, from the first ``__anext__``, however slowly the consumer reads:
once it has passed, the waiting ``__anext__`` or the next one raises
:class:`~aiokeys.RequestTimeoutError` (``deadline_exceeded=True``) and the
stream closes. Its ``page_num`` is the first page not delivered, or the page
being read if the consumer was part-way through it (resuming there repeats
the keys of that page already handed out).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Final, Literal, NoReturn, Self, TypeAlias

import attrs

from ._errors import AiokeysError, DriftError, RequestTimeoutError, TransportError
from ._models import ApiKey, Page
from ._paging import (
    Deduper,
    PagePlan,
    ReorderBuffer,
    expected_pages,
    page_cap,
    short_before_last,
)

__all__ = ["MAX_REPAIR_PASSES", "KeyStream", "ListingSpec", "OnDrift", "Progress"]

_log = logging.getLogger(__name__)

OnDrift: TypeAlias = Literal["repair", "warn", "raise"]
MAX_REPAIR_PASSES: Final = 5
_MAX_DRIFT_NOTES: Final = 50

#: fetch(page_num, deadline, on_retry) -> a coroutine of the decoded page
FetchPage: TypeAlias = Callable[
    [int, float | None, Callable[[BaseException], None]],
    Coroutine[Any, Any, Page],
]
#: spawn(coroutine, name) -> a task the client also tracks
Spawn: TypeAlias = Callable[[Coroutine[Any, Any, Page], str], "asyncio.Task[Page]"]


@attrs.frozen(kw_only=True)
class ListingSpec:
    """Everything fixed about one listing, validated by the client."""

    label: str
    page_size: int
    max_items: int | None
    ordered: bool
    on_drift: OnDrift
    start_page: int
    deadline: float | None
    concurrency: int
    window: int


@attrs.frozen(kw_only=True)
class Progress:
    """A snapshot of a listing's progress (take a new one to see it move).

    Attributes:
        pages_done: Pages fetched and decoded so far, re-reads included.
        pages_expected: Pages the first pass expects (from ``start_page`` to
            the expected last page), ``None`` while ``totalCount`` is unknown.
        keys_yielded: Keys handed to the consumer.
        retries: Retries scheduled by the transport for this listing.
        duplicates_dropped: Keys dropped because their id was already seen.
        drift: Short descriptions of the drift seen, in order of discovery.
        drift_seen: Whether any drift was seen.
        repair_passes: Re-reads done by ``on_drift="repair"``.
    """

    pages_done: int = 0
    pages_expected: int | None = None
    keys_yielded: int = 0
    retries: int = 0
    duplicates_dropped: int = 0
    drift: tuple[str, ...] = ()
    drift_seen: bool = False
    repair_passes: int = 0


class _Pass:
    """One read of the listing, start page to end page: owns its page tasks."""

    def __init__(
        self,
        *,
        spec: ListingSpec,
        fetch: FetchPage,
        spawn: Spawn,
        deadline_at: float | None,
        on_retry: Callable[[BaseException], None],
        budget: Callable[[], int | None],
        horizon: int | None = None,
    ) -> None:
        self.spec = spec
        self.plan = PagePlan(
            page_size=spec.page_size, start_page=spec.start_page, horizon=horizon
        )
        self.buffer: ReorderBuffer[Page | BaseException] = ReorderBuffer(
            first=spec.start_page, ordered=spec.ordered
        )
        self.pages_done = 0
        self._fetch = fetch
        self._spawn = spawn
        self._deadline_at = deadline_at
        self._on_retry = on_retry
        self._budget = budget
        self._tasks: dict[int, asyncio.Task[Page]] = {}
        self._next = spec.start_page
        self._failed_at: int | None = None
        self._held_keys = 0
        self._closed = False
        self._wake = asyncio.Event()
        self._cancelled: list[asyncio.Task[Page]] = []

    async def next_page(self) -> Page | None:
        """Return the next page to deliver, ``None`` at the end; raise its error."""
        while True:
            if self._closed:  # closed under us, e.g. by the client's aclose()
                return None
            self._fill()
            released = self.buffer.pop()
            if released is not None:
                return self._release(released[1])
            if self.buffer.exhausted:
                return None
            if not self._tasks:  # pragma: no cover - would be an engine bug
                raise RuntimeError("listing stalled with nothing in flight")
            await self._wait()

    def _release(self, entry: Page | BaseException) -> Page:
        if isinstance(entry, BaseException):
            raise entry
        self._held_keys -= len(entry.items)
        return entry

    def _may_start(self, page_num: int) -> bool:
        spec = self.spec
        if len(self._tasks) >= spec.concurrency:
            return False
        if page_num >= self.buffer.low + spec.window:
            return False
        if self._failed_at is not None and page_num > self._failed_at:
            return False
        if not self.plan.may_request(page_num):
            return False
        wanted = self._budget()
        if wanted is None:
            return True
        return wanted - self._held_keys - spec.page_size * len(self._tasks) > 0

    def refill(self) -> None:
        """Start what the window allows now that the consumer took a page."""
        self._fill()

    def _fill(self) -> None:
        """Start every page request the bounds allow, in page order."""
        while not self._closed and self._may_start(self._next):
            page_num = self._next
            coro = self._fetch(page_num, self._deadline_at, self._on_retry)
            task = self._spawn(coro, f"aiokeys {self.spec.label} page {page_num}")
            task.add_done_callback(functools.partial(self._on_done, page_num))
            self._tasks[page_num] = task
            self._next += 1

    def _on_done(self, page_num: int, task: asyncio.Task[Page]) -> None:
        """A page landed: file it, start what the window now allows, wake the consumer.

        Runs as a task callback, so the window refills while the consumer is
        busy with earlier keys; it never goes past the window.
        """
        if self._closed or self._tasks.get(page_num) is not task:
            return  # cancelled by us: past the end, or the pass is closing
        del self._tasks[page_num]
        self._land(page_num, task)
        self._fill()
        self._wake.set()

    async def _wait(self) -> None:
        """Wait until a page lands (or the listing's deadline passes)."""
        self._wake.clear()
        if self._deadline_at is None:
            await self._wake.wait()
            return
        try:
            async with asyncio.timeout_at(self._loop_deadline()):
                await self._wake.wait()
        except TimeoutError:
            raise self._deadline_error() from None

    def _loop_deadline(self) -> float:
        assert self._deadline_at is not None
        loop = asyncio.get_running_loop()
        return loop.time() + max(0.0, self._deadline_at - time.monotonic())

    def _land(self, page_num: int, task: asyncio.Task[Page]) -> None:
        try:
            page = task.result()
        except Exception as exc:
            self._fail(page_num, exc)
            return
        except asyncio.CancelledError:  # cancelled by someone else, not by us
            error = TransportError(f"page {page_num} request was cancelled")
            self._fail(page_num, error)
            return
        self.pages_done += 1
        self.plan.record(page_num, len(page.items), page.total_count)
        if self.plan.end_page is not None and self.buffer.end is None:
            self._end_at(self.plan.end_page)
        if self.buffer.end is None or page_num <= self.buffer.end:
            self._held_keys += len(page.items)
            self.buffer.put(page_num, page)

    def _fail(self, page_num: int, exc: Exception) -> None:
        if isinstance(exc, AiokeysError) and exc.page_num is None:
            exc.page_num = page_num
        if self._failed_at is None or page_num < self._failed_at:
            self._failed_at = page_num
        self.buffer.put(page_num, exc, barrier=True)

    def _end_at(self, end_page: int) -> None:
        for dropped in self.buffer.end_at(end_page):
            if isinstance(dropped, Page):
                self._held_keys -= len(dropped.items)
        for page_num in [p for p in self._tasks if p > end_page]:
            task = self._tasks.pop(page_num)
            task.cancel()
            self._cancelled.append(task)  # awaited by aclose()

    def _deadline_error(self) -> RequestTimeoutError:
        error = RequestTimeoutError(
            f"listing {self.spec.label}: deadline of {self.spec.deadline}s reached",
            deadline_exceeded=True,
        )
        error.page_num = self.buffer.low
        return error

    def expected(self) -> int | None:
        """Pages this pass expects, from its start page on, if known."""
        last = self.plan.end_page
        if last is None and self.plan.total_count is not None:
            last = max(
                expected_pages(self.plan.total_count, self.spec.page_size),
                self.plan.next_page - 1,
            )
        return None if last is None else last - self.spec.start_page + 1

    async def aclose(self) -> None:
        """Cancel every page request of this pass and wait for them to end."""
        self._closed = True
        self._wake.set()  # a consumer waiting in next_page() sees the end
        tasks = [*self._tasks.values(), *self._cancelled]
        self._tasks.clear()
        self._cancelled.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


def _no_budget() -> None:
    return None


class KeyStream:
    """Every key of one org or project: an async iterator and context manager.

    Built by :meth:`aiokeys.Client.org_keys` and
    :meth:`aiokeys.Client.group_keys`; nothing is requested before the first
    ``__anext__``. Use it as::

        async with client.org_keys(org_id, page_size=500) as keys:
            async for key in keys:
                ...

    * Page 1 is read alone, then the rest concurrently, at most the client's
      ``concurrency`` in flight and ``window`` pages ahead of the consumer.
    * ``ordered=True`` yields server order; ``ordered=False`` yields pages
      as they land.
    * The listing ends at the first short (or empty) page that has no
      ``totalCount``, or is at or past the last page the count implies once
      as many keys as the count promised were seen; a full last page is
      followed by one more read. An empty page right after a short one ends
      it whatever the count says, so a count far too high costs at most a
      window of extra reads.
    * Duplicates are dropped by ``api_key_id``; drift is recorded in
      :attr:`progress` and, with ``on_drift="repair"``, repaired by re-reads
      whose late keys come after the ordered ones. A list that keeps ending
      short of its ``totalCount`` raises :class:`~aiokeys.DriftError` once
      every key found was delivered, never a quiet, shorter end.
    * An error names the page to resume from (``err.page_num``) and
      ``err.keys_yielded``.
    * ``deadline`` bounds the whole listing, a slow consumer included.
    * Leaving the ``async with`` block or :meth:`aclose` cancels and awaits
      every request still in flight. Cancelling the consuming task does the
      same only while it waits in ``__anext__`` or runs inside
      ``async with``. A bare ``break`` (no ``async with``) lets the current
      window finish filling, nothing beyond it; the client reaps those
      requests when it closes. Prefer ``async with``.
    * One consumer at a time: a second task's ``__anext__`` while the first
      one's is running raises :class:`~aiokeys.AiokeysError`.

    The full rules are in :mod:`aiokeys._stream` and :mod:`aiokeys._paging`.
    """

    def __init__(
        self,
        *,
        spec: ListingSpec,
        fetch: FetchPage,
        spawn: Spawn,
        on_close: Callable[[KeyStream], None] | None = None,
    ) -> None:
        self._spec = spec
        self._fetch = fetch
        self._spawn = spawn
        self._on_close = on_close
        self._pass: _Pass | None = None
        self._closed = False
        self._abort_reason: AiokeysError | None = None
        self._deadline_at: float | None = None
        self._current: tuple[ApiKey, ...] = ()
        self._current_page = spec.start_page
        self._index = 0
        self._busy = False
        self._delivered: Deduper[str] = Deduper()
        self._pass_seen: Deduper[str] = Deduper()
        self._pass_drifted = False
        self._pass_new = 0
        self._pass_dups: set[str] = set()
        self._previous_dups: set[str] = set()
        self._first_end: int | None = None
        self._notes_taken = 0
        self._repairs = 0
        self._pages_before = 0
        self._first_expected: int | None = None
        self._previous_counts: list[int | None] = []
        self._stop_page: int | None = None
        self._keys_yielded = 0
        self._retries = 0
        self._duplicates = 0
        self._drift: list[str] = []
        self._drift_count = 0

    def __repr__(self) -> str:
        return f"<KeyStream {self._spec.label} keys_yielded={self._keys_yielded}>"

    @property
    def label(self) -> str:
        """What is listed, e.g. ``org 5f1...`` (no credentials, no query)."""
        return self._spec.label

    @property
    def progress(self) -> Progress:
        """A snapshot of the listing's progress."""
        current = self._pass
        expected = self._first_expected
        if current is not None and self._repairs == 0:
            expected = current.expected()
        return Progress(
            pages_done=self._pages_before + (current.pages_done if current else 0),
            pages_expected=expected,
            keys_yielded=self._keys_yielded,
            retries=self._retries,
            duplicates_dropped=self._duplicates,
            drift=tuple(self._drift),
            drift_seen=self._drift_count > 0,
            repair_passes=self._repairs,
        )

    def __aiter__(self) -> Self:
        return self

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
        """Stop the listing: cancel and await every request in flight. Idempotent."""
        self._closed = True
        self._current, self._index = (), 0
        if self._pass is not None:
            await self._drop_pass()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close(self)

    async def abort(self, reason: AiokeysError) -> None:
        """Close the stream so that iterating it raises ``reason`` from now on.

        The client calls this when it is closed under an open listing: the
        consumer must learn that the listing did not finish, not see a
        shorter list that looks complete.
        """
        if not self._closed:
            self._abort_reason = reason
        await self.aclose()

    def _stop(self) -> NoReturn:
        """End the iteration: quietly after aclose(), with the reason after abort()."""
        reason = self._abort_reason
        if reason is None:
            raise StopAsyncIteration
        error = type(reason)(*reason.args)
        error.keys_yielded = self._keys_yielded
        raise error

    async def __anext__(self) -> ApiKey:
        if self._closed:
            self._stop()
        if self._busy:
            # Two consumers would each get part of the keys, and neither would
            # know: refuse the second one (the first goes on undisturbed).
            raise AiokeysError(
                "KeyStream is already being iterated by another task "
                f"(listing {self._spec.label})"
            )
        self._busy = True
        try:
            self._check_deadline()
            return await self._next_key()
        except AiokeysError as exc:
            self._place(exc)
            await self.aclose()
            raise
        except BaseException:  # the end, cancellation, or a bug: stop everything
            await self.aclose()
            raise
        finally:
            self._busy = False

    def _place(self, exc: AiokeysError) -> None:
        """Say in ``exc`` how far the listing got, so that it can be resumed.

        An error of a re-read points one past the first pass's end page: every
        key the first pass found was delivered, so resuming there repeats
        nothing (the re-read's own page is in the message).
        """
        exc.keys_yielded = self._keys_yielded
        in_re_read = self._repairs > 0 and self._first_end is not None
        if in_re_read and exc.page_num is not None:
            assert self._first_end is not None
            exc.page_num = self._first_end + 1

    def _check_deadline(self) -> None:
        """Past the listing's deadline no key is handed out, however slow the reader."""
        if self._deadline_at is None or time.monotonic() < self._deadline_at:
            return
        error = RequestTimeoutError(
            f"listing {self._spec.label}: deadline of {self._spec.deadline}s reached",
            deadline_exceeded=True,
        )
        if self._index < len(self._current):
            error.page_num = self._current_page  # part of it was handed out
        elif self._pass is not None:
            error.page_num = self._pass.buffer.low
        else:
            error.page_num = self._stop_page
        raise error

    async def _next_key(self) -> ApiKey:
        max_items = self._spec.max_items
        while max_items is None or self._keys_yielded < max_items:
            while self._index < len(self._current):
                key = self._current[self._index]
                self._index += 1
                if self._admit(key):
                    self._keys_yielded += 1
                    return key
            page = await self._next_page()
            self._current, self._index = page.items, 0
            self._current_page = page.page_num
            if self._pass is not None:
                self._pass.refill()  # the window moved on by one page
            # A page taken from the buffer returns without suspending; give the
            # loop a turn per page so that a consumer racing through buffered
            # pages never starves the application's other tasks.
            await asyncio.sleep(0)
        self._log_end()  # max_items reached
        raise StopAsyncIteration

    async def _next_page(self) -> Page:
        """The next page to read through, starting re-reads as drift requires."""
        while True:
            current = self._pass or self._start_pass()
            page = await current.next_page()
            if self._closed:
                self._stop()
            # Drift raised now names the page whose keys were not delivered yet.
            self._stop_page = current.buffer.low if page is None else page.page_num
            self._take_notes(current)
            if page is not None:
                return page
            await self._finish_pass()

    def _start_pass(self) -> _Pass:
        if self._deadline_at is None and self._spec.deadline is not None:
            self._deadline_at = time.monotonic() + self._spec.deadline
        self._pass_seen, self._pass_new, self._pass_drifted = Deduper(), 0, False
        self._pass_dups = set()
        self._notes_taken = 0
        self._pass = _Pass(
            spec=self._spec,
            fetch=self._fetch,
            spawn=self._spawn,
            deadline_at=self._deadline_at,
            on_retry=self._count_retry,
            # A re-read delivers few keys per page: max_items cannot tell which
            # pages it needs, so only the first pass is trimmed by it.
            budget=self._budget if self._repairs == 0 else _no_budget,
            # A re-read reads ahead only as far as the first pass went: a count
            # far too high is not paid for twice.
            horizon=self._first_end,
        )
        return self._pass

    async def _drop_pass(self) -> None:
        current, self._pass = self._pass, None
        assert current is not None
        if self._repairs == 0:
            self._first_expected = current.expected()
        self._pages_before += current.pages_done
        await current.aclose()

    async def _finish_pass(self) -> None:
        """End a pass; start a re-read if it drifted and repair is asked for.

        The first pass asks for a re-read when it saw any drift, a shortfall
        included (see :meth:`_shortfall_note`). A re-read is *steady*, and ends
        the listing, when it found no key not delivered before, no duplicate
        that the pass before it did not show too, no keys past the end, and its
        pages reported either one and the same ``totalCount`` or, page by page,
        the same counts as the pass before it. The comparisons keep a wrong but
        reproducible answer (a count off, a key the server repeats on every
        read) from forcing re-reads, while a list still changing shows up as
        different counts. A steady re-read that still falls short of its
        count raises :class:`~aiokeys.DriftError`: reading again would not help
        and ending quietly would hide keys.
        """
        current = self._pass
        assert current is not None
        plan = current.plan
        if self._repairs == 0:
            self._first_end = plan.end_page
            self._note_shortfall(plan)
        drifted = self._pass_drifted or self._pass_new > 0
        steady = len(set(plan.counts)) <= 1 or plan.counts == self._previous_counts
        if self._repairs > 0 and not steady:
            drifted = True
        self._previous_counts, self._previous_dups = plan.counts, self._pass_dups
        await self._drop_pass()
        if self._spec.on_drift != "repair" or not drifted:
            self._end_pass(plan)
        if self._repairs >= MAX_REPAIR_PASSES:
            self._note_drift(
                f"still drifting after {MAX_REPAIR_PASSES} re-reads", loud=True
            )
            self._end_pass(plan)
        self._repairs += 1
        _log.debug(
            "listing %s: re-read %d after drift", self._spec.label, self._repairs
        )

    def _end_pass(self, plan: PagePlan) -> NoReturn:
        """End the listing after its last pass; a re-read still short raises.

        Only when a page before the last came back short: with every other
        page full, nothing was withheld and the count alone is wrong.
        """
        if (
            self._repairs > 0
            and plan.missing(plan.total_count)
            and short_before_last(plan.sizes, self._spec.page_size)
        ):
            raise self._shortfall_error(plan)
        self._log_end()
        raise StopAsyncIteration

    def _note_shortfall(self, plan: PagePlan) -> None:
        """Fewer keys than ``totalCount`` promised is drift: nothing is lost quietly.

        Entries are counted as the pages served them, repeats included: a key
        the server repeats and counts is an entry it did serve (the repeat is
        drift of its own).
        """
        missing = plan.missing(plan.total_count)
        if not missing:
            return
        self._stop_page = None  # nothing to resume from: the list has ended
        self._note_drift(
            f"totalCount said {plan.total_count}, but the list ended at page "
            f"{plan.end_page} after {plan.keys_seen} keys",
            loud=True,
        )

    def _shortfall_error(self, plan: PagePlan) -> DriftError:
        reads = self._repairs + 1
        message = (
            f"listing {self._spec.label}: totalCount says {plan.total_count} but "
            f"the list ended after {plan.keys_seen} keys (page {plan.end_page}), "
            f"the same on {reads} reads"
        )
        cap = page_cap(plan.sizes, self._spec.page_size)
        if cap is not None:
            message += (
                f"; the server returned {cap} items for pages of "
                f"{self._spec.page_size}, as if it capped its pages: try "
                f"page_size={cap}"
            )
        else:
            message += "; keys may be missing, or the count is wrong"
        _log.warning("%s", message)
        return DriftError(message)

    def _log_end(self) -> None:
        progress = self.progress
        _log.debug(
            "listing %s done: %d keys, %d pages, %d retries, %d re-reads, drift=%s",
            self._spec.label,
            progress.keys_yielded,
            progress.pages_done,
            progress.retries,
            progress.repair_passes,
            progress.drift_seen,
        )

    def _admit(self, key: ApiKey) -> bool:
        """Decide whether a key is new; a repeat within one pass is drift.

        In the first pass "delivered" and "seen in this pass" are the same
        set, so only re-reads keep a second one.
        """
        ident = key.api_key_id
        if ident is None:  # cannot be told apart: delivered by the first pass only
            return self._repairs == 0
        if self._repairs > 0:
            if not self._pass_seen.add(ident):
                return self._seen_twice(ident)
            if not self._delivered.add(ident):
                return False
            self._pass_new += 1
            return True
        return self._delivered.add(ident) or self._seen_twice(ident)

    def _seen_twice(self, ident: str) -> bool:
        self._duplicates += 1
        self._pass_dups.add(ident)
        if ident not in self._previous_dups:  # the same repeat again is steady
            self._note_drift(f"key {ident} seen twice")
        return False

    def _take_notes(self, current: _Pass) -> None:
        """Copy the pass's new drift notes into the stream's record."""
        plan = current.plan
        while self._notes_taken < len(plan.drift):
            note, kind = (
                plan.drift[self._notes_taken],
                plan.drift_kinds[self._notes_taken],
            )
            self._notes_taken += 1
            # In a re-read, counts are compared with the previous pass instead.
            if self._repairs == 0 or kind == "beyond":
                self._note_drift(note)

    def _note_drift(self, note: str, *, loud: bool = False) -> None:
        """Record drift; WARNING for the first note and for keys that may be missing."""
        self._drift_count += 1
        self._pass_drifted = True
        if len(self._drift) < _MAX_DRIFT_NOTES:
            self._drift.append(note)
        if self._drift_count == 1 or loud:
            _log.warning("listing %s drifted: %s", self._spec.label, note)
        else:
            _log.debug("listing %s drifted: %s", self._spec.label, note)
        if self._spec.on_drift == "raise":
            error = DriftError(f"listing {self._spec.label} drifted: {note}")
            error.page_num = self._stop_page
            raise error

    def _budget(self) -> int | None:
        """Keys still wanted beyond those in hand, for ``max_items``."""
        if self._spec.max_items is None:
            return None
        in_hand = len(self._current) - self._index
        return self._spec.max_items - self._keys_yielded - in_hand

    def _count_retry(self, _: BaseException) -> None:
        self._retries += 1

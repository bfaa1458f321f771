"""Pure page arithmetic: when a listing ends, what may be requested, in what order.

Nothing here does I/O; :mod:`aiokeys._stream` drives these pieces from the
network. Keeping them pure lets the end rule and the reorder buffer be tested
exhaustively with Hypothesis.

The end rule
------------
Atlas' ``totalCount`` is "an estimate and may not be exact" and may be absent,
and a server may return fewer results than asked, even zero, before the end.
So a listing of page size ``s`` ends at the first page ``k`` (in page order)
that is *short* (fewer than ``s`` items, possibly none) **and** either

* carries no ``totalCount``, or
* is at or past the expected last page, ``k >= ceil(totalCount / s)``, and
  the pass has seen at least as many keys as that count leaves for it
  (``totalCount - (start_page - 1) * s``), where ``totalCount`` is the one
  that page ``k`` itself reported; or
* is empty and follows a short (or empty) page of the same pass: the keys
  have run out, whatever the count says (*the tail rule*).

Consequences, each pinned by a test in ``tests/test_paging.py``:

* a missing count means "keep reading until a short or empty page";
* a count that grows moves the expected end further out;
* when the last expected page comes back full, or short while the count says
  keys are still missing, reading goes on past it until the tail rule or a
  short page that settles the count (without a count, pages are read ahead
  within the window instead, and reads past the end are wasted);
* a short or empty page before the expected end is *not* the end while the
  count says more remain: it is recorded as drift and reading goes on;
* page 1 (or the resume page) is read alone; pages are never numbered below
  it, so ``pageNum=0`` is never sent and no page is planned twice;
* a re-read may be given a ``horizon``, the page where the pass before it
  ended: it reads ahead up to there and only one page at a time beyond, so a
  count far too high is not paid for again.

The price: a list whose size is an exact multiple of ``s`` costs one more
(empty) request, and a count that is too high costs one empty request after
the last short page, plus whatever the window had already started (at most
``window`` requests past the end in a first pass, none in a re-read given a
horizon). A count that stays higher than what the list delivers is not the
end rule's business: :mod:`aiokeys._stream` treats it as drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

import attrs

__all__ = [
    "Deduper",
    "PagePlan",
    "ReorderBuffer",
    "expected_pages",
    "is_last_page",
    "page_cap",
    "pages_needed",
]

T = TypeVar("T")
K = TypeVar("K")


def expected_pages(total_count: int, page_size: int) -> int:
    """Return the number of the last page ``total_count`` keys fill, at least 1.

    Page 1 is always read, even for an empty list, hence the floor of 1.
    """
    return max(1, -(-total_count // page_size))


def is_last_page(
    page_num: int, n_items: int, total_count: int | None, page_size: int
) -> bool:
    """Apply the count part of the end rule (see the module docstring) to one page.

    :class:`PagePlan` adds the rest: the keys the count promised must have
    been seen, and an empty page after a short one ends the pass anyway.
    """
    if n_items >= page_size:
        return False
    if total_count is None:
        return True
    return page_num >= expected_pages(total_count, page_size)


def page_cap(sizes: Sequence[int], page_size: int) -> int | None:
    """Return the cap a server seems to put on its pages, or ``None``.

    ``sizes`` are the item counts of one pass's pages in order. A server that
    answers at most ``c < page_size`` items whatever is asked shows every page
    but the last of the keys at exactly ``c`` (trailing empty pages aside),
    and the last at most ``c``; two such pages at least are needed to say so.
    """
    served = list(sizes)
    while served and served[-1] == 0:
        served.pop()
    if len(served) < 2:
        return None
    cap = served[0]
    if not 0 < cap < page_size or any(n != cap for n in served[1:-1]):
        return None
    return cap if served[-1] <= cap else None


def short_before_last(sizes: Sequence[int], page_size: int) -> bool:
    """Whether a page before the last page of keys held fewer items than asked.

    Trailing empty pages aside, only the last page of a list may be short. A
    short page earlier on, on a list that did not change, means the server
    gave fewer results than asked: keys it never served may be missing.
    """
    served = list(sizes)
    while served and served[-1] == 0:
        served.pop()
    return any(n < page_size for n in served[:-1])


def pages_needed(keys: int, page_size: int) -> int:
    """Return how many full pages hold ``keys`` keys (0 for ``keys <= 0``)."""
    return max(0, -(-keys // page_size))


@attrs.define(kw_only=True)
class PagePlan:
    """What one pass over a listing has learnt, fed page by page in page order.

    Pages may land in any order: :meth:`record` parks them and observes them in
    order, so the end rule always sees page ``k - 1`` before page ``k``.

    Attributes:
        page_size: Items asked per page.
        start_page: The first page of the pass (1 unless resuming).
        horizon: For a re-read, the end page of the pass before it: pages up
            to it may be read ahead, pages beyond it only one at a time.
            ``None`` for a first pass.
        limit: The highest page known to be needed, or ``None`` when reading
            on speculatively because a page came without ``totalCount``.
        end_page: The page that ended the listing, once known.
        next_page: The next page number :meth:`record` will observe.
        total_count: The last ``totalCount`` seen, ``None`` if none yet.
        sizes: The item count of each page observed up to the end page.
        drift: Short descriptions of what did not add up, in page order.
        counts: The ``totalCount`` of each page observed, in page order.
        drift_kinds: For each ``drift`` entry, ``"count"`` (totalCount
            changed), ``"short"`` (short page before the expected end) or
            ``"beyond"`` (keys on a page after the end page).
    """

    page_size: int
    start_page: int = 1
    horizon: int | None = None
    limit: int | None = attrs.field(default=None)
    end_page: int | None = None
    next_page: int = attrs.field(default=0)
    total_count: int | None = None
    sizes: list[int] = attrs.field(factory=list)
    drift: list[str] = attrs.field(factory=list)
    drift_kinds: list[str] = attrs.field(factory=list)
    counts: list[int | None] = attrs.field(factory=list)
    _parked: dict[int, tuple[int, int | None]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        # Until the first page answers, nothing but the first page is wanted.
        self.limit = self.start_page
        self.next_page = self.start_page

    @property
    def ended(self) -> bool:
        """Whether the end page has been observed."""
        return self.end_page is not None

    @property
    def keys_seen(self) -> int:
        """Items on the pages observed up to the end page (repeats included)."""
        return sum(self.sizes)

    def missing(self, total: int | None) -> int:
        """Keys ``total`` says this pass should still see (0 if none or no count)."""
        if total is None:
            return 0
        owed = total - (self.start_page - 1) * self.page_size
        return max(0, owed - self.keys_seen)

    def may_request(self, page_num: int) -> bool:
        """Return whether ``page_num`` is within what the pass may still need."""
        if page_num < self.start_page:
            return False
        if self.end_page is not None and page_num > self.end_page:
            return False
        return self.limit is None or page_num <= self.limit

    def record(self, page_num: int, n_items: int, total_count: int | None) -> None:
        """Take one landed page's item count and ``totalCount``, in any order."""
        if page_num < self.next_page or page_num in self._parked:
            raise ValueError(f"page {page_num} recorded twice")
        self._parked[page_num] = (n_items, total_count)
        while self.next_page in self._parked:
            n, total = self._parked.pop(self.next_page)
            self._observe(self.next_page, n, total)
            self.next_page += 1

    def _observe(self, page_num: int, n_items: int, total: int | None) -> None:
        if self.end_page is not None:
            if n_items:
                self._drift(
                    "beyond",
                    f"page {page_num} had {n_items} keys after the last page {self.end_page}",
                )
            return
        ran_out = n_items == 0 and bool(self.sizes) and self.sizes[-1] < self.page_size
        self.counts.append(total)
        self.sizes.append(n_items)
        self._note_count(page_num, total)
        if ran_out or self._settled(page_num, n_items, total):
            self.end_page = page_num
            return
        self._extend(page_num, n_items, total)
        if total is not None and n_items < self.page_size:
            self._drift("short", self._short_note(page_num, n_items, total))

    def _settled(self, page_num: int, n_items: int, total: int | None) -> bool:
        """The count-based end: a short page with no count, or at the end it implies."""
        if not is_last_page(page_num, n_items, total, self.page_size):
            return False
        return self.missing(total) == 0

    def _extend(self, page_num: int, n_items: int, total: int | None) -> None:
        """Widen what may be requested after a page that did not end the pass."""
        if total is None:
            # No count: read ahead until a short page (a re-read: to its horizon).
            self.limit = (
                None if self.horizon is None else max(self.horizon, page_num + 1)
            )
            return
        target = expected_pages(total, self.page_size)
        missing = self.missing(total)
        if missing and n_items and page_num >= target:
            # Short at the expected end with keys still owed: pages this size
            # would hold them (a server capping its pages lands here).
            target = page_num + -(-missing // n_items)
        if self.horizon is not None:
            target = min(target, self.horizon)
        # Past the expected end read on one page at a time, never widely.
        self.limit = max(self.limit or page_num, target, page_num + 1)

    def _short_note(self, page_num: int, n_items: int, total: int) -> str:
        last = expected_pages(total, self.page_size)
        head = f"page {page_num} short ({n_items} of {self.page_size})"
        if page_num < last:
            return f"{head} before the expected last page {last}"
        return (
            f"{head} at the expected last page {last} while totalCount {total} "
            f"says {self.missing(total)} more keys remain"
        )

    def _note_count(self, page_num: int, total: int | None) -> None:
        if total is None:
            return
        if self.total_count is not None and total != self.total_count:
            self._drift(
                "count",
                f"totalCount changed from {self.total_count} to {total} at page {page_num}",
            )
        self.total_count = total

    def _drift(self, kind: str, note: str) -> None:
        self.drift.append(note)
        self.drift_kinds.append(kind)


class ReorderBuffer(Generic[T]):
    """Finished pages waiting for the consumer, released in order or as they land.

    With ``ordered=True`` page ``k`` is released only after page ``k - 1``.
    With ``ordered=False`` pages are released in arrival order, except entries
    put with ``barrier=True`` (errors): those wait until every lower page has
    been released, so an error always names the first page not delivered.
    """

    def __init__(self, *, first: int, ordered: bool) -> None:
        self.ordered = ordered
        self.low = first  # lowest page number not yet released
        self.end: int | None = None
        self._held: dict[int, tuple[T, bool]] = {}
        self._released_above: set[int] = set()

    def __len__(self) -> int:
        return len(self._held)

    @property
    def exhausted(self) -> bool:
        """Whether the end is known and every page up to it has been released."""
        return self.end is not None and self.low > self.end

    def put(self, page_num: int, item: T, *, barrier: bool = False) -> None:
        """Hold ``item`` as page ``page_num``; each page goes in at most once."""
        if (
            page_num < self.low
            or page_num in self._held
            or page_num in self._released_above
        ):
            raise ValueError(f"page {page_num} put twice")
        if self.end is not None and page_num > self.end:
            return
        self._held[page_num] = (item, barrier)

    def pop(self) -> tuple[int, T] | None:
        """Release the next page that may go, or ``None`` if none may yet."""
        page_num = self._next_releasable()
        if page_num is None:
            return None
        item, _ = self._held.pop(page_num)
        if page_num == self.low:
            self.low += 1
            while self.low in self._released_above:
                self._released_above.remove(self.low)
                self.low += 1
        else:
            self._released_above.add(page_num)
        return page_num, item

    def _next_releasable(self) -> int | None:
        if self.low in self._held:
            return self.low
        if self.ordered:
            return None
        for page_num, (_, barrier) in self._held.items():
            if not barrier:
                return page_num
        return None

    def end_at(self, last: int) -> list[T]:
        """Declare ``last`` the final page; drop and return what was held beyond it."""
        self.end = last
        beyond = sorted(p for p in self._held if p > last)
        return [self._held.pop(p)[0] for p in beyond]


class Deduper(Generic[K]):
    """Remembers identities already delivered and filters repeats out.

    Items without an identity (``None``) cannot be compared and always pass.
    Memory grows with the number of distinct identities (one short string per
    key), the one thing that is not bounded by the window.
    """

    def __init__(self) -> None:
        self._seen: set[K] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, ident: object) -> bool:
        return ident in self._seen

    def add(self, ident: K | None) -> bool:
        """Remember ``ident``; return ``False`` if it was already there."""
        if ident is None:
            return True
        if ident in self._seen:
            return False
        self._seen.add(ident)
        return True

    def filter(self, idents: Iterable[K | None], items: Sequence[T]) -> list[T]:
        """Return the items whose identity was new, remembering those identities."""
        return [
            item for ident, item in zip(idents, items, strict=True) if self.add(ident)
        ]

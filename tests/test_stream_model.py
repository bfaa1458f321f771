"""The engine alone, against an in-memory list that shifts while it is read.

No HTTP here: pages come from a coroutine over a Python list, so Hypothesis
can try thousands of arrival orders, windows and mutations in seconds. The
loopback tests in ``test_stream.py`` cover the same rules end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiokeys import ApiKey, DriftError, Page
from aiokeys._stream import KeyStream, ListingSpec, OnDrift


@attrs.frozen
class Mutation:
    """After page ``page`` is first served: remove keys at ``removes``, append ``adds``."""

    page: int
    removes: tuple[int, ...]
    adds: int


@attrs.define
class MemoryList:
    """A list served page by page, mutated like the simulator's ``after_page``."""

    ids: list[str]
    page_size: int
    mutations: dict[int, Mutation]
    yields: dict[int, int]
    served: list[int] = attrs.field(factory=list)
    ever: set[str] = attrs.field(factory=set)
    _added: int = 0

    def __attrs_post_init__(self) -> None:
        self.ever = set(self.ids)

    async def fetch(
        self,
        page_num: int,
        deadline: float | None,
        on_retry: Callable[[BaseException], None],
    ) -> Page:
        assert page_num >= 1
        for _ in range(self.yields.get(page_num, 0)):
            await asyncio.sleep(0)  # lets other pages overtake this one
        start = (page_num - 1) * self.page_size
        items = tuple(
            ApiKey(api_key_id=i) for i in self.ids[start : start + self.page_size]
        )
        page = Page(
            items=items,
            total_count=len(self.ids),
            page_num=page_num,
            page_size=self.page_size,
        )
        self.served.append(page_num)
        mutation = self.mutations.pop(page_num, None)
        if mutation is not None:
            self._mutate(mutation)
        return page

    def _mutate(self, mutation: Mutation) -> None:
        doomed = {self.ids[i % len(self.ids)] for i in mutation.removes if self.ids}
        self.ids = [i for i in self.ids if i not in doomed]
        # A removal exactly balanced by an addition between two reads leaves
        # no trace in the pages (same count, no duplicate): undetectable (see
        # the KeyStream docs), so such a mutation adds one key more.
        adds = mutation.adds + (mutation.adds == len(doomed) and bool(doomed))
        for _ in range(adds):
            self._added += 1
            self.ids.append(f"new{self._added:05d}")
            self.ever.add(self.ids[-1])


def _spawn(coro: Coroutine[Any, Any, Page], name: str) -> asyncio.Task[Page]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def _run(
    source: MemoryList | ShortServer, spec: ListingSpec
) -> tuple[list[str], KeyStream]:
    stream = KeyStream(spec=spec, fetch=source.fetch, spawn=_spawn)
    async with stream:
        ids = [k.api_key_id async for k in stream if k.api_key_id is not None]
    assert {
        t for t in asyncio.all_tasks() if t.get_name().startswith("aiokeys")
    } == set()
    return ids, stream


def _spec(
    page_size: int, concurrency: int, window: int, ordered: bool, on_drift: OnDrift
) -> ListingSpec:
    return ListingSpec(
        label="memory",
        page_size=page_size,
        max_items=None,
        ordered=ordered,
        on_drift=on_drift,
        start_page=1,
        deadline=None,
        concurrency=concurrency,
        window=window,
    )


@st.composite
def _mutations(draw: st.DrawFn) -> dict[int, Mutation]:
    pages = draw(st.lists(st.integers(1, 12), unique=True, max_size=3))
    out = {}
    for page in pages:
        removes = tuple(draw(st.lists(st.integers(0, 10_000), max_size=4)))
        adds = draw(st.integers(0, 4))
        out[page] = Mutation(page=page, removes=removes, adds=adds)
    return out


SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SHAPES = {
    "n_keys": st.integers(0, 260),
    "page_size": st.integers(1, 40),
    "concurrency": st.integers(1, 6),
    "window": st.integers(1, 8),
    "ordered": st.booleans(),
    "yields": st.dictionaries(st.integers(1, 40), st.integers(0, 6), max_size=10),
}


@SETTINGS
@given(**SHAPES)
def test_static_list_exact(
    n_keys: int,
    page_size: int,
    concurrency: int,
    window: int,
    ordered: bool,
    yields: dict[int, int],
) -> None:
    """A list that does not move: every key once, in order when ordered, no re-read."""
    ids = [f"k{i:05d}" for i in range(n_keys)]
    source = MemoryList(ids=list(ids), page_size=page_size, mutations={}, yields=yields)
    got, stream = asyncio.run(
        _run(source, _spec(page_size, concurrency, window, ordered, "repair"))
    )
    assert got == ids if ordered else sorted(got) == ids
    assert len(source.served) == len(set(source.served))
    assert not stream.progress.drift_seen
    assert stream.progress.repair_passes == 0


@SETTINGS
@given(mutations=_mutations(), **SHAPES)
def test_repair_delivers_keys_present_throughout_exactly_once(
    n_keys: int,
    page_size: int,
    concurrency: int,
    window: int,
    ordered: bool,
    yields: dict[int, int],
    mutations: dict[int, Mutation],
) -> None:
    """Under drift, repair: no duplicate, nothing invented, nobody present throughout missed."""
    ids = [f"k{i:05d}" for i in range(n_keys)]
    source = MemoryList(
        ids=list(ids), page_size=page_size, mutations=dict(mutations), yields=yields
    )
    got, stream = asyncio.run(
        _run(source, _spec(page_size, concurrency, window, ordered, "repair"))
    )
    throughout = set(ids) & set(source.ids)
    assert len(got) == len(set(got))
    assert set(got) <= source.ever
    assert throughout <= set(got)
    if ordered and stream.progress.repair_passes == 0:
        assert got == sorted(got, key=lambda i: (i.startswith("new"), i))


@SETTINGS
@given(mutations=_mutations(), **SHAPES)
def test_warn_and_raise_never_repeat(
    n_keys: int,
    page_size: int,
    concurrency: int,
    window: int,
    ordered: bool,
    yields: dict[int, int],
    mutations: dict[int, Mutation],
) -> None:
    """warn: no duplicates, no re-read; raise: completes cleanly or raises DriftError."""
    ids = [f"k{i:05d}" for i in range(n_keys)]
    source = MemoryList(
        ids=list(ids), page_size=page_size, mutations=dict(mutations), yields=yields
    )
    got, stream = asyncio.run(
        _run(source, _spec(page_size, concurrency, window, ordered, "warn"))
    )
    assert len(got) == len(set(got))
    assert stream.progress.repair_passes == 0
    raising = MemoryList(
        ids=list(ids), page_size=page_size, mutations=dict(mutations), yields=yields
    )
    error: DriftError | None = None
    try:
        asyncio.run(
            _run(raising, _spec(page_size, concurrency, window, ordered, "raise"))
        )
    except DriftError as exc:
        error = exc
    if error is not None:
        assert error.keys_yielded is not None
        assert error.page_num is not None


@SETTINGS
@given(max_items=st.integers(1, 300), **SHAPES)
def test_max_items_reads_only_the_pages_it_needs(
    n_keys: int,
    page_size: int,
    concurrency: int,
    window: int,
    ordered: bool,
    yields: dict[int, int],
    max_items: int,
) -> None:
    """max_items: that many keys (or all), and no page beyond those holding them."""
    ids = [f"k{i:05d}" for i in range(n_keys)]
    source = MemoryList(ids=list(ids), page_size=page_size, mutations={}, yields=yields)
    spec = attrs.evolve(
        _spec(page_size, concurrency, window, ordered, "repair"), max_items=max_items
    )
    got, _ = asyncio.run(_run(source, spec))
    assert len(got) == min(max_items, n_keys)
    if ordered:
        assert got == ids[:max_items]
    needed = -(-min(max_items, n_keys) // page_size)
    if n_keys < max_items:  # the end must be seen: one short page more at most
        needed = n_keys // page_size + 1
    assert sorted(source.served) == list(range(1, max(1, needed) + 1))


@attrs.define
class ShortServer:
    """A static list whose pages hold at most ``cap`` keys, with a count too high.

    ``by_cap`` counts offsets in pages of ``cap`` (every key stays reachable);
    otherwise offsets use the size asked and the keys past ``cap`` on each page
    are never served at that size.
    """

    ids: list[str]
    cap: int
    by_cap: bool
    total: int
    served: list[int] = attrs.field(factory=list)

    async def fetch(
        self,
        page_num: int,
        deadline: float | None,
        on_retry: Callable[[BaseException], None],
    ) -> Page:
        await asyncio.sleep(0)
        self.served.append(page_num)
        page_size = SHORT_PAGE
        start = (page_num - 1) * (
            min(self.cap, page_size) if self.by_cap else page_size
        )
        chunk = self.ids[start : start + min(self.cap, page_size)]
        return Page(
            items=tuple(ApiKey(api_key_id=i) for i in chunk),
            total_count=self.total,
            page_num=page_num,
            page_size=page_size,
        )


SHORT_PAGE = 10


@SETTINGS
@given(
    n_keys=st.integers(0, 120),
    cap=st.integers(1, 12),
    by_cap=st.booleans(),
    over=st.integers(0, 10**6),
    window=st.integers(1, 8),
    ordered=st.booleans(),
)
def test_never_short_of_the_count_quietly(
    n_keys: int, cap: int, by_cap: bool, over: int, window: int, ordered: bool
) -> None:
    """Count >= the list: every key, or DriftError, or the shortfall told; bounded.

    A list whose pages were all full but the last cannot be told from one whose
    count is too high: that listing ends, with the shortfall in its drift notes.
    Any page short before the last makes a steady shortfall raise.
    """
    ids = [f"k{i:05d}" for i in range(n_keys)]
    source = ShortServer(ids=ids, cap=cap, by_cap=by_cap, total=n_keys + over)
    spec = _spec(SHORT_PAGE, min(window, 4), window, ordered, "repair")
    got: list[str] | None = None
    stream: KeyStream | None = None
    error: DriftError | None = None
    try:
        got, stream = asyncio.run(asyncio.wait_for(_run(source, spec), timeout=20))
    except DriftError as exc:
        error = exc
    if error is not None:
        assert "totalCount says" in str(error)
        assert error.page_num is None
    else:
        assert got is not None
        assert stream is not None
        if sorted(got) != ids:
            # Only the tail can be missing: every page before it came back full.
            assert sorted(got) == ids[: len(got)]
            assert any("totalCount said" in n for n in stream.progress.drift)
    per_pass = -(-n_keys // min(cap, SHORT_PAGE)) + 2 + window
    assert len(source.served) <= 6 * per_pass

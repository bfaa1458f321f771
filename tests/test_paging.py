"""The pure paging pieces: page arithmetic, the end rule, the reorder buffer."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiokeys._paging import (
    Deduper,
    PagePlan,
    ReorderBuffer,
    expected_pages,
    is_last_page,
    pages_needed,
    short_before_last,
)


def _items_on(page: int, n_keys: int, size: int) -> int:
    return min(size, max(0, n_keys - (page - 1) * size))


def _drive(
    plan: PagePlan,
    n_keys: int,
    report: Callable[[int], int | None],
    *,
    window: int,
    seed: int,
) -> list[int]:
    """Run a plan against a static list, pages landing in random order."""
    rnd = random.Random(seed)
    requested: list[int] = []
    in_flight: list[int] = []
    next_page = plan.start_page
    while not plan.ended:
        while plan.may_request(next_page) and next_page < plan.next_page + window:
            requested.append(next_page)
            in_flight.append(next_page)
            next_page += 1
        assert in_flight, "the plan stalled"
        page = in_flight.pop(rnd.randrange(len(in_flight)))
        plan.record(page, _items_on(page, n_keys, plan.page_size), report(page))
    return requested


class TestArithmetic:
    """expected_pages, is_last_page and pages_needed."""

    @pytest.mark.parametrize(
        ("total", "size", "pages"),
        [
            (0, 100, 1),
            (1, 100, 1),
            (99, 100, 1),
            (100, 100, 1),
            (101, 100, 2),
            (12345, 500, 25),
        ],
    )
    def test_expected_pages(self, total: int, size: int, pages: int) -> None:
        """The last page number holding `total` keys, at least 1."""
        assert pages == expected_pages(total, size)

    def test_full_page_is_never_last(self) -> None:
        """A full page never ends a listing, whatever the count says."""
        assert not is_last_page(5, 100, 100, 100)
        assert not is_last_page(1, 100, None, 100)

    def test_short_page_without_count_is_last(self) -> None:
        """No count: the first short or empty page is the end."""
        assert is_last_page(3, 7, None, 100)
        assert is_last_page(3, 0, None, 100)

    def test_short_page_before_expected_end_is_not_last(self) -> None:
        """A count saying more remain overrides a short page."""
        assert not is_last_page(2, 10, 500, 100)
        assert not is_last_page(2, 0, 500, 100)
        assert is_last_page(5, 10, 500, 100)

    @pytest.mark.parametrize(
        ("keys", "pages"), [(-3, 0), (0, 0), (1, 1), (100, 1), (101, 2)]
    )
    def test_pages_needed(self, keys: int, pages: int) -> None:
        """Full pages needed for a number of keys."""
        assert pages == pages_needed(keys, 100)


class TestPagePlan:
    """The end rule as the engine applies it, page by page."""

    def test_first_page_is_read_alone(self) -> None:
        """Before page 1 answers only page 1 may be requested; never page 0."""
        plan = PagePlan(page_size=100)
        assert plan.may_request(1)
        assert not plan.may_request(0)
        assert not plan.may_request(2)

    def test_count_opens_the_expected_pages(self) -> None:
        """Once page 1 gives a count, pages up to the expected end are wanted."""
        plan = PagePlan(page_size=100)
        plan.record(1, 100, 450)
        assert plan.may_request(5)
        assert not plan.may_request(6)
        assert plan.next_page == 2

    def test_past_expected_end_reads_one_page_at_a_time(self) -> None:
        """A full last expected page opens only the next page."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 10)
        assert plan.may_request(2)
        assert not plan.may_request(3)

    def test_missing_count_reads_on(self) -> None:
        """No count: reading goes on speculatively until a short page."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, None)
        assert plan.limit is None
        plan.record(2, 10, None)
        plan.record(3, 4, None)
        assert plan.end_page == 3

    def test_full_last_expected_page_reads_on(self) -> None:
        """The last expected page full: keep reading until a short page."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 20)
        plan.record(2, 10, 20)
        assert not plan.ended
        assert plan.may_request(3)
        plan.record(3, 0, 20)
        assert plan.end_page == 3

    def test_growing_count_moves_the_end(self) -> None:
        """A larger count on a later page extends the pages wanted, as drift."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 20)
        plan.record(2, 10, 45)
        assert plan.may_request(5)
        assert plan.drift == ["totalCount changed from 20 to 45 at page 2"]

    def test_short_page_before_end_is_drift_not_end(self) -> None:
        """An early short page does not end the listing and is recorded."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 40)
        plan.record(2, 3, 40)
        assert not plan.ended
        assert len(plan.drift) == 1
        assert "page 2 short" in plan.drift[0]

    def test_pages_may_land_out_of_order(self) -> None:
        """Page 3 landing before page 2 is observed after it."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 25)
        plan.record(3, 5, 25)
        assert not plan.ended
        plan.record(2, 10, 25)
        assert plan.end_page == 3

    def test_keys_after_the_end_are_drift(self) -> None:
        """A page past the end that carries keys is recorded."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, None)
        plan.record(3, 2, None)
        plan.record(2, 5, None)
        assert plan.end_page == 2
        assert plan.drift == ["page 3 had 2 keys after the last page 2"]

    def test_page_recorded_twice_is_refused(self) -> None:
        """The plan refuses the same page twice (would mean a double fetch)."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, None)
        with pytest.raises(ValueError, match="twice"):
            plan.record(1, 10, None)

    def test_empty_page_after_a_short_one_ends_whatever_the_count(self) -> None:
        """A count far too high: the tail rule ends the pass once the keys ran out."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 10**12)
        plan.record(2, 5, 10**12)
        assert not plan.ended
        plan.record(3, 0, 10**12)
        assert plan.end_page == 3
        assert plan.keys_seen == 15
        assert plan.missing(10**12) == 10**12 - 15

    def test_one_empty_page_after_a_full_one_is_not_the_end(self) -> None:
        """Zero results before the end are allowed: a second empty page is needed."""
        plan = PagePlan(page_size=10)
        plan.record(1, 10, 40)
        plan.record(2, 0, 40)
        assert not plan.ended
        plan.record(3, 10, 40)
        plan.record(4, 0, 40)
        assert not plan.ended
        plan.record(5, 0, 40)
        assert plan.end_page == 5

    def test_short_expected_last_page_with_keys_owed_reads_on(self) -> None:
        """A server capping pages at 100 of 500: reading goes on until the count is met."""
        plan = PagePlan(page_size=500)
        plan.record(1, 100, 1000)
        plan.record(2, 100, 1000)
        assert not plan.ended
        assert plan.may_request(10)
        assert not plan.may_request(11)
        for page in range(3, 10):
            plan.record(page, 100, 1000)
            assert not plan.ended
        plan.record(10, 100, 1000)
        assert plan.end_page == 10
        assert plan.missing(1000) == 0

    def test_horizon_limits_read_ahead_of_a_re_read(self) -> None:
        """A re-read reads ahead only to where the pass before it ended."""
        plan = PagePlan(page_size=10, horizon=5)
        plan.record(1, 10, 10**12)
        assert plan.may_request(5)
        assert not plan.may_request(6)
        for page in range(2, 5):
            plan.record(page, 10, 10**12)
        plan.record(5, 10, 10**12)
        assert plan.may_request(6)
        assert not plan.may_request(7)

    def test_resume_page_is_the_first(self) -> None:
        """A plan resuming at page 4 reads page 4 alone and nothing below."""
        plan = PagePlan(page_size=10, start_page=4)
        assert plan.may_request(4)
        assert not plan.may_request(3)
        assert not plan.may_request(5)

    @given(
        n_keys=st.integers(0, 2000),
        size=st.integers(1, 120),
        window=st.integers(1, 12),
        seed=st.integers(0, 2**16),
        mode=st.sampled_from(["exact", "missing", "high", "low"]),
        offset=st.integers(1, 300),
    )
    def test_static_list_ends_where_the_rule_says(
        self, n_keys: int, size: int, window: int, seed: int, mode: str, offset: int
    ) -> None:
        """Every page up to the end is requested once; at most window-1 beyond."""
        reported = {
            "exact": n_keys,
            "missing": None,
            "high": n_keys + offset,
            "low": max(0, n_keys - offset),
        }[mode]
        plan = PagePlan(page_size=size)
        requested = _drive(plan, n_keys, lambda _: reported, window=window, seed=seed)
        end = n_keys // size + 1
        if mode == "high":
            end += 1  # the tail rule: an empty page after the short one
        assert plan.end_page == end
        assert len(requested) == len(set(requested))
        assert min(requested) == 1
        assert set(range(1, end + 1)) <= set(requested)
        assert max(requested) <= end + window - 1


class TestReorderBuffer:
    """Ordered and unordered release."""

    @given(order=st.permutations(list(range(1, 30))))
    def test_ordered_releases_in_page_order(self, order: list[int]) -> None:
        """Whatever the arrival order, ordered release is 1, 2, 3, ..."""
        buf: ReorderBuffer[int] = ReorderBuffer(first=1, ordered=True)
        out: list[int] = []
        for page in order:
            buf.put(page, page * 10)
            while (got := buf.pop()) is not None:
                out.append(got[0])
                assert got[1] == got[0] * 10
            assert buf.low == len(out) + 1
        assert out == list(range(1, 30))
        assert len(buf) == 0

    @given(order=st.permutations(list(range(1, 30))), barrier=st.integers(1, 29))
    def test_unordered_releases_on_arrival_barrier_waits(
        self, order: list[int], barrier: int
    ) -> None:
        """Unordered pages go as they land; a barrier waits for lower pages."""
        buf: ReorderBuffer[int] = ReorderBuffer(first=1, ordered=False)
        out: list[int] = []
        for page in order:
            buf.put(page, page, barrier=page == barrier)
            while (got := buf.pop()) is not None:
                out.append(got[0])
            if page != barrier:
                assert page in out
        assert sorted(out) == list(range(1, 30))
        assert set(out[: out.index(barrier)]) >= set(range(1, barrier))

    def test_end_at_drops_pages_beyond(self) -> None:
        """Pages past the declared end are dropped and later ones refused."""
        buf: ReorderBuffer[str] = ReorderBuffer(first=1, ordered=True)
        buf.put(3, "c")
        buf.put(1, "a")
        assert buf.end_at(2) == ["c"]
        buf.put(4, "d")
        assert buf.pop() == (1, "a")
        assert not buf.exhausted
        buf.put(2, "b")
        assert buf.pop() == (2, "b")
        assert buf.exhausted
        assert buf.pop() is None

    def test_put_twice_is_refused(self) -> None:
        """A page put twice would be delivered twice: refused."""
        buf: ReorderBuffer[str] = ReorderBuffer(first=1, ordered=False)
        buf.put(2, "b")
        assert buf.pop() == (2, "b")
        with pytest.raises(ValueError, match="twice"):
            buf.put(2, "b")


class TestDeduper:
    """Dedupe by identity."""

    @given(ids=st.lists(st.sampled_from(["a", "b", "c", "d", None]), max_size=40))
    def test_each_identity_passes_once(self, ids: list[str | None]) -> None:
        """Every identity passes once, None always passes."""
        dedupe: Deduper[str] = Deduper()
        kept = dedupe.filter(ids, list(range(len(ids))))
        kept_ids = [ids[i] for i in kept]
        named = [i for i in kept_ids if i is not None]
        assert len(named) == len(set(named)) == len({i for i in ids if i is not None})
        assert kept_ids.count(None) == ids.count(None)


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([], False),
        ([3], False),
        ([10, 10, 4], False),
        ([10, 10, 4, 0, 0], False),
        ([10, 4, 10], True),
        ([4, 4, 2, 0], True),
        ([0, 10], True),
    ],
)
def test_short_before_last(sizes: list[int], expected: bool) -> None:
    """Only a page before the last page of keys counts as short; empty tails aside."""
    assert short_before_last(sizes, 10) is expected

"""The retry policy's pure parts: the predicate, the waits, Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import backoff
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiokeys import (
    ApiError,
    InvalidArgumentError,
    NotFoundError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from aiokeys._errors import error_class
from aiokeys._retry import RETRYABLE_STATUSES, is_retryable, parse_retry_after

NOW = datetime(2026, 12, 3, 17, 0, 0, tzinfo=UTC)


def api_error(status: int, *, retry_after: float | None = None) -> ApiError:
    return error_class(status)(
        status=status, method="GET", url="https://x/y", retry_after=retry_after
    )


class TestIsRetryable:
    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
    def test_transient_statuses_are_retried(self, status: int) -> None:
        """429 and the gateway 5xx are worth another try."""
        assert is_retryable(api_error(status)) is True

    @pytest.mark.parametrize(
        "status", [400, 401, 403, 404, 405, 406, 409, 410, 418, 422, 501, 505]
    )
    def test_final_statuses_are_not(self, status: int) -> None:
        """Client errors and the 'never' 5xx end the call at once."""
        assert is_retryable(api_error(status)) is False

    def test_transport_faults_are_retried(self) -> None:
        """Refused, reset, cut-short and socket timeouts are retried."""
        assert is_retryable(TransportError("reset")) is True
        assert is_retryable(RequestTimeoutError("socket timeout")) is True

    def test_deadline_is_final(self) -> None:
        """The caller's deadline running out is never retried."""
        assert (
            is_retryable(RequestTimeoutError("late", deadline_exceeded=True)) is False
        )

    @pytest.mark.parametrize(
        "exc",
        [
            asyncio.CancelledError(),
            UnexpectedResponseError("not a page"),
            ValueError("x"),
            KeyboardInterrupt(),
        ],
    )
    def test_everything_else_is_final(self, exc: BaseException) -> None:
        """Cancellation, bad bodies and foreign exceptions are not retried."""
        assert is_retryable(exc) is False

    def test_statuses_constant(self) -> None:
        """The documented set, no more."""
        assert frozenset({429, 500, 502, 503, 504}) == RETRYABLE_STATUSES


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [("55", 55.0), (" 3 ", 3.0), ("0", 0.0), ("1.5", 1.5), ("120", 120.0)],
    )
    def test_delay_seconds(self, value: str, expected: float) -> None:
        """delay-seconds, with a decimal tolerated."""
        assert parse_retry_after(value, now=NOW) == expected

    @pytest.mark.parametrize(
        "value", [None, "", "   ", "-1", "nan", "inf", "soon", "12 seconds", "0x10"]
    )
    def test_garbage_is_none(self, value: str | None) -> None:
        """A header that cannot be read is ignored, not an error."""
        assert parse_retry_after(value, now=NOW) is None

    def test_http_date_in_the_future(self) -> None:
        """An IMF-fixdate is measured from now."""
        assert parse_retry_after("Thu, 03 Dec 2026 17:00:30 GMT", now=NOW) == 30.0

    def test_http_date_in_the_past_is_zero(self) -> None:
        """A date already gone means: go now."""
        assert parse_retry_after("Thu, 03 Dec 2026 16:00:00 GMT", now=NOW) == 0.0

    @pytest.mark.parametrize(
        "value", ["Thursday, 03-Dec-26 17:00:10 GMT", "Thu Dec  3 17:00:10 2026"]
    )
    def test_obsolete_date_forms(self, value: str) -> None:
        """RFC 850 and asctime forms, the latter without a zone, read as GMT."""
        assert parse_retry_after(value, now=NOW) == 10.0

    def test_default_now_is_the_clock(self) -> None:
        """Without ``now`` the current UTC time is used."""
        soon = datetime.now(UTC) + timedelta(seconds=100)
        value = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
        seconds = parse_retry_after(value)
        assert seconds is not None
        assert 90 <= seconds <= 100


def take(policy: RetryPolicy, failures: list[BaseException | None]) -> list[float]:
    """Drive ``policy.waits()`` the way backoff does."""
    waits = policy.waits()
    assert waits.send(None) == 0.0
    return [waits.send(failure) for failure in failures]


class TestWaits:
    def test_exponential_without_jitter(self) -> None:
        """base * 2**n, capped."""
        policy = RetryPolicy(base=0.5, cap=5.0, jitter=False)
        assert take(policy, [None] * 6) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]

    def test_full_jitter_stays_below_the_bound(self) -> None:
        """Each jittered wait lies in [0, bound]."""
        policy = RetryPolicy(base=1.0, cap=8.0, jitter=True)
        waits = take(policy, [None] * 200)
        bounds = [1.0, 2.0, 4.0] + [8.0] * 197
        assert all(0.0 <= w <= b for w, b in zip(waits, bounds, strict=True))
        assert len(set(waits)) > 100

    def test_retry_after_is_used_unjittered(self) -> None:
        """A server's Retry-After replaces the computed wait."""
        policy = RetryPolicy(base=0.01, cap=30.0, jitter=True)
        told = api_error(429, retry_after=3.0)
        assert take(policy, [told, told]) == [3.0, 3.0]

    def test_retry_after_is_capped(self) -> None:
        """Never longer than ``cap``, whatever the server says."""
        policy = RetryPolicy(cap=2.0)
        assert take(policy, [api_error(503, retry_after=55.0)]) == [2.0]

    def test_retry_after_zero(self) -> None:
        """Retry-After: 0 means no wait."""
        policy = RetryPolicy(base=10.0, cap=10.0, jitter=False)
        assert take(policy, [api_error(429, retry_after=0.0)]) == [0.0]

    def test_no_retry_after_falls_back(self) -> None:
        """A 429 without the header backs off exponentially."""
        policy = RetryPolicy(base=0.25, cap=1.0, jitter=False)
        assert take(
            policy, [api_error(429), NotFoundError(status=404, method="GET", url="u")]
        ) == [0.25, 0.5]

    @given(
        base=st.floats(0, 100),
        cap=st.floats(0, 100),
        jitter=st.booleans(),
        told=st.none() | st.floats(0, 1000),
    )
    def test_every_wait_is_within_cap(
        self, base: float, cap: float, jitter: bool, told: float | None
    ) -> None:
        """Whatever the inputs, 0 <= wait <= cap."""
        policy = RetryPolicy(base=base, cap=cap, jitter=jitter)
        waits = take(policy, [api_error(429, retry_after=told)] * 12)
        assert all(0.0 <= w <= cap for w in waits)


class TestValidation:
    @pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
    def test_max_tries(self, value: object) -> None:
        """Zero, negative, non-integer and bool tries are refused by name."""
        with pytest.raises(InvalidArgumentError, match="max_tries"):
            RetryPolicy(max_tries=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["max_time", "base", "cap"])
    @pytest.mark.parametrize(
        "value", [-1, -0.001, float("nan"), float("inf"), "1", True]
    )
    def test_times(self, name: str, value: object) -> None:
        """Negative, NaN, infinite and non-numbers are refused by name."""
        with pytest.raises(InvalidArgumentError, match=name):
            RetryPolicy(**{name: value})  # type: ignore[arg-type]

    def test_jitter(self) -> None:
        """jitter must be a real bool."""
        with pytest.raises(InvalidArgumentError, match="jitter"):
            RetryPolicy(jitter=1)  # type: ignore[arg-type]

    def test_argument_errors_are_value_errors(self) -> None:
        """InvalidArgumentError also subclasses ValueError."""
        with pytest.raises(ValueError, match="max_tries"):
            RetryPolicy(max_tries=0)

    def test_edges_are_accepted(self) -> None:
        """One try, no time, no waits: a valid 'never retry' policy."""
        policy = RetryPolicy(max_tries=1, max_time=0, base=0, cap=0, jitter=False)
        assert policy.max_tries == 1

    def test_keyword_only_and_frozen(self) -> None:
        """A frozen value with keyword-only arguments."""
        with pytest.raises(TypeError):
            RetryPolicy(3)  # type: ignore[call-arg]
        policy = RetryPolicy()
        with pytest.raises(AttributeError):
            policy.max_tries = 2  # type: ignore[misc]

    def test_defaults(self) -> None:
        """The defaults the docstring justifies."""
        assert RetryPolicy() == RetryPolicy(
            max_tries=5, max_time=60.0, base=0.5, cap=30.0, jitter=True
        )


class TestWithBackoff:
    """The policy plugged into backoff.on_exception as the transport does it."""

    @staticmethod
    def decorate(
        policy: RetryPolicy, failures: list[Exception], calls: list[int]
    ) -> Callable[[], Awaitable[str]]:
        @backoff.on_exception(
            policy.waits,
            (ApiError, TransportError),
            max_tries=policy.max_tries,
            jitter=None,
            giveup=lambda exc: not is_retryable(exc),
            logger=None,
        )
        async def attempt() -> str:
            calls.append(1)
            if failures:
                raise failures.pop(0)
            return "done"

        return attempt

    async def test_retries_then_succeeds(self) -> None:
        """Two 500s, then success."""
        calls: list[int] = []
        failures: list[Exception] = [api_error(500), api_error(500)]
        attempt = self.decorate(RetryPolicy(base=0.001), failures, calls)
        assert await attempt() == "done"
        assert len(calls) == 3

    async def test_gives_up_after_max_tries(self) -> None:
        """The last failure escapes after max_tries attempts."""
        calls: list[int] = []
        failures: list[Exception] = [api_error(503) for _ in range(10)]
        attempt = self.decorate(RetryPolicy(base=0.001, max_tries=3), failures, calls)
        with pytest.raises(ServerError):
            await attempt()
        assert len(calls) == 3

    async def test_final_error_costs_one_attempt(self) -> None:
        """A 404 is raised at once."""
        calls: list[int] = []
        attempt = self.decorate(RetryPolicy(base=0.001), [api_error(404)], calls)
        with pytest.raises(NotFoundError):
            await attempt()
        assert len(calls) == 1

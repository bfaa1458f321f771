"""What is retried, and how long to wait: :class:`RetryPolicy` and its parts.

The pieces are pure so they can be tested without a network:
:func:`is_retryable` decides, :meth:`RetryPolicy.waits` paces, and
:func:`parse_retry_after` reads the server's own advice. The wire layer wires
them into :func:`backoff.on_exception`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import attrs
import backoff

from ._errors import ApiError, InvalidArgumentError, RequestTimeoutError, TransportError

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "is_retryable", "parse_retry_after"]

#: Statuses worth a second try: Atlas' token bucket, and the 5xx a deploy or a
#: proxy produces. 501 and 505 say "never", 400/401/403/404/406/410 are final.
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt of the same request.

    Retried: :class:`~aiokeys.ApiError` with a status in
    :data:`RETRYABLE_STATUSES` (an ``envelope=true`` body status counts the
    same) and every :class:`~aiokeys.TransportError` (refused, reset, cut-short
    body, socket timeout) except the caller's own deadline running out.
    Anything else, ``CancelledError`` above all, is final.
    """
    if isinstance(exc, ApiError):
        return exc.status in RETRYABLE_STATUSES
    if isinstance(exc, RequestTimeoutError):
        return not exc.deadline_exceeded
    return isinstance(exc, TransportError)


def parse_retry_after(
    value: str | None, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (RFC 9110 §10.2.3).

    Accepts delay-seconds (``"55"``; a decimal is tolerated) and an HTTP date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``, measured from ``now``, default the
    current UTC time; a date in the past means 0). Anything else, negative or
    not finite, gives ``None``: the header is advice, never a reason to fail.
    """
    if value is None or not (text := value.strip()):
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; an obsolete form may come without a zone.
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta)


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"RetryPolicy.{attribute.name} must be an integer >= 1, got {value!r}"
        )


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value >= 0
        or value == float("inf")
    ):
        raise InvalidArgumentError(
            f"RetryPolicy.{attribute.name} must be a finite number >= 0, got {value!r}"
        )


def _boolean(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(
            f"RetryPolicy.{attribute.name} must be True or False, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a single request is retried (5xx, 429 and transport faults only).

    Waits grow as ``base * 2**n`` seconds, capped at ``cap``; with ``jitter``
    each wait is drawn uniformly from zero to that value ("full jitter"), so
    many clients that failed together do not come back together. When the
    server sends ``Retry-After`` (a 429, or a 503), that wait is used instead,
    unjittered, but never longer than ``cap``.

    Defaults: 5 tries (one request and four retries) cover the short bursts of
    502/503 a load balancer gives during a deploy; ``base=0.5`` and ``cap=30``
    make the four waits at most 0.5, 1, 2 and 4 seconds, and let a 429's
    ``Retry-After`` of up to half a minute be honoured; ``max_time=60`` bounds
    the whole attempt so a listing never hangs on one page.

    Attributes:
        max_tries: Attempts in all, the first included (>= 1; 1 means no retry).
        max_time: Seconds from the first attempt after which no retry starts;
            a wait is shortened so that it ends by then.
        base: The first wait's upper bound in seconds.
        cap: The largest wait in seconds, also the cap on a server's Retry-After.
        jitter: Draw each wait at random below its bound (full jitter).
    """

    max_tries: int = attrs.field(default=5, validator=_positive_int)
    max_time: float = attrs.field(default=60.0, validator=_non_negative)
    base: float = attrs.field(default=0.5, validator=_non_negative)
    cap: float = attrs.field(default=30.0, validator=_non_negative)
    jitter: bool = attrs.field(default=True, validator=_boolean)

    def waits(
        self, budget: float | None = None
    ) -> Generator[float, BaseException | None, None]:
        """A wait generator in the protocol of the ``backoff`` package.

        ``backoff`` primes it with ``send(None)`` (the ``0`` yielded first is
        discarded), then sends each failure and sleeps the seconds yielded
        back. Pass ``jitter=None`` to ``backoff``: the jitter is applied here,
        so that a server's ``Retry-After`` is not jittered away.

        ``budget`` is the call's ``max_time`` (pass it through backoff's
        generator keyword arguments). When the server's ``Retry-After`` ends
        after the budget, the generator stops, which makes backoff give up at
        once: a retry sent before the server said to come back is refused for
        certain, so it would only spend a request of the rate limit.
        """
        started = time.monotonic()
        bounds = backoff.expo(base=2, factor=self.base, max_value=self.cap)
        next(bounds)  # expo's own priming value
        failure = yield 0.0
        while True:
            bound = float(next(bounds))
            wait = backoff.full_jitter(bound) if self.jitter else bound
            told = getattr(failure, "retry_after", None)
            if isinstance(told, int | float):
                wait = min(float(told), self.cap)
                left = None if budget is None else budget - (time.monotonic() - started)
                if left is not None and wait > left:
                    return
            failure = yield wait

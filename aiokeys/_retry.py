"""What is retried, and how long to wait: :class:`RetryPolicy`."""

from __future__ import annotations

import attrs

from ._errors import InvalidArgumentError

__all__ = ["RetryPolicy"]


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


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a single request is retried (5xx, 429 and transport faults only).

    Waits grow as ``base * 2**n`` seconds, capped at ``cap``; with ``jitter``
    each wait is drawn uniformly from zero to that value ("full jitter"), so
    many clients that failed together do not come back together.

    Defaults: 5 tries (one request and four retries) cover the short bursts of
    502/503 a load balancer gives during a deploy; ``base=0.5`` and ``cap=30``
    make the four waits at most 0.5, 1, 2 and 4 seconds; ``max_time=60`` bounds
    the whole attempt so a listing never hangs on one page.

    Attributes:
        max_tries: Attempts in all, the first included (>= 1; 1 means no retry).
        max_time: Seconds from the first attempt after which no retry starts.
        base: The first wait's upper bound in seconds.
        cap: The largest wait in seconds, also the cap on a server's Retry-After.
        jitter: Draw each wait at random below its bound (full jitter).
    """

    max_tries: int = attrs.field(default=5, validator=_positive_int)
    max_time: float = attrs.field(default=60.0, validator=_non_negative)
    base: float = attrs.field(default=0.5, validator=_non_negative)
    cap: float = attrs.field(default=30.0, validator=_non_negative)
    jitter: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )

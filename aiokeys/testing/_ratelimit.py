"""Token buckets: :class:`RateLimit` (the public setting) and :class:`TokenBucket`.

Atlas limits requests with a token bucket per endpoint set and scope: a bucket
holds at most ``capacity`` tokens, every request takes one, and ``refill``
tokens come back every ``period`` seconds (continuously, pro rata). An empty
bucket answers 429 with ``Retry-After``, the whole seconds until one token is
back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import attrs

from aiokeys._errors import InvalidArgumentError

__all__ = ["RateLimit", "TokenBucket"]


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    # An infinite refill or period would make the refill rate inf/inf or 0: NaN
    # tokens, or a wait divided by zero.
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgumentError(
            f"RateLimit.{attribute.name} must be a finite number > 0, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RateLimit:
    """A token-bucket setting, as Atlas words it in its 429 bodies.

    ``RateLimit(capacity=10, refill=5, period=60.0)`` reads "Request capacity:
    10. Refill rate: 5 per 60 seconds."

    Attributes:
        capacity: Tokens the bucket holds when full (burst size).
        refill: Tokens added per ``period``.
        period: Seconds over which ``refill`` tokens come back.
    """

    capacity: int = attrs.field(default=100, validator=_positive)
    refill: float = attrs.field(default=100, validator=_positive)
    period: float = attrs.field(default=60.0, validator=_positive)


@attrs.define(kw_only=True)
class TokenBucket:
    """The live state of one bucket; ``clock`` is injectable for tests."""

    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    tokens: float = attrs.field(default=-1.0)
    updated: float = attrs.field(default=-1.0)

    def __attrs_post_init__(self) -> None:
        self.tokens = float(self.limit.capacity)
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        rate = self.limit.refill / self.limit.period
        self.tokens = min(
            self.limit.capacity, self.tokens + (now - self.updated) * rate
        )
        self.updated = now

    def take(self) -> float | None:
        """Take one token; return ``None`` on success, else seconds to wait."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        rate = self.limit.refill / self.limit.period
        return (1.0 - self.tokens) / rate

    @property
    def remaining(self) -> int:
        """Whole tokens left, as ``RateLimit-Remaining`` reports them."""
        return max(0, math.floor(self.tokens))

"""Everything one simulator instance knows, shared by its routes and its API."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import attrs

from ._digest import DigestServer
from ._faults import FaultBook
from ._log import LoggedRequest
from ._oauth import TokenRegistry
from ._ratelimit import RateLimit, TokenBucket
from ._store import Store

__all__ = ["Drift", "Principal", "SimState"]

TotalCountHook = Callable[[int, int], "int | None"]


@attrs.define(kw_only=True)
class Drift:
    """Changes to make once, right after ``page_num`` of ``scope_id`` is served."""

    scope_id: str
    page_num: int
    add: int
    remove: Sequence[str]
    done: bool = False


@attrs.frozen(kw_only=True)
class Principal:
    """Who a request authenticated as.

    ``identities`` are the names :meth:`FakeAtlas.deny` matches (public key;
    client id and token; or the token); ``display`` is the non-secret name put in
    ``createdBy``.
    """

    identities: frozenset[str] = attrs.field(repr=False)
    display: str


@attrs.define(kw_only=True)
class SimState:
    """The mutable state behind one :class:`~aiokeys.testing.FakeAtlas`."""

    store: Store = attrs.field(factory=Store)
    faults: FaultBook = attrs.field(factory=FaultBook)
    digest: DigestServer
    tokens: TokenRegistry
    require_auth: bool = True
    latency: float = 0.0
    rate_limit: RateLimit | None = None
    buckets: dict[str, TokenBucket] = attrs.field(factory=dict)
    token_bucket: TokenBucket | None = None
    retired_versions: frozenset[str] = frozenset()
    total_count: TotalCountHook | None = None
    denied: dict[str, set[str]] = attrs.field(factory=dict)
    drifts: list[Drift] = attrs.field(factory=list)
    log: list[LoggedRequest | None] = attrs.field(factory=list)
    clock: Callable[[], float] = time.monotonic

    def bucket(self, scope_id: str) -> TokenBucket | None:
        """The rate-limit bucket of a scope, created full on first use."""
        if self.rate_limit is None:
            return None
        found = self.buckets.get(scope_id)
        if found is None:
            found = self.buckets[scope_id] = TokenBucket(
                limit=self.rate_limit, clock=self.clock
            )
        return found

"""The wire layer against the simulator over loopback: errors, retries, limits."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from aiokeys import (
    AiokeysError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from aiokeys._auth import AuthContext, BearerToken
from aiokeys._retry import is_retryable
from aiokeys._transport import (
    Transport,
    _Call,
    _parse_json,
    _Reply,
    _transport_error,
    _unwrap,
)
from aiokeys.testing import FakeAtlas, Fault, LoggedRequest, RateLimit

#: Tiny waits so that retries cost milliseconds.
FAST = RetryPolicy(max_tries=4, base=0.001, cap=0.01)
LIST = "/api/atlas/v2/orgs/{}/aiModelApiKeys"


@attrs.define
class Rig:
    """A transport bound to a simulator org, and what it needs to talk about it."""

    atlas: FakeAtlas
    org_id: str
    token: str
    transport: Transport
    session: aiohttp.ClientSession
    retries: list[BaseException] = attrs.field(factory=list)
    retried: asyncio.Event = attrs.field(factory=asyncio.Event)

    def record(self, exc: BaseException) -> None:
        """The ``on_retry`` hook: keep the failure, wake whoever waits for one."""
        self.retries.append(exc)
        self.retried.set()

    def path(self, org_id: str | None = None) -> str:
        return LIST.format(org_id or self.org_id)

    async def page(
        self,
        page_num: int = 1,
        *,
        size: int = 10,
        org_id: str | None = None,
        extra: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> Any:
        params = {"pageNum": str(page_num), "itemsPerPage": str(size), **(extra or {})}
        return await self.transport.get_json(
            self.path(org_id),
            params,
            scope=org_id or self.org_id,
            page_num=page_num,
            on_retry=self.record,
            deadline=deadline,
        )

    def hits(self, page_num: int | None = None) -> list[LoggedRequest]:
        """Requests to the list endpoint, optionally of one page, in arrival order."""
        return [
            r
            for r in self.atlas.requests
            if r.path.endswith("/aiModelApiKeys")
            and (page_num is None or r.page_num == page_num)
        ]


@asynccontextmanager
async def open_rig(
    atlas: FakeAtlas,
    *,
    retry: RetryPolicy = FAST,
    limit: int = 10,
    concurrency: int = 4,
    token: str | None = None,
    api_version: str = "2025-03-12",
    keys: int = 25,
) -> AsyncIterator[Rig]:
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, keys, groups=2, seed=7)
    real_token = atlas.add_bearer_token()
    base = URL(atlas.url)
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:
        auth = BearerToken(token or real_token).bind(
            AuthContext(session=session, base_url=base, retry=retry)
        )
        transport = Transport(
            session=session,
            base_url=base,
            api_version=api_version,
            auth=auth,
            retry=retry,
            concurrency=concurrency,
        )
        yield Rig(
            atlas=atlas,
            org_id=org_id,
            token=real_token,
            transport=transport,
            session=session,
        )
        await auth.aclose()


@pytest.fixture
async def rig(fake_atlas: FakeAtlas) -> AsyncIterator[Rig]:
    async with open_rig(fake_atlas) as made:
        yield made


def statuses(requests: list[LoggedRequest]) -> list[int | None]:
    return [r.status for r in requests]


class TestSuccess:
    async def test_page_is_decoded(self, rig: Rig) -> None:
        """A plain page comes back as the JSON Atlas sent."""
        body = await rig.page(1, size=10)
        assert isinstance(body, dict)
        assert len(body["results"]) == 10
        assert body["totalCount"] == 25
        assert statuses(rig.hits()) == [200]
        assert rig.hits()[0].auth_scheme == "Bearer"
        assert rig.retries == []

    async def test_every_param_is_sent(self, rig: Rig) -> None:
        """Query parameters travel as given."""
        await rig.page(3, size=7)
        assert rig.hits()[0].query == {"pageNum": "3", "itemsPerPage": "7"}

    async def test_single_key(self, rig: Rig) -> None:
        """A single resource decodes too."""
        first = (await rig.page(1, size=1))["results"][0]
        key = await rig.transport.get_json(
            f"{rig.path()}/{first['apiKeyId']}", scope=rig.org_id
        )
        assert key["apiKeyId"] == first["apiKeyId"]

    async def test_unknown_version_is_406_once(self, fake_atlas: FakeAtlas) -> None:
        """The Accept header carries the version; an unknown one is final."""
        async with open_rig(fake_atlas, api_version="1999-01-01") as rig:
            with pytest.raises(ApiError) as caught:
                await rig.page(1)
        assert type(caught.value) is ApiError
        assert caught.value.status == 406
        assert len(rig.hits()) == 1


class TestStatusMapping:
    @pytest.mark.parametrize(
        ("status", "cls", "code"),
        [
            (400, BadRequestError, "INVALID_PARAMETER"),
            (401, AuthenticationError, "UNAUTHORIZED"),
            (403, PermissionDeniedError, "IP_ADDRESS_NOT_ON_ACCESS_LIST"),
            (404, NotFoundError, "GROUP_NOT_FOUND"),
            (406, ApiError, "INVALID_VERSION"),
            (409, ApiError, "DUPLICATE_KEY"),
            (410, ApiError, "VERSION_GONE"),
        ],
    )
    async def test_final_status(
        self, rig: Rig, status: int, cls: type[ApiError], code: str
    ) -> None:
        """Each final status maps to its class with the Atlas fields, in one request."""
        rig.atlas.add_fault(Fault(kind="status", status=status, error_code=code))
        with pytest.raises(ApiError) as caught:
            await rig.page(2, size=5)
        error = caught.value
        assert type(error) is cls
        assert (error.status, error.error_code, error.page_num) == (status, code, 2)
        assert error.reason
        assert error.detail
        assert error.method == "GET"
        assert error.url == f"{rig.atlas.url}{rig.path()}"
        assert "?" not in str(error)
        assert "pageNum" not in str(error)
        assert len(rig.hits()) == 1
        assert rig.retries == []

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (429, RateLimitError),
            (500, ServerError),
            (502, ServerError),
            (503, ServerError),
            (504, ServerError),
        ],
    )
    async def test_transient_status_gives_up(
        self, rig: Rig, status: int, cls: type[ApiError]
    ) -> None:
        """A transient status that persists is retried max_tries times, then raised."""
        rig.atlas.add_fault(Fault(kind="status", status=status))
        with pytest.raises(ApiError) as caught:
            await rig.page(1)
        assert type(caught.value) is cls
        assert caught.value.error_code is not None
        assert caught.value.page_num == 1
        assert statuses(rig.hits()) == [status] * FAST.max_tries
        assert len(rig.retries) == FAST.max_tries - 1
        assert all(type(r) is cls for r in rig.retries)

    async def test_wrong_token_costs_one_request(self, fake_atlas: FakeAtlas) -> None:
        """401: credentials wrong, never retried."""
        async with open_rig(fake_atlas, token="not-a-token") as rig:
            with pytest.raises(AuthenticationError) as caught:
                await rig.page(1)
        assert caught.value.status == 401
        assert statuses(rig.hits()) == [401]

    async def test_denied_org_costs_one_request(self, rig: Rig) -> None:
        """403: valid credentials, not this org."""
        rig.atlas.deny(rig.token, rig.org_id)
        with pytest.raises(PermissionDeniedError) as caught:
            await rig.page(1)
        assert caught.value.status == 403
        assert statuses(rig.hits()) == [403]

    async def test_unknown_org_costs_one_request(self, rig: Rig) -> None:
        """404: no such org."""
        with pytest.raises(NotFoundError) as caught:
            await rig.page(1, org_id="0" * 24)
        assert caught.value.status == 404
        assert caught.value.error_code is not None
        assert statuses(rig.hits()) == [404]


class TestRetries:
    async def test_two_500s_then_success(self, rig: Rig) -> None:
        """500 twice, then the page: the caller only sees the page."""
        rig.atlas.add_fault(
            Fault(kind="status", status=500, page_num=1, attempts={1, 2})
        )
        body = await rig.page(1, size=25)
        assert [k["apiKeyId"] for k in body["results"]] == [
            k["apiKeyId"] for k in (await rig.page(1, size=25))["results"]
        ]
        assert statuses(rig.hits(1))[:3] == [500, 500, 200]
        assert [type(r) for r in rig.retries] == [ServerError, ServerError]

    @pytest.mark.parametrize(
        ("kind", "status", "cls"),
        [
            ("html", 502, ServerError),
            ("empty", 500, ServerError),
            ("empty", 503, ServerError),
            ("truncate", None, TransportError),
            ("reset", None, TransportError),
        ],
    )
    async def test_fault_is_retried_then_succeeds(
        self, rig: Rig, kind: Any, status: int | None, cls: type[AiokeysError]
    ) -> None:
        """Proxy pages, empty bodies, cut-short bodies and resets are passing faults."""
        # aiohttp re-sends a GET once by itself when the connection drops.
        broken = {1, 2} if kind == "reset" else {1}
        rig.atlas.add_fault(
            Fault(kind=kind, status=status, page_num=1, attempts=broken)
        )
        body = await rig.page(1)
        assert len(body["results"]) == 10
        assert len(rig.hits(1)) == len(broken) + 1
        assert [type(r) for r in rig.retries] == [cls]

    @pytest.mark.parametrize(
        ("kind", "status", "cls"),
        [
            ("html", 502, ServerError),
            ("empty", 500, ServerError),
            ("truncate", None, TransportError),
            ("reset", None, TransportError),
        ],
    )
    async def test_persistent_fault_raises_its_class(
        self, rig: Rig, kind: Any, status: int | None, cls: type[AiokeysError]
    ) -> None:
        """After max_tries the right class comes out, its cause chained, no aiohttp."""
        rig.atlas.add_fault(Fault(kind=kind, status=status))
        with pytest.raises(cls) as caught:
            await rig.page(4)
        error = caught.value
        assert type(error) is cls
        assert error.page_num == 4
        sends_per_try = 2 if kind == "reset" else 1  # aiohttp's own re-send
        assert len(rig.hits(4)) == FAST.max_tries * sends_per_try
        assert len(rig.retries) == FAST.max_tries - 1
        if kind == "reset":
            assert "connection reset" in str(error)
        if isinstance(error, ApiError):
            assert error.status == status
            assert error.error_code is None
            if kind == "html":
                assert error.body_snippet is not None
                assert "Bad Gateway" in error.body_snippet
        else:
            assert isinstance(error.__cause__, aiohttp.ClientError | ValueError)
        assert "?" not in str(error)

    async def test_wrong_content_type_is_unexpected(self, rig: Rig) -> None:
        """A 200 that is not labelled JSON is not a page; not retried."""
        rig.atlas.add_fault(Fault(kind="content_type", content_type="text/plain"))
        with pytest.raises(UnexpectedResponseError) as caught:
            await rig.page(1)
        assert caught.value.page_num == 1
        assert len(rig.hits()) == 1

    async def test_refused_connection(self) -> None:
        """Nobody listening: a TransportError chained to aiohttp's error."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base = URL(f"http://127.0.0.1:{port}")
        policy = RetryPolicy(max_tries=2, base=0.001, cap=0.001)
        async with aiohttp.ClientSession() as session:
            auth = BearerToken("t").bind(
                AuthContext(session=session, base_url=base, retry=policy)
            )
            transport = Transport(
                session=session,
                base_url=base,
                api_version="2025-03-12",
                auth=auth,
                retry=policy,
                concurrency=1,
            )
            with pytest.raises(TransportError) as caught:
                await transport.get_json(LIST.format("a" * 24), scope="a" * 24)
        assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)
        assert "could not connect" in str(caught.value)


class TestRateLimit:
    async def test_retry_after_is_honoured(self, fake_atlas: FakeAtlas) -> None:
        """A 429 with Retry-After waits at least that long, then completes."""
        policy = RetryPolicy(max_tries=3, base=0.001, cap=5.0)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(
                Fault(
                    kind="status", status=429, retry_after=0.3, page_num=1, attempts={1}
                )
            )
            body = await rig.page(1)
        assert len(body["results"]) == 10
        first, second = rig.hits(1)
        assert (first.status, second.status) == (429, 200)
        assert second.time - first.time >= 0.29
        (error,) = rig.retries
        assert isinstance(error, RateLimitError)
        assert error.retry_after == 0.3

    async def test_retry_after_is_capped(self, fake_atlas: FakeAtlas) -> None:
        """A Retry-After beyond cap waits only cap."""
        policy = RetryPolicy(max_tries=3, base=0.001, cap=0.05)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(
                Fault(
                    kind="status", status=429, retry_after=60, page_num=1, attempts={1}
                )
            )
            started = time.monotonic()
            await rig.page(1)
        assert time.monotonic() - started < 5.0

    async def test_retry_after_past_max_time_gives_up_at_once(
        self, fake_atlas: FakeAtlas
    ) -> None:
        """A Retry-After ending after max_time: no doomed retry, the 429 is raised."""
        policy = RetryPolicy(max_tries=3, base=0.001, cap=5.0, max_time=0.5)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(
                Fault(
                    kind="status", status=429, retry_after=2, page_num=1, attempts={1}
                )
            )
            started = time.monotonic()
            with pytest.raises(RateLimitError) as caught:
                await rig.page(1)
        assert time.monotonic() - started < 0.5
        assert caught.value.retry_after == 2
        assert len(rig.hits(1)) == 1
        assert rig.retries == []

    async def test_503_retry_after(self, fake_atlas: FakeAtlas) -> None:
        """A 503's Retry-After is honoured too."""
        policy = RetryPolicy(max_tries=3, base=0.001, cap=5.0)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(
                Fault(
                    kind="status", status=503, retry_after=0.2, page_num=1, attempts={1}
                )
            )
            await rig.page(1)
        first, second = rig.hits(1)
        assert second.time - first.time >= 0.19

    async def test_scope_waits_together(self, fake_atlas: FakeAtlas) -> None:
        """While one request waits out a 429, its org's other requests wait too."""
        policy = RetryPolicy(max_tries=3, base=0.001, cap=5.0)
        async with open_rig(fake_atlas, retry=policy) as rig:
            other_org = rig.atlas.add_org()
            rig.atlas.seed_keys(other_org, 3, seed=2)
            rig.atlas.add_fault(
                Fault(
                    kind="status",
                    status=429,
                    retry_after=0.5,
                    org_id=rig.org_id,
                    page_num=1,
                    attempts={1},
                )
            )
            first = asyncio.create_task(rig.page(1))
            await asyncio.wait_for(rig.retried.wait(), 5)
            same_org = asyncio.create_task(rig.page(2))
            await rig.page(1, org_id=other_org)
            await asyncio.gather(first, same_org)
        log = rig.atlas.requests
        order = [(r.path.split("/")[5], r.page_num, r.status) for r in log]
        assert order == [
            (rig.org_id, 1, 429),
            (other_org, 1, 200),
            (rig.org_id, 1, 200),
            (rig.org_id, 2, 200),
        ] or order == [
            (rig.org_id, 1, 429),
            (other_org, 1, 200),
            (rig.org_id, 2, 200),
            (rig.org_id, 1, 200),
        ]
        page_two = next(r for r in log if r.page_num == 2)
        assert page_two.time - log[0].time >= 0.45

    async def test_token_bucket_is_not_hammered(self) -> None:
        """Requests started while their org waits out a 429 hold back until it ends."""
        policy = RetryPolicy(max_tries=4, base=0.001, cap=5.0)
        bucket = RateLimit(capacity=6, refill=6, period=1.0)
        async with (
            FakeAtlas(rate_limit=bucket) as atlas,
            open_rig(atlas, retry=policy) as rig,
        ):
            burst = [asyncio.create_task(rig.page(n)) for n in range(1, 10)]
            await asyncio.wait_for(rig.retried.wait(), 5)
            late = [asyncio.create_task(rig.page(n)) for n in range(10, 13)]
            bodies = await asyncio.gather(*burst, *late)
        assert all(len(b["results"]) <= 10 for b in bodies)
        first_429 = min(r.time for r in rig.hits() if r.status == 429)
        late_hits = [
            r for r in rig.hits() if r.page_num is not None and r.page_num >= 10
        ]
        assert [r.status for r in late_hits] == [200, 200, 200]
        assert all(r.time - first_429 >= 0.9 for r in late_hits)


class TestCancellation:
    async def test_cancel_during_backoff_sleep(self, fake_atlas: FakeAtlas) -> None:
        """Cancelling while backing off returns at once and sends nothing more."""
        policy = RetryPolicy(max_tries=5, base=30.0, cap=30.0, jitter=False)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(Fault(kind="status", status=503))
            task = asyncio.create_task(rig.page(1))
            await asyncio.wait_for(rig.retried.wait(), 5)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.05)
        assert statuses(rig.hits()) == [503]

    async def test_cancel_while_gated(self, fake_atlas: FakeAtlas) -> None:
        """A request waiting behind its org's 429 can be cancelled at once."""
        policy = RetryPolicy(max_tries=3, base=0.001, cap=30.0)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(Fault(kind="status", status=429, retry_after=20))
            first = asyncio.create_task(rig.page(1))
            await asyncio.wait_for(rig.retried.wait(), 5)
            gated = asyncio.create_task(rig.page(2))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            for task in (first, gated):
                task.cancel()
            results = await asyncio.gather(first, gated, return_exceptions=True)
            assert time.monotonic() - started < 1.0
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert statuses(rig.hits()) == [429]


class TestConnections:
    async def test_limit_of_one_survives_errors(self, fake_atlas: FakeAtlas) -> None:
        """Every error body is read and released: one connection serves them all."""
        policy = RetryPolicy(max_tries=2, base=0.001, cap=0.001)
        async with open_rig(fake_atlas, retry=policy, limit=1, concurrency=4) as rig:
            faults = [
                Fault(kind="status", status=404, page_num=2),
                Fault(kind="status", status=500, page_num=3),
                Fault(kind="html", page_num=4),
                Fault(kind="empty", page_num=5),
                Fault(kind="truncate", page_num=6),
                Fault(kind="reset", page_num=7),
                Fault(kind="status", status=429, retry_after=0.001, page_num=8),
                Fault(kind="content_type", page_num=9),
            ]
            for fault in faults:
                rig.atlas.add_fault(fault)
            async with asyncio.timeout(20):
                for _ in range(2):
                    outcomes = await asyncio.gather(
                        *(rig.page(n) for n in range(2, 10)), return_exceptions=True
                    )
                    assert all(
                        isinstance(
                            o, ApiError | TransportError | UnexpectedResponseError
                        )
                        for o in outcomes
                    ), outcomes
                body = await rig.page(1)
        assert len(body["results"]) == 10

    async def test_concurrency_bounds_attempts(self, fake_atlas: FakeAtlas) -> None:
        """At most ``concurrency`` attempts in flight: six slow pages take three rounds."""
        async with open_rig(fake_atlas, concurrency=2) as rig:
            rig.atlas.add_fault(Fault(kind="latency", delay=0.15))
            started = time.monotonic()
            await asyncio.gather(*(rig.page(n) for n in range(1, 7)))
        assert time.monotonic() - started >= 0.44

    async def test_backoff_sleep_frees_the_slot(self, fake_atlas: FakeAtlas) -> None:
        """A request sleeping between attempts does not hold the concurrency slot."""
        policy = RetryPolicy(max_tries=2, base=0.4, cap=0.4, jitter=False)
        async with open_rig(fake_atlas, retry=policy, concurrency=1) as rig:
            rig.atlas.add_fault(
                Fault(kind="status", status=500, page_num=1, attempts={1})
            )
            first = asyncio.create_task(rig.page(1))
            await asyncio.wait_for(rig.retried.wait(), 5)
            await rig.page(2)
            await first
        assert [(r.page_num, r.status) for r in rig.hits()] == [
            (1, 500),
            (2, 200),
            (1, 200),
        ]

    @pytest.mark.parametrize("concurrency", [0, -1, True, 1.5])
    async def test_concurrency_is_checked(self, rig: Rig, concurrency: Any) -> None:
        """A budget of no requests is refused by name, not a silent hang."""
        with pytest.raises(InvalidArgumentError, match="concurrency"):
            Transport(
                session=rig.session,
                base_url=URL(rig.atlas.url),
                api_version="2025-03-12",
                auth=BearerToken("t").bind(
                    AuthContext(
                        session=rig.session, base_url=URL(rig.atlas.url), retry=FAST
                    )
                ),
                retry=FAST,
                concurrency=concurrency,
            )


class TestEnvelope:
    async def test_list_keeps_its_shape(self, rig: Rig) -> None:
        """envelope=true: the page comes back without its status field."""
        body = await rig.page(1, extra={"envelope": "true"})
        assert "status" not in body
        assert len(body["results"]) == 10
        assert body["totalCount"] == 25

    async def test_single_resource_is_unwrapped(self, rig: Rig) -> None:
        """envelope=true: a key comes back as its content."""
        first = (await rig.page(1, size=1))["results"][0]
        key = await rig.transport.get_json(
            f"{rig.path()}/{first['apiKeyId']}",
            {"envelope": "true"},
            scope=rig.org_id,
        )
        assert key["apiKeyId"] == first["apiKeyId"]
        assert "content" not in key

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, BadRequestError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (410, ApiError),
        ],
    )
    async def test_final_error_in_envelope(
        self, rig: Rig, status: int, cls: type[ApiError]
    ) -> None:
        """A body status >= 400 raises what that HTTP status would, in one request."""
        rig.atlas.add_fault(Fault(kind="status", status=status, error_code="SOME_CODE"))
        with pytest.raises(ApiError) as caught:
            await rig.page(1, extra={"envelope": "true"})
        assert type(caught.value) is cls
        assert caught.value.status == status
        assert caught.value.error_code == "SOME_CODE"
        assert len(rig.hits()) == 1

    async def test_unknown_org_in_envelope(self, rig: Rig) -> None:
        """The simulator's own 404 through an envelope."""
        with pytest.raises(NotFoundError):
            await rig.page(1, org_id="f" * 24, extra={"envelope": "true"})

    async def test_transient_error_in_envelope_is_retried(self, rig: Rig) -> None:
        """A 503 or 429 inside an envelope is retried like the real status."""
        rig.atlas.add_fault(Fault(kind="status", status=503, page_num=1, attempts={1}))
        rig.atlas.add_fault(
            Fault(
                kind="status", status=429, retry_after=0.001, page_num=1, attempts={2}
            )
        )
        body = await rig.page(1, extra={"envelope": "true"})
        assert len(body["results"]) == 10
        assert [type(r) for r in rig.retries] == [ServerError, RateLimitError]
        assert isinstance(rig.retries[1], RateLimitError)
        assert rig.retries[1].retry_after == 0.001


class TestDeadline:
    async def test_slow_answer(self, rig: Rig) -> None:
        """The deadline cuts a slow request short; not retried."""
        rig.atlas.add_fault(Fault(kind="latency", delay=5.0))
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as caught:
            await rig.page(1, deadline=time.monotonic() + 0.2)
        assert time.monotonic() - started < 2.0
        assert caught.value.deadline_exceeded is True
        assert caught.value.page_num == 1
        assert len(rig.hits()) <= 1

    async def test_deadline_cuts_the_backoff(self, fake_atlas: FakeAtlas) -> None:
        """A long backoff sleep ends at the deadline; the last failure is the cause."""
        policy = RetryPolicy(max_tries=5, base=30.0, cap=30.0, jitter=False)
        async with open_rig(fake_atlas, retry=policy) as rig:
            rig.atlas.add_fault(Fault(kind="status", status=500))
            started = time.monotonic()
            with pytest.raises(RequestTimeoutError) as caught:
                await rig.page(1, deadline=time.monotonic() + 0.3)
            assert time.monotonic() - started < 2.0
        assert isinstance(caught.value.__cause__, ServerError)
        assert statuses(rig.hits()) == [500]

    async def test_past_deadline_sends_nothing(self, rig: Rig) -> None:
        """A deadline already gone: no request at all."""
        with pytest.raises(RequestTimeoutError):
            await rig.page(1, deadline=time.monotonic() - 1)
        assert rig.hits() == []

    async def test_deadline_not_reached(self, rig: Rig) -> None:
        """A generous deadline changes nothing."""
        body = await rig.page(1, deadline=time.monotonic() + 30)
        assert len(body["results"]) == 10


class TestLogging:
    async def test_one_debug_line_per_attempt(
        self, rig: Rig, caplog: pytest.LogCaptureFixture
    ) -> None:
        """DEBUG per attempt (page, size, status, attempt, elapsed); INFO per retry."""
        rig.atlas.add_fault(Fault(kind="status", status=502, page_num=2, attempts={1}))
        with caplog.at_level(logging.DEBUG, logger="aiokeys._transport"):
            await rig.page(2, size=5)
        mine = [r for r in caplog.records if r.name == "aiokeys._transport"]
        debug = [r.getMessage() for r in mine if r.levelno == logging.DEBUG]
        info = [r.getMessage() for r in mine if r.levelno == logging.INFO]
        assert len(debug) == 2
        assert "page=2 size=5 status=502 attempt=1 elapsed=" in debug[0]
        assert "page=2 size=5 status=200 attempt=2 elapsed=" in debug[1]
        assert len(info) == 1
        assert "ServerError 502" in info[0]
        assert " in 0.0" in info[0]

    async def test_no_secret_anywhere(
        self, fake_atlas: FakeAtlas, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A planted token shows up in no log record, message or repr."""
        planted = "planted-Secret-0123456789"
        fake_atlas.add_bearer_token(planted)
        policy = RetryPolicy(max_tries=2, base=0.001, cap=0.001)
        async with open_rig(fake_atlas, retry=policy, token=planted) as rig:
            rig.atlas.add_fault(
                Fault(kind="status", status=500, page_num=1, attempts={1})
            )
            rig.atlas.add_fault(Fault(kind="reset", page_num=2))
            with caplog.at_level(logging.DEBUG):
                await rig.page(1)
                with pytest.raises(TransportError) as caught:
                    await rig.page(2)
                rig.atlas.deny(planted, rig.org_id)
                with pytest.raises(PermissionDeniedError) as denied:
                    await rig.page(3)
        texts = [r.getMessage() for r in caplog.records]
        texts += [
            str(caught.value),
            repr(caught.value),
            str(denied.value),
            repr(denied.value),
        ]
        assert texts
        assert not [t for t in texts if planted in t]
        assert not [t for t in texts if "Authorization" in t or "pageNum=" in t]


def _call(params: dict[str, str] | None = None) -> _Call:
    return _Call(
        url=URL("https://cloud.mongodb.com/api/atlas/v2/orgs/x/aiModelApiKeys"),
        params=params or {},
        scope="x",
        page_num=6,
        deadline=None,
        on_retry=None,
    )


def _reply(body: bytes, content_type: str = "application/json") -> _Reply:
    return _Reply(status=200, body=body, content_type=content_type, retry_after=None)


class TestDecoding:
    """The body rules, on bodies no honest server sends."""

    @pytest.mark.parametrize(
        "body", [b'{"results": [{"apiKeyId": "a"}, {"apiK', b'{"results": [', b"[1, 2"]
    )
    def test_json_cut_short_is_a_transport_fault(self, body: bytes) -> None:
        """A body ending mid-document was cut short: TransportError, retried."""
        with pytest.raises(TransportError) as caught:
            _parse_json(_call(), _reply(body))
        assert type(caught.value) is TransportError
        assert caught.value.page_num == 6
        assert isinstance(caught.value.__cause__, ValueError)

    @pytest.mark.parametrize("body", [b"not json", b'{"a": 1} trailing', b"{'a': 1}"])
    def test_garbage_is_unexpected(self, body: bytes) -> None:
        """A complete body that is not JSON: UnexpectedResponseError, not retried."""
        with pytest.raises(UnexpectedResponseError) as caught:
            _parse_json(_call(), _reply(body))
        assert caught.value.page_num == 6

    def test_deep_nesting_is_unexpected(self) -> None:
        """Nesting deep enough to exhaust the recursion limit is not a crash."""
        with pytest.raises(UnexpectedResponseError):
            _parse_json(_call(), _reply(b"[" * 100_000 + b"]" * 100_000))

    @pytest.mark.parametrize("body", [b"", b"  \r\n"])
    def test_empty_success_is_unexpected(self, body: bytes) -> None:
        """A 200 with nothing in it is not a page."""
        with pytest.raises(UnexpectedResponseError, match="empty body"):
            _parse_json(_call(), _reply(body))

    @pytest.mark.parametrize(
        "content_type",
        [
            "application/json",
            "application/vnd.atlas.2025-03-12+json",
            "APPLICATION/JSON",
        ],
    )
    def test_json_types(self, content_type: str) -> None:
        """JSON and the versioned Atlas types are read."""
        assert _parse_json(_call(), _reply(b"[]", content_type)) == []

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "text/html", "application/octet-stream"]
    )
    def test_other_types_are_unexpected(self, content_type: str) -> None:
        """Anything else is not Atlas, whatever the bytes."""
        with pytest.raises(UnexpectedResponseError, match="content type"):
            _parse_json(_call(), _reply(b"{}", content_type))

    @pytest.mark.parametrize(
        ("payload", "expected"),
        [
            (
                {"status": 200, "results": [], "totalCount": 0},
                {"results": [], "totalCount": 0},
            ),
            ({"status": 200, "content": {"apiKeyId": "k"}}, {"apiKeyId": "k"}),
            ({"status": 204}, {}),
            ({"results": []}, {"results": []}),
            ({"status": True, "content": 1}, {"status": True, "content": 1}),
            (
                {"status": "ACTIVE", "apiKeyId": "k"},
                {"status": "ACTIVE", "apiKeyId": "k"},
            ),
            ([1, 2], [1, 2]),
        ],
    )
    def test_unwrap(self, payload: Any, expected: Any) -> None:
        """envelope=true shapes: list keeps its shape, resource its content."""
        call = _call({"envelope": "true"})
        assert _unwrap(call, _reply(b""), payload) == expected

    def test_unwrap_error_without_content(self) -> None:
        """A body status >= 400 raises by that status even with no content."""
        with pytest.raises(ServerError) as caught:
            _unwrap(_call({"envelope": "true"}), _reply(b""), {"status": 503})
        assert caught.value.status == 503
        assert caught.value.page_num == 6


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)


class TestDecodingProperties:
    @given(
        body=st.binary(max_size=200)
        | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        keep=st.integers(0, 300),
    )
    def test_any_body_decodes_or_raises_ours(self, body: bytes, keep: int) -> None:
        """Whatever bytes (whole or cut) come with a 200: JSON or an aiokeys error."""
        with suppress(TransportError, UnexpectedResponseError):
            _parse_json(_call(), _reply(body[:keep]))

    @given(payload=JSON_VALUES, status=st.integers(100, 700))
    def test_any_envelope_unwraps_or_raises_ours(
        self, payload: Any, status: int
    ) -> None:
        """Any envelope shape unwraps, or raises the ApiError of its body status."""
        if isinstance(payload, dict):
            payload = payload | {"status": status}
        call = _call({"envelope": "true"})
        if isinstance(payload, dict) and status >= 400:
            with pytest.raises(ApiError) as caught:
                _unwrap(call, _reply(b""), payload)
            assert caught.value.status == status
        else:
            _unwrap(call, _reply(b""), payload)


class TestTransportErrorMapping:
    """aiohttp's and the socket's exceptions become ours, described, never leaked."""

    @pytest.mark.parametrize(
        ("exc", "cls", "words", "retried"),
        [
            (
                aiohttp.ServerDisconnectedError(),
                TransportError,
                "server closed the connection",
                True,
            ),
            (
                aiohttp.ClientPayloadError("Response payload is not completed"),
                TransportError,
                "cut short",
                True,
            ),
            (
                aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
                TransportError,
                "connection reset",
                True,
            ),
            (ConnectionResetError(), TransportError, "connection reset", True),
            (
                aiohttp.ClientConnectionError("x"),
                TransportError,
                "request failed",
                True,
            ),
            (TimeoutError(), RequestTimeoutError, "timed out", True),
            (
                aiohttp.SocketTimeoutError("read"),
                RequestTimeoutError,
                "timed out",
                True,
            ),
            (
                aiohttp.InvalidURL("bad://?token=x"),
                InvalidArgumentError,
                "invalid URL",
                False,
            ),
        ],
    )
    def test_mapping(
        self, exc: BaseException, cls: type[AiokeysError], words: str, retried: bool
    ) -> None:
        """Each failure gets its class and words; the exception's own text stays out."""
        error = _transport_error(_call(), exc)
        assert type(error) is cls
        assert words in str(error)
        assert type(exc).__name__ in str(error)
        assert "token=" not in str(error)
        assert error.page_num == 6
        assert is_retryable(error) is retried

"""The aiohttp application: one catch-all route running the request pipeline.

A single handler, rather than aiohttp's router, keeps the order of checks under
our control and identical for every path, as Atlas behaves:

1. ``latency`` (the instance-wide extra delay);
2. authentication (401, never enveloped, with the Digest challenges);
3. the versioned ``Accept`` header (406 unknown, 410 retired);
4. the route (404 unknown path, 405 wrong method);
5. fault rules (which count the attempt);
6. query and path parameters (400), access (403), existence of the org or
   project (404), and only then the rate limit (429, which takes a token);
7. the operation (its own 400 for a create or rename body, 404 for a key),
   then any drift scheduled after that page.

Parameters come before the rate limit on purpose: a request that can never
succeed is told so at once, with the parameter named, instead of a 429 that a
client would wait out and retry only to learn the same; and a refused request
takes no token, so a test's bucket counts only requests that could succeed.

Every request, whatever its fate, is appended to the request log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
from aiohttp import hdrs, web

from . import _oauth_http, _routes
from ._faults import TERMINAL_KINDS, Fault, RequestSite
from ._log import LoggedRequest, redact_query, scheme_of
from ._responses import JSON_TYPE, Renderer, error_body, html_page
from ._state import Principal, SimState

__all__ = ["SERVED_VERSIONS", "build_app"]

logger = logging.getLogger(__name__)

#: API versions answered normally.
SERVED_VERSIONS: Final = ("2025-03-12", "preview")
_MEDIA: Final = re.compile(r"application/vnd\.atlas\.([a-z0-9.-]+)\+json")
_Operate = Callable[[], Awaitable[web.StreamResponse]]


def build_app(state: SimState) -> web.Application:
    """An aiohttp application serving ``state``."""
    app = web.Application(client_max_size=1024 * 1024)
    pipeline = _Pipeline(state)
    app.router.add_route("*", "/{tail:.*}", pipeline.handle)
    return app


@attrs.define
class _Pipeline:
    state: SimState

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request and log it, whatever happens."""
        arrival = self.state.clock()
        log = self.state.log
        slot = len(log)
        log.append(None)
        status = 0
        try:
            response = await self._answer(request)
            status = 0 if isinstance(response, _ResetMarker) else response.status
            return response
        finally:
            log[slot] = _logged(request, status, arrival)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.state.latency > 0:
            await asyncio.sleep(self.state.latency)
        if request.path.startswith("/api/oauth/"):
            return await self._oauth(request)
        flags, _ = _routes.parse_flags(request.query)
        renderer = Renderer(
            content_type=JSON_TYPE, envelope=flags["envelope"], pretty=flags["pretty"]
        )
        if not request.path.startswith(_routes.API_PREFIX + "/"):
            return renderer.error(
                error_body(
                    404, "RESOURCE_NOT_FOUND", f"Cannot find resource {request.path}"
                ),
                wrap=False,
            )
        return await self._api(request, renderer)

    async def _api(
        self, request: web.Request, renderer: Renderer
    ) -> web.StreamResponse:
        principal, refusal = self._authenticate(request, renderer)
        if principal is None:
            assert refusal is not None
            return refusal
        version, refusal = self._version(request, renderer)
        if refusal is not None:
            return refusal
        renderer = attrs.evolve(
            renderer, content_type=f"application/vnd.atlas.{version}+json"
        )
        route, refusal = _match(request, renderer)
        if route is None:
            assert refusal is not None
            return refusal
        return await self._with_faults(
            request,
            _site(request, route),
            renderer,
            lambda: self._operate(request, route, principal, renderer),
        )

    async def _with_faults(
        self,
        request: web.Request,
        site: RequestSite,
        renderer: Renderer,
        operate: _Operate,
    ) -> web.StreamResponse:
        fired = self.state.faults.fire(site)
        for fault in fired:
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay)
        terminal = next(
            (fault for fault in fired if fault.kind in TERMINAL_KINDS), None
        )
        if terminal is not None:
            return _fault_answer(request, terminal, renderer)
        response = await operate()
        for fault in fired:
            if fault.kind == "content_type":
                response.headers[hdrs.CONTENT_TYPE] = fault.content_type
        if any(fault.kind == "truncate" for fault in fired) and isinstance(
            response, web.Response
        ):
            return await _truncate(request, response)
        return response

    def _authenticate(
        self, request: web.Request, renderer: Renderer
    ) -> tuple[Principal | None, web.Response | None]:
        if not self.state.require_auth:
            return Principal(identities=frozenset(), display="anonymous"), None
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        scheme = scheme_of(header)
        if scheme == "Digest" and self.state.digest.algorithms:
            outcome = self.state.digest.check(request.method, request.raw_path, header)
            if outcome.user is not None:
                return Principal(
                    identities=frozenset({outcome.user}), display=outcome.user
                ), None
            return None, self._unauthorized(
                renderer,
                "The digest credentials were not accepted.",
                stale=outcome.stale,
            )
        if scheme == "Bearer":
            grant = self.state.tokens.lookup(header.partition(" ")[2].strip())
            if grant is not None:
                display = grant.client_id or "api-token"
                return Principal(identities=grant.principals, display=display), None
            return None, self._unauthorized(
                renderer, "The access token is invalid, expired or revoked."
            )
        return None, self._unauthorized(
            renderer, "You are not authorized for this resource."
        )

    def _unauthorized(
        self, renderer: Renderer, detail: str, *, stale: bool = False
    ) -> web.Response:
        response = renderer.error(error_body(401, "UNAUTHORIZED", detail), wrap=False)
        for challenge in (
            self.state.digest.challenges(stale=stale)
            if self.state.digest.algorithms
            else []
        ):
            response.headers.add(hdrs.WWW_AUTHENTICATE, challenge)
        response.headers.add(
            hdrs.WWW_AUTHENTICATE, f'Bearer realm="{self.state.digest.realm}"'
        )
        return response

    def _version(
        self, request: web.Request, renderer: Renderer
    ) -> tuple[str | None, web.Response | None]:
        version = requested_version(request.headers.get(hdrs.ACCEPT, ""))
        retired = self.state.retired_versions
        usable = [v for v in SERVED_VERSIONS if v not in retired]
        if version is not None and version in retired:
            advice = f"; use {usable[0]}." if usable else "."
            detail = f"API version {version} has been retired{advice}"
            return None, renderer.error(error_body(410, "VERSION_GONE", detail))
        if version not in SERVED_VERSIONS:
            detail = "Unsupported or missing API version." + (
                f" Send Accept: application/vnd.atlas.{usable[0]}+json"
                if usable
                else ""
            )
            return None, renderer.error(error_body(406, "INVALID_VERSION", detail))
        return version, None

    async def _operate(
        self,
        request: web.Request,
        route: _routes.Route,
        principal: Principal,
        renderer: Renderer,
    ) -> web.StreamResponse:
        refusal = self._precheck(request, route, principal, renderer)
        if refusal is not None:
            return refusal
        bucket = self.state.bucket(route.scope_id)
        if bucket is not None:
            wait = bucket.take()
            response = (
                self._rate_limited(renderer, route, wait)
                if wait is not None
                else await self._dispatch(request, route, principal, renderer)
            )
            response.headers["RateLimit-Limit"] = str(bucket.limit.capacity)
            response.headers["RateLimit-Remaining"] = str(bucket.remaining)
            return response
        return await self._dispatch(request, route, principal, renderer)

    def _precheck(
        self,
        request: web.Request,
        route: _routes.Route,
        principal: Principal,
        renderer: Renderer,
    ) -> web.Response | None:
        _, bad = _routes.parse_flags(request.query)
        bad = _routes.path_violations(route) + bad
        if route.is_list and request.method == "GET":
            bad += _routes.page_params(request.query)[2]
        if bad:
            return _routes.bad_request(renderer, bad)
        if self._denied(route, principal):
            detail = "The authenticated principal has no access to this organization or project."
            return renderer.error(error_body(403, "USER_UNAUTHORIZED", detail))
        return _routes.not_found(renderer, route, self.state)

    def _denied(self, route: _routes.Route, principal: Principal) -> bool:
        scopes = {route.scope_id}
        group = (
            self.state.store.groups.get(route.scope_id)
            if route.kind == "groups"
            else None
        )
        if group is not None:
            scopes.add(group.org_id)
        return any(
            principal.identities & self.state.denied.get(scope, set())
            for scope in scopes
        )

    def _rate_limited(
        self, renderer: Renderer, route: _routes.Route, wait: float
    ) -> web.Response:
        limit = self.state.rate_limit
        assert limit is not None
        seconds = max(1, math.ceil(wait))
        detail = (
            f"Rate limit exceeded for api/atlas/v2/{route.kind}. Please retry after {seconds} seconds. "
            f"Request capacity: {limit.capacity}. Refill rate: {_seconds(limit.refill)} per {_seconds(limit.period)} seconds."
        )
        return renderer.error(
            error_body(429, "RATE_LIMITED_TOKEN_BUCKET", detail),
            headers={hdrs.RETRY_AFTER: str(seconds)},
        )

    async def _dispatch(
        self,
        request: web.Request,
        route: _routes.Route,
        principal: Principal,
        renderer: Renderer,
    ) -> web.Response:
        method = request.method
        if route.is_list and method == "GET":
            response, served = _routes.list_page(request, self.state, route, renderer)
            if served:
                self._drift(route.scope_id, _site(request, route).page_num)
            return response
        if route.is_list:
            return await _routes.create_key(
                request, self.state, route, renderer, principal
            )
        if method == "GET":
            return _routes.get_key(self.state, route, renderer)
        if method == "PATCH":
            return await _routes.rename_key(request, self.state, route, renderer)
        return _routes.delete_key(self.state, route, renderer)

    def _drift(self, scope_id: str, page_num: int | None) -> None:
        for drift in self.state.drifts:
            if drift.done or drift.scope_id != scope_id or drift.page_num != page_num:
                continue
            drift.done = True
            for key_id in drift.remove:
                self.state.store.remove(key_id)
            if drift.add:
                self.state.store.seed_into_scope(
                    scope_id, drift.add, seed=f"drift:{scope_id}:{page_num}"
                )
            logger.debug(
                "drift applied after page %s: +%d -%d",
                page_num,
                drift.add,
                len(drift.remove),
            )

    async def _oauth(self, request: web.Request) -> web.StreamResponse:
        renderer = Renderer(content_type=JSON_TYPE)
        site = RequestSite(path=request.path, org_id=None, group_id=None, page_num=None)
        return await self._with_faults(
            request,
            site,
            renderer,
            lambda: _oauth_http.answer(request, self.state, renderer),
        )


def _match(
    request: web.Request, renderer: Renderer
) -> tuple[_routes.Route | None, web.Response | None]:
    """The operation a request names, or the 404/405 answer."""
    route = _routes.match_route(request.path)
    if route is None:
        detail = f"Cannot find resource {request.path}"
        return None, renderer.error(error_body(404, "RESOURCE_NOT_FOUND", detail))
    if request.method not in _routes.allowed_methods(route):
        detail = f"Method {request.method} is not allowed on this resource."
        return None, renderer.error(error_body(405, None, detail))
    return route, None


def requested_version(accept: str) -> str | None:
    """The Atlas version named by an ``Accept`` value, or ``None``."""
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        found = _MEDIA.fullmatch(media)
        if found is not None:
            return found.group(1)
    return None


def _site(request: web.Request, route: _routes.Route) -> RequestSite:
    page_num: int | None = None
    if route.is_list and request.method == "GET":
        page_num = _routes.page_num_of(request.query)
    return RequestSite(
        path=request.path,
        org_id=route.scope_id if route.kind == "orgs" else None,
        group_id=route.scope_id if route.kind == "groups" else None,
        page_num=page_num,
    )


def _logged(request: web.Request, status: int, arrival: float) -> LoggedRequest:
    page_num: int | None = None
    route = _routes.match_route(request.path)
    if route is not None:
        page_num = _site(request, route).page_num
    return LoggedRequest(
        method=request.method,
        path=request.path,
        query=redact_query(request.query),
        auth_scheme=scheme_of(request.headers.get(hdrs.AUTHORIZATION)),
        status=status,
        time=arrival,
        page_num=page_num,
    )


def _fault_answer(
    request: web.Request, fault: Fault, renderer: Renderer
) -> web.Response:
    status = fault.effective_status
    headers: dict[str, str] = (
        {hdrs.RETRY_AFTER: _seconds(fault.retry_after)}
        if fault.retry_after is not None
        else {}
    )
    if fault.kind == "status":
        return renderer.error(
            error_body(status, fault.error_code, "Injected fault."), headers=headers
        )
    if fault.kind == "html":
        return web.Response(
            status=status,
            text=html_page(status),
            content_type="text/html",
            headers=headers,
        )
    if fault.kind == "empty":
        return web.Response(status=status, headers=headers)
    _reset(request)
    return _ResetMarker(status=500)


class _ResetMarker(web.Response):
    """Returned after a reset: nothing is sent, and the log records status 0."""


def _seconds(value: float) -> str:
    """``7`` for 7.0, ``0.25`` for 0.25: whole seconds as HTTP wants, fractions for fast tests."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0")


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), answering nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _truncate(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send ``response``'s headers and half its body, then close the connection."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream

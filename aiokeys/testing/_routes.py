"""The seven operations of the contract, after authentication and faults.

Each handler validates its inputs first (400 naming every bad field), then looks
up what it needs (404), then answers through the request's
:class:`~aiokeys.testing._responses.Renderer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import attrs
from aiohttp import web

from ._responses import Renderer, error_body
from ._state import Principal, SimState
from ._store import StoredKey, dumps

__all__ = ["Route", "match_route", "parse_flags"]

API_PREFIX: Final = "/api/atlas/v2"
_HEX24: Final = re.compile(r"[a-f0-9]{24}")
_INT: Final = re.compile(r"[+-]?\d{1,18}")
_ROUTE: Final = re.compile(
    r"/api/atlas/v2/(orgs|groups)/([^/]*)/aiModelApiKeys(?:/([^/]+))?/?"
)
_METHODS: Final = {
    ("orgs", False): {"GET"},
    ("orgs", True): {"GET"},
    ("groups", False): {"GET", "POST"},
    ("groups", True): {"GET", "PATCH", "DELETE"},
}
_ALLOWED_CLOUD: Final = "ANY"


@attrs.frozen(kw_only=True)
class Route:
    """A request matched to an operation: the scope kind, its id, the key id."""

    kind: str
    scope_id: str
    key_id: str | None

    @property
    def is_list(self) -> bool:
        return self.key_id is None


def match_route(path: str) -> Route | None:
    """Match an API path; ``None`` if it names no operation of the contract."""
    found = _ROUTE.fullmatch(path)
    if found is None:
        return None
    return Route(kind=found.group(1), scope_id=found.group(2), key_id=found.group(3))


def allowed_methods(route: Route) -> set[str]:
    """Methods the contract defines on this path."""
    return _METHODS[(route.kind, not route.is_list)]


def parse_flags(
    query: Mapping[str, str],
) -> tuple[dict[str, bool], list[tuple[str, str]]]:
    """``envelope``/``pretty`` (default false) and the violations among them."""
    flags: dict[str, bool] = {}
    bad: list[tuple[str, str]] = []
    for name in ("envelope", "pretty"):
        raw = query.get(name, "false").lower()
        flags[name] = raw == "true"
        if raw not in ("true", "false"):
            bad.append((name, "must be true or false"))
    return flags, bad


def page_params(query: Mapping[str, str]) -> tuple[int, int, list[tuple[str, str]]]:
    """``pageNum`` and ``itemsPerPage`` with documented defaults and ranges."""
    bad: list[tuple[str, str]] = []
    page_num = _int_param(query, "pageNum", 1, 1, None, bad)
    size = _int_param(query, "itemsPerPage", 100, 1, 500, bad)
    return page_num, size, bad


def _int_param(
    query: Mapping[str, str],
    name: str,
    default: int,
    low: int,
    high: int | None,
    bad: list[tuple[str, str]],
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if _INT.fullmatch(raw) is None:
        bad.append((name, "must be an integer"))
        return default
    value = int(raw)
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        bad.append((name, f"must be {span}, got {value}"))
        return default
    return value


def path_violations(route: Route) -> list[tuple[str, str]]:
    """A malformed org or project id in the path."""
    name = "orgId" if route.kind == "orgs" else "groupId"
    if _HEX24.fullmatch(route.scope_id) is None:
        return [(name, "must be a 24-character lowercase hexadecimal string")]
    return []


def bad_request(
    renderer: Renderer, bad: list[tuple[str, str]], code: str = "INVALID_PARAMETER"
) -> web.Response:
    """A 400 naming every violation in ``badRequestDetail.fields``."""
    names = ", ".join(name for name, _ in bad)
    detail = f"Invalid parameter(s): {names}. " + "; ".join(f"{n} {d}" for n, d in bad)
    return renderer.error(error_body(400, code, detail, fields=bad))


def not_found(renderer: Renderer, route: Route, state: SimState) -> web.Response | None:
    """A 404 if the org or project of ``route`` does not exist."""
    if route.kind == "orgs" and route.scope_id not in state.store.orgs:
        detail = f"No organization with ID {route.scope_id} exists."
        return renderer.error(error_body(404, "ORG_NOT_FOUND", detail))
    if route.kind == "groups" and route.scope_id not in state.store.groups:
        detail = f"No group with ID {route.scope_id} exists."
        return renderer.error(error_body(404, "GROUP_NOT_FOUND", detail))
    return None


def key_not_found(renderer: Renderer, key_id: str) -> web.Response:
    return renderer.error(
        error_body(404, "RESOURCE_NOT_FOUND", f"Cannot find resource {key_id}")
    )


def find_key(state: SimState, route: Route) -> StoredKey | None:
    """The key of ``route`` if it exists within the route's org or project."""
    assert route.key_id is not None
    stored = state.store.keys.get(route.key_id)
    if stored is None:
        return None
    owner = stored.org_id if route.kind == "orgs" else stored.group_id
    return stored if owner == route.scope_id else None


def list_page(
    request: web.Request, state: SimState, route: Route, renderer: Renderer
) -> tuple[web.Response, bool]:
    """One page of a list endpoint: a slice of the scope's keys, in creation order.

    Returns the answer and whether a page was served (not a 400, which
    ``envelope=true`` would send as HTTP 200).
    """
    page_num, size, bad = page_params(request.query)
    if bad:
        return bad_request(renderer, bad), False
    keys = state.store.scope_keys(route.scope_id)
    start = (page_num - 1) * size
    chunk = keys[start : start + size]
    true_count = len(keys)
    links = _links(request, page_num, size, has_next=start + size < true_count)
    tail: dict[str, Any] = {}
    reported = (
        true_count
        if state.total_count is None
        else state.total_count(true_count, page_num)
    )
    if reported is not None:
        tail["totalCount"] = reported
    return renderer.page([links, *(stored.body for stored in chunk)], tail), True


def _links(request: web.Request, page_num: int, size: int, *, has_next: bool) -> bytes:
    base = f"{request.scheme}://{request.host}{request.path}"

    def href(num: int) -> str:
        query = dict(request.query)
        query.update(pageNum=str(num), itemsPerPage=str(size))
        return f"{base}?{urlencode(query)}"

    links = [{"href": href(page_num), "rel": "self"}]
    if page_num > 1:
        links.append({"href": href(page_num - 1), "rel": "previous"})
    if has_next:
        links.append({"href": href(page_num + 1), "rel": "next"})
    return dumps(links)


def get_key(state: SimState, route: Route, renderer: Renderer) -> web.Response:
    """One key of an org or a project."""
    stored = find_key(state, route)
    if stored is None:
        assert route.key_id is not None
        return key_not_found(renderer, route.key_id)
    return renderer.resource(200, stored.to_dict())


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _INVALID


_INVALID: Final = object()


def _name_violations(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    name = body.get("name")
    if not isinstance(name, str):
        return [("name", "is required and must be a string")]
    if not 1 <= len(name) <= 250:
        return [("name", "must be 1 to 250 characters long")]
    return []


def _create_violations(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    bad = _name_violations(body)
    for field in ("cloud", "geography"):
        if body.get(field) != _ALLOWED_CLOUD:
            bad.append((field, f'is required and must be "{_ALLOWED_CLOUD}"'))
    return bad


async def create_key(
    request: web.Request,
    state: SimState,
    route: Route,
    renderer: Renderer,
    principal: Principal,
) -> web.Response:
    """Create a key in a project; the answer is the only one carrying its secret."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        return renderer.error(
            error_body(400, "INVALID_JSON", "The request body must be a JSON object.")
        )
    bad = _create_violations(body)
    if bad:
        return bad_request(renderer, bad, "VALIDATION_ERROR")
    record = state.store.make_key(
        route.scope_id, body["name"], datetime.now(UTC), principal.display
    )
    state.store.insert(route.scope_id, record)
    return renderer.resource(201, record)


async def rename_key(
    request: web.Request, state: SimState, route: Route, renderer: Renderer
) -> web.Response:
    """Rename a key of a project (the only mutable field)."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        return renderer.error(
            error_body(400, "INVALID_JSON", "The request body must be a JSON object.")
        )
    bad = _name_violations(body)
    if bad:
        return bad_request(renderer, bad, "VALIDATION_ERROR")
    stored = find_key(state, route)
    if stored is None:
        assert route.key_id is not None
        return key_not_found(renderer, route.key_id)
    record = stored.to_dict()
    record["name"] = body["name"]
    state.store.replace(stored, record)
    return renderer.resource(200, record)


def delete_key(state: SimState, route: Route, renderer: Renderer) -> web.Response:
    """Delete a key of a project: 204 and no body."""
    stored = find_key(state, route)
    if stored is None:
        assert route.key_id is not None
        return key_not_found(renderer, route.key_id)
    state.store.remove(stored.api_key_id)
    return renderer.resource(204, None)

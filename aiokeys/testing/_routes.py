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
from multidict import MultiMapping

from ._responses import Renderer, error_body
from ._state import Principal, SimState
from ._store import StoredKey, dumps

__all__ = ["Route", "match_route", "parse_flags"]

API_PREFIX: Final = "/api/atlas/v2"
_HEX24: Final = re.compile(r"[a-f0-9]{24}")
# ASCII on purpose: in a str pattern \d also matches other scripts' digits.
_DIGITS: Final = re.compile(r"[0-9]+")
_NEGATIVE: Final = re.compile(r"-[0-9]+")
_REPEATED: Final = "must be given only once"
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
    query: MultiMapping[str],
) -> tuple[dict[str, bool], list[tuple[str, str]]]:
    """``envelope``/``pretty`` (default false) and the violations among them.

    A flag is on only when given once, as ``true`` (any case); a malformed or
    repeated flag is a violation, and is off for the 400 that names it.
    """
    flags: dict[str, bool] = {}
    bad: list[tuple[str, str]] = []
    for name in ("envelope", "pretty"):
        raw = (_single(query, name, bad) or "false").lower()
        flags[name] = raw == "true"
        if raw not in ("true", "false"):
            bad.append((name, "must be true or false"))
    return flags, bad


def page_params(query: MultiMapping[str]) -> tuple[int, int, list[tuple[str, str]]]:
    """``pageNum`` and ``itemsPerPage``, defaults 1 and 100, and the violations.

    A violating parameter reads as its default, so that a caller can go on to
    collect every violation of a request.
    """
    bad: list[tuple[str, str]] = []
    page_num = _int_param(query, _PAGE_NUM, bad)
    size = _int_param(query, _ITEMS_PER_PAGE, bad)
    return (
        _PAGE_NUM.default if page_num is None else page_num,
        _ITEMS_PER_PAGE.default if size is None else size,
        bad,
    )


def page_num_of(query: MultiMapping[str]) -> int | None:
    """``pageNum`` of a list request (``1`` when absent), ``None`` when invalid."""
    return _int_param(query, _PAGE_NUM, [])


@attrs.frozen
class _IntRule:
    """A documented integer parameter: its name, default, upper bound and messages."""

    name: str
    default: int
    high: int
    too_low: str
    too_high: str


#: The contract sets no upper bound on pageNum; we take the largest 32-bit int
#: (our choice), which also keeps int() off thousands of digits (Python refuses).
PAGE_NUM_MAX: Final = 2**31 - 1
_PAGE_NUM: Final = _IntRule(
    "pageNum", 1, PAGE_NUM_MAX, "must be 1 or more", f"must be {PAGE_NUM_MAX} or less"
)
_ITEMS_PER_PAGE: Final = _IntRule(
    "itemsPerPage", 100, 500, "must be between 1 and 500", "must be between 1 and 500"
)


def _single(
    query: MultiMapping[str], name: str, bad: list[tuple[str, str]]
) -> str | None:
    """The value of a parameter given at most once; a repeat is a violation."""
    values = query.getall(name, [])
    if len(values) > 1:
        bad.append((name, _REPEATED))
        return None
    return values[0] if values else None


def _int_param(
    query: MultiMapping[str], rule: _IntRule, bad: list[tuple[str, str]]
) -> int | None:
    """The parameter's value (its default when absent), or ``None`` after a violation.

    Only ASCII digits count: ``int()`` would also take ``+5``, ``" 5"``, ``5_0``
    and the digits of other scripts, none of which Atlas documents.
    """
    values = query.getall(rule.name, [])
    if len(values) > 1:
        bad.append((rule.name, _REPEATED))
        return None
    if not values:
        return rule.default
    raw = values[0]
    if _NEGATIVE.fullmatch(raw) is not None:
        bad.append((rule.name, rule.too_low))
        return None
    if _DIGITS.fullmatch(raw) is None:
        bad.append((rule.name, "must be a whole number in ASCII digits (0-9)"))
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(rule.high)) or int(digits) > rule.high:
        bad.append((rule.name, rule.too_high))
        return None
    if int(digits) < 1:
        bad.append((rule.name, rule.too_low))
        return None
    return int(digits)


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

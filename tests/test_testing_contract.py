"""Every kind of FakeAtlas answer validates against the official OpenAPI file.

Each case sends one request and validates the body against the schema the
contract declares for that operation and status (and the declared media type),
or, for answers the contract does not list (406, 410, 405, envelope forms),
against the schema those bodies share.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from openapi_schema_validator import OAS30ReadValidator

from aiokeys.testing import FakeAtlas, Fault, RateLimit

SPEC = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "openapi"
    / "atlas-ai-model-api-keys.yaml"
)
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"{SPEC} is absent")

GA = "application/vnd.atlas.2025-03-12+json"
PREFIX = "/api/atlas/v2"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


def _validate(spec: dict[str, Any], schema: dict[str, Any], body: Any) -> None:
    """Validate a response body ($refs resolved inside the spec's components).

    The read validator is the one for responses: with the plain one, required
    ``readOnly`` properties (``results``) would not be checked at all.
    """
    OAS30ReadValidator({**schema, "components": spec["components"]}).validate(body)


def _component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _declared(
    spec: dict[str, Any], path: str, method: str, status: int
) -> tuple[str, dict[str, Any]]:
    """(media type, schema) the contract declares for an answer."""
    answer = spec["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    ((media, content),) = answer["content"].items()
    return media, content.get("schema", {})


@pytest.fixture
async def atlas() -> AsyncIterator[FakeAtlas]:
    async with FakeAtlas(
        retired_versions=("2023-01-01",), rate_limit=RateLimit(capacity=50, refill=1)
    ) as atlas:
        yield atlas


@pytest.fixture
async def world(atlas: FakeAtlas) -> AsyncIterator[dict[str, str]]:
    org_id = atlas.add_org()
    keys = atlas.seed_keys(org_id, 40, groups=2, seed=5)
    token = atlas.add_bearer_token()
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"}
    ) as http:
        _SESSIONS.append(http)
        yield {
            "org": org_id,
            "group": keys[0]["groupId"],
            "key": keys[0]["apiKeyId"],
            "url": atlas.url,
            "token": token,
        }
        _SESSIONS.pop()


_SESSIONS: list[aiohttp.ClientSession] = []


async def _send(
    world: dict[str, str],
    method: str,
    path: str,
    *,
    accept: str = GA,
    body: Any = None,
    auth: bool = True,
) -> tuple[int, str, Any]:
    http = _SESSIONS[-1]
    headers = {"Accept": accept}
    if not auth:
        headers["Authorization"] = "Bearer wrong"
    data = json.dumps(body).encode() if body is not None else None
    async with http.request(
        method, world["url"] + path, headers=headers, data=data
    ) as resp:
        raw = await resp.read()
        return resp.status, resp.content_type, json.loads(raw) if raw else None


LIST_ORG = PREFIX + "/orgs/{orgId}/aiModelApiKeys"
GET_ORG = PREFIX + "/orgs/{orgId}/aiModelApiKeys/{apiKeyId}"
LIST_GROUP = PREFIX + "/groups/{groupId}/aiModelApiKeys"
ONE_GROUP = PREFIX + "/groups/{groupId}/aiModelApiKeys/{apiKeyId}"
NEW_KEY = {"name": "contract key", "cloud": "ANY", "geography": "ANY"}

# (id, template, method, path builder, body, expected status)
CASES: list[tuple[str, str, str, Callable[[dict[str, str]], str], Any, int]] = [
    (
        "org list",
        LIST_ORG,
        "GET",
        lambda w: f"{PREFIX}/orgs/{w['org']}/aiModelApiKeys?itemsPerPage=7&pageNum=2",
        None,
        200,
    ),
    (
        "org list all",
        LIST_ORG,
        "GET",
        lambda w: f"{PREFIX}/orgs/{w['org']}/aiModelApiKeys?itemsPerPage=500",
        None,
        200,
    ),
    (
        "org list past end",
        LIST_ORG,
        "GET",
        lambda w: f"{PREFIX}/orgs/{w['org']}/aiModelApiKeys?pageNum=99",
        None,
        200,
    ),
    (
        "org get",
        GET_ORG,
        "GET",
        lambda w: f"{PREFIX}/orgs/{w['org']}/aiModelApiKeys/{w['key']}",
        None,
        200,
    ),
    (
        "group list",
        LIST_GROUP,
        "GET",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys?pretty=true",
        None,
        200,
    ),
    (
        "group get",
        ONE_GROUP,
        "GET",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys/{w['key']}",
        None,
        200,
    ),
    (
        "create",
        LIST_GROUP,
        "POST",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys",
        NEW_KEY,
        201,
    ),
    (
        "rename",
        ONE_GROUP,
        "PATCH",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys/{w['key']}",
        {"name": "renamed"},
        200,
    ),
    (
        "create invalid",
        LIST_GROUP,
        "POST",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys",
        {"name": ""},
        400,
    ),
    (
        "delete unknown",
        ONE_GROUP,
        "DELETE",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys/nokey",
        None,
        404,
    ),
    (
        "org unknown",
        LIST_ORG,
        "GET",
        lambda w: f"{PREFIX}/orgs/{'ab' * 12}/aiModelApiKeys",
        None,
        404,
    ),
    (
        "group unknown",
        LIST_GROUP,
        "GET",
        lambda w: f"{PREFIX}/groups/{'ab' * 12}/aiModelApiKeys",
        None,
        404,
    ),
    (
        "key unknown",
        GET_ORG,
        "GET",
        lambda w: f"{PREFIX}/orgs/{w['org']}/aiModelApiKeys/nokey",
        None,
        404,
    ),
    (
        "rename invalid",
        ONE_GROUP,
        "PATCH",
        lambda w: f"{PREFIX}/groups/{w['group']}/aiModelApiKeys/{w['key']}",
        {"name": 3},
        400,
    ),
]


@pytest.mark.parametrize(
    ("template", "method", "build", "body", "status"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_declared_answers_validate(
    spec: dict[str, Any],
    world: dict[str, str],
    template: str,
    method: str,
    build: Callable[[dict[str, str]], str],
    body: Any,
    status: int,
) -> None:
    """Success and error answers match the declared media type and schema."""
    got_status, media, payload = await _send(world, method, build(world), body=body)
    declared_media, schema = _declared(spec, template, method, status)
    assert (got_status, media) == (status, declared_media)
    _validate(spec, schema, payload)


async def test_delete_is_204_without_body(
    spec: dict[str, Any], world: dict[str, str]
) -> None:
    """Delete answers 204 and no content, as declared."""
    status, _, payload = await _send(
        world,
        "DELETE",
        f"{PREFIX}/groups/{world['group']}/aiModelApiKeys/{world['key']}",
    )
    assert "204" in spec["paths"][ONE_GROUP]["delete"]["responses"]
    assert (status, payload) == (204, None)


async def test_400_for_query_parameters_validates(
    spec: dict[str, Any], world: dict[str, str]
) -> None:
    """A 400 for itemsPerPage carries badRequestDetail valid as ApiError."""
    status, media, payload = await _send(
        world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys?itemsPerPage=0"
    )
    assert (status, media) == (400, "application/json")
    _validate(spec, _component("ApiError"), payload)
    assert payload["badRequestDetail"]["fields"][0]["field"] == "itemsPerPage"


Scenario = Callable[[FakeAtlas, dict[str, str]], Awaitable[tuple[int, str, Any]]]


async def _unauthorized(
    atlas: FakeAtlas, world: dict[str, str]
) -> tuple[int, str, Any]:
    return await _send(
        world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys", auth=False
    )


async def _forbidden(atlas: FakeAtlas, world: dict[str, str]) -> tuple[int, str, Any]:
    atlas.deny(world["token"], world["org"])
    return await _send(world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys")


async def _rate_limited(
    atlas: FakeAtlas, world: dict[str, str]
) -> tuple[int, str, Any]:
    for _ in range(50):
        await _send(world, "GET", f"{PREFIX}/groups/{world['group']}/aiModelApiKeys")
    return await _send(world, "GET", f"{PREFIX}/groups/{world['group']}/aiModelApiKeys")


async def _server_error(
    atlas: FakeAtlas, world: dict[str, str]
) -> tuple[int, str, Any]:
    atlas.add_fault(Fault(kind="status", status=500))
    return await _send(world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys")


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        (_unauthorized, 401),
        (_forbidden, 403),
        (_rate_limited, 429),
        (_server_error, 500),
    ],
    ids=["401", "403", "429", "500"],
)
async def test_declared_error_statuses_validate(
    spec: dict[str, Any],
    atlas: FakeAtlas,
    world: dict[str, str],
    scenario: Scenario,
    status: int,
) -> None:
    """401, 403, 429 and 500 answers match the contract's error responses."""
    got_status, media, payload = await scenario(atlas, world)
    declared_media, schema = _declared(
        spec, LIST_ORG if status != 429 else LIST_GROUP, "GET", status
    )
    assert (got_status, media) == (status, declared_media)
    _validate(spec, schema, payload)


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/vnd.atlas.2099-01-01+json", 406),
        ("application/vnd.atlas.2023-01-01+json", 410),
    ],
)
async def test_version_errors_are_api_errors(
    spec: dict[str, Any], world: dict[str, str], accept: str, status: int
) -> None:
    """406 and 410 (not in the contract) still use the ApiError schema."""
    got, media, payload = await _send(
        world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys", accept=accept
    )
    assert (got, media) == (status, "application/json")
    _validate(spec, _component("ApiError"), payload)


async def test_envelope_forms_validate(
    spec: dict[str, Any], world: dict[str, str]
) -> None:
    """Enveloped list, resource and error bodies keep valid shapes inside."""
    _, _, page = await _send(
        world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys?envelope=true"
    )
    _validate(spec, _component("PaginatedAtlasAiModelApiKeysResponse"), page)
    assert page["status"] == 200
    _, _, one = await _send(
        world,
        "GET",
        f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys/{world['key']}?envelope=true",
    )
    _validate(spec, _component("AiModelApiKeyResponse"), one["content"])
    assert one["status"] == 200
    _, _, error = await _send(
        world, "GET", f"{PREFIX}/orgs/{world['org']}/aiModelApiKeys/nokey?envelope=true"
    )
    _validate(spec, _component("ApiError"), error["content"])
    assert error["status"] == 404


async def test_validator_is_not_vacuous(spec: dict[str, Any]) -> None:
    """The validation used above does reject a wrong body."""
    with pytest.raises(Exception, match="required"):
        _validate(
            spec, _component("PaginatedAtlasAiModelApiKeysResponse"), {"links": []}
        )
    with pytest.raises(Exception, match="not of type"):
        _validate(spec, _component("ApiError"), {"error": "404", "errorCode": "X"})
    with pytest.raises(Exception, match="not of type"):
        _validate(
            spec,
            _component("PaginatedAtlasAiModelApiKeysResponse"),
            {"results": [{"lastUsedAt": 5}]},
        )

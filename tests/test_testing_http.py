"""FakeAtlas single-key operations, versions, envelope and pretty."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiokeys.testing import FakeAtlas

GA = "application/vnd.atlas.2025-03-12+json"
PREVIEW = "application/vnd.atlas.preview+json"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def atlas() -> AsyncIterator[FakeAtlas]:
    async with FakeAtlas(require_auth=False, retired_versions=("2023-01-01",)) as atlas:
        yield atlas


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    accept: str = GA,
    body: Any = None,
    raw: bytes | None = None,
) -> tuple[int, str, Any]:
    data = (
        raw
        if raw is not None
        else (json.dumps(body).encode() if body is not None else None)
    )
    headers = {"Accept": accept, "Content-Type": GA}
    async with http.request(method, url, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp.status, resp.content_type, json.loads(text) if text else None


def _base(atlas: FakeAtlas) -> str:
    return f"{atlas.url}/api/atlas/v2"


@pytest.mark.parametrize("accept", [GA, PREVIEW])
async def test_served_versions_answer_with_their_media_type(
    atlas: FakeAtlas, http: aiohttp.ClientSession, accept: str
) -> None:
    """2025-03-12 and preview are served, labelled with the version asked for."""
    org_id = atlas.add_org()
    status, ctype, _ = await _call(
        http, "GET", f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys", accept=accept
    )
    assert (status, ctype) == (200, accept)


@pytest.mark.parametrize(
    "accept",
    ["application/vnd.atlas.2099-01-01+json", "application/json", "*/*", ""],
)
async def test_unknown_or_missing_version_is_406(
    atlas: FakeAtlas, http: aiohttp.ClientSession, accept: str
) -> None:
    """Anything but a served versioned type is 406, as Atlas JSON."""
    org_id = atlas.add_org()
    status, ctype, body = await _call(
        http, "GET", f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys", accept=accept
    )
    assert (status, ctype, body["error"]) == (406, "application/json", 406)


async def test_retired_version_is_410_version_gone(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A configured retired version answers 410 VERSION_GONE."""
    org_id = atlas.add_org()
    url = f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys"
    status, _, body = await _call(
        http, "GET", url, accept="application/vnd.atlas.2023-01-01+json"
    )
    assert (status, body["errorCode"]) == (410, "VERSION_GONE")


@pytest.mark.parametrize(
    ("retired", "advice"),
    [(("2025-03-12",), "; use preview."), (("2025-03-12", "preview"), "retired.")],
)
async def test_retired_served_version_advises_only_a_live_one(
    http: aiohttp.ClientSession, retired: tuple[str, ...], advice: str
) -> None:
    """Retiring a served version makes it 410; the detail never advises a retired one."""
    async with FakeAtlas(require_auth=False, retired_versions=retired) as atlas:
        url = f"{_base(atlas)}/orgs/{atlas.add_org()}/aiModelApiKeys"
        status, _, body = await _call(http, "GET", url, accept=GA)
    assert (status, body["errorCode"]) == (410, "VERSION_GONE")
    assert body["detail"].endswith(advice)


async def test_unknown_version_advises_a_live_one(http: aiohttp.ClientSession) -> None:
    """A 406 never tells the client to send a version that is retired."""
    async with FakeAtlas(require_auth=False, retired_versions=("2025-03-12",)) as atlas:
        url = f"{_base(atlas)}/orgs/{atlas.add_org()}/aiModelApiKeys"
        accept = "application/vnd.atlas.2030-01-01+json"
        status, _, body = await _call(http, "GET", url, accept=accept)
    assert (status, body["errorCode"]) == (406, "INVALID_VERSION")
    assert "vnd.atlas.preview+json" in body["detail"]
    assert "2025-03-12" not in body["detail"]


async def test_version_among_several_accept_types(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """The versioned type is found in a list with parameters."""
    org_id = atlas.add_org()
    accept = f"application/json;q=0.5, {GA};charset=utf-8"
    status, ctype, _ = await _call(
        http, "GET", f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys", accept=accept
    )
    assert (status, ctype) == (200, GA)


async def test_get_key_from_org_and_group(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A key is found under its org and its project, with the listed fields."""
    org_id = atlas.add_org()
    key = atlas.seed_keys(org_id, 3)[1]
    expected = {name: value for name, value in key.items() if name != "secret"}
    for scope in (f"orgs/{org_id}", f"groups/{key['groupId']}"):
        status, _, body = await _call(
            http, "GET", f"{_base(atlas)}/{scope}/aiModelApiKeys/{key['apiKeyId']}"
        )
        assert (status, body) == (200, expected)


async def test_key_of_another_scope_is_404(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A key is not found under an org or project it does not belong to."""
    org_a, org_b = atlas.add_org(), atlas.add_org()
    key = atlas.seed_keys(org_a, 1)[0]
    other_group = atlas.add_group(org_b)
    for scope in (f"orgs/{org_b}", f"groups/{other_group}"):
        status, _, body = await _call(
            http, "GET", f"{_base(atlas)}/{scope}/aiModelApiKeys/{key['apiKeyId']}"
        )
        assert (status, body["errorCode"]) == (404, "RESOURCE_NOT_FOUND")


async def test_create_rename_delete_cycle(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Create answers 201 with the secret; rename keeps the position; delete is 204."""
    org_id = atlas.add_org()
    group_id = atlas.add_group(org_id)
    atlas.seed_keys(org_id, 2, groups=[group_id])
    url = f"{_base(atlas)}/groups/{group_id}/aiModelApiKeys"
    status, _, created = await _call(
        http, "POST", url, body={"name": "svc", "cloud": "ANY", "geography": "ANY"}
    )
    assert status == 201
    assert created["secret"].startswith("al-")
    assert created["maskedSecret"] == "al-****" + created["secret"][-4:]
    assert (created["name"], created["groupId"], created["status"]) == (
        "svc",
        group_id,
        "ACTIVE",
    )
    key_url = f"{url}/{created['apiKeyId']}"
    status, _, renamed = await _call(http, "PATCH", key_url, body={"name": "renamed"})
    assert (status, renamed["name"], "secret" in renamed) == (200, "renamed", False)
    assert atlas.keys(org_id)[-1]["name"] == "renamed"
    status, _, body = await _call(http, "DELETE", key_url)
    assert (status, body) == (204, None)
    assert created["apiKeyId"] not in atlas.key_ids(org_id)
    status, _, _ = await _call(http, "GET", key_url)
    assert status == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["cloud", "geography", "name"]),
        ({"name": "", "cloud": "ANY", "geography": "ANY"}, ["name"]),
        ({"name": "x" * 251, "cloud": "ANY", "geography": "ANY"}, ["name"]),
        ({"name": "ok", "cloud": "AWS", "geography": "ANY"}, ["cloud"]),
        ({"name": 5, "cloud": "ANY"}, ["geography", "name"]),
    ],
)
async def test_create_validation_names_fields(
    atlas: FakeAtlas,
    http: aiohttp.ClientSession,
    body: dict[str, Any],
    fields: list[str],
) -> None:
    """A bad create body is a 400 VALIDATION_ERROR naming every bad field."""
    group_id = atlas.add_group(atlas.add_org())
    status, _, answer = await _call(
        http, "POST", f"{_base(atlas)}/groups/{group_id}/aiModelApiKeys", body=body
    )
    assert (status, answer["errorCode"]) == (400, "VALIDATION_ERROR")
    assert sorted(f["field"] for f in answer["badRequestDetail"]["fields"]) == fields


async def test_create_with_invalid_json_is_400(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """A body that is not JSON is a 400, and nothing is created."""
    org_id = atlas.add_org()
    group_id = atlas.add_group(org_id)
    status, _, _ = await _call(
        http, "POST", f"{_base(atlas)}/groups/{group_id}/aiModelApiKeys", raw=b"{nope"
    )
    assert status == 400
    assert atlas.key_ids(org_id) == []


async def test_rename_validation_and_unknown_key(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """Rename needs a 1..250 char name; an unknown key is 404."""
    org_id = atlas.add_org()
    key = atlas.seed_keys(org_id, 1)[0]
    url = f"{_base(atlas)}/groups/{key['groupId']}/aiModelApiKeys"
    status, _, body = await _call(
        http, "PATCH", f"{url}/{key['apiKeyId']}", body={"name": ""}
    )
    assert (status, body["badRequestDetail"]["fields"][0]["field"]) == (400, "name")
    status, _, body = await _call(http, "PATCH", f"{url}/nosuchkey", body={"name": "n"})
    assert (status, body["errorCode"]) == (404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("POST", ""), ("DELETE", "/abc"), ("PATCH", "/abc"), ("PUT", "")],
)
async def test_org_level_is_read_only(
    atlas: FakeAtlas, http: aiohttp.ClientSession, method: str, suffix: str
) -> None:
    """Org paths only answer GET; other methods are an Atlas-shaped 405."""
    org_id = atlas.add_org()
    status, _, body = await _call(
        http, method, f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys{suffix}"
    )
    assert (status, body["error"]) == (405, 405)


async def test_envelope_list_gains_status(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """envelope=true on a list keeps its shape and adds "status": 200."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 3)
    status, _, body = await _call(
        http, "GET", f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys?envelope=true"
    )
    assert status == 200
    assert (body["status"], len(body["results"]), body["totalCount"]) == (200, 3, 3)


async def test_envelope_resource_wraps_content(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """envelope=true on one key answers {"status": 200, "content": key}."""
    org_id = atlas.add_org()
    key = atlas.seed_keys(org_id, 1)[0]
    url = f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys/{key['apiKeyId']}?envelope=true"
    status, _, body = await _call(http, "GET", url)
    assert (status, body["status"], body["content"]["apiKeyId"]) == (
        200,
        200,
        key["apiKeyId"],
    )


async def test_envelope_error_is_http_200(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """envelope=true on an error answers HTTP 200 with the error inside."""
    url = f"{_base(atlas)}/orgs/{'cd' * 12}/aiModelApiKeys?envelope=true"
    status, _, body = await _call(http, "GET", url)
    assert (status, body["status"], body["content"]["errorCode"]) == (
        200,
        404,
        "ORG_NOT_FOUND",
    )


async def test_envelope_create_and_delete(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """envelope=true: create reports 201 in the body, delete 204, both over HTTP 200."""
    group_id = atlas.add_group(atlas.add_org())
    url = f"{_base(atlas)}/groups/{group_id}/aiModelApiKeys"
    new = {"name": "n", "cloud": "ANY", "geography": "ANY"}
    status, _, body = await _call(http, "POST", f"{url}?envelope=true", body=new)
    assert (status, body["status"], body["content"]["name"]) == (200, 201, "n")
    status, _, body = await _call(
        http, "DELETE", f"{url}/{body['content']['apiKeyId']}?envelope=true"
    )
    assert (status, body) == (200, {"status": 204})


async def test_pretty_is_whitespace_only(
    atlas: FakeAtlas, http: aiohttp.ClientSession
) -> None:
    """pretty=true indents; the JSON value is identical to the compact one."""
    org_id = atlas.add_org()
    atlas.seed_keys(org_id, 2)
    url = f"{_base(atlas)}/orgs/{org_id}/aiModelApiKeys"
    async with http.get(url, headers={"Accept": GA}) as resp:
        compact = await resp.text()
    async with http.get(url + "?pretty=true", headers={"Accept": GA}) as resp:
        pretty = await resp.text()
    assert "\n" not in compact
    assert "\n  " in pretty
    plain, indented = json.loads(compact), json.loads(pretty)
    for body in (plain, indented):
        body.pop("links")
    assert plain == indented


async def test_pretty_error(atlas: FakeAtlas, http: aiohttp.ClientSession) -> None:
    """pretty=true applies to error bodies too."""
    async with http.get(
        f"{_base(atlas)}/orgs/{'ef' * 12}/aiModelApiKeys?pretty=true",
        headers={"Accept": GA},
    ) as resp:
        text = await resp.text()
    assert resp.status == 404
    assert "\n  " in text


def test_add_and_remove_key_helpers() -> None:
    """add_key appends a key with its secret; remove_key takes it away; unknown ids raise."""
    atlas = FakeAtlas()
    org_id = atlas.add_org()
    group_id = atlas.add_group(org_id)
    key = atlas.add_key(group_id, name="mine")
    assert key["secret"].startswith("al-")
    assert atlas.key_ids(group_id) == [key["apiKeyId"]] == atlas.key_ids(org_id)
    atlas.remove_key(key["apiKeyId"])
    assert atlas.key_ids(org_id) == []
    with pytest.raises(ValueError, match="unknown api_key_id"):
        atlas.remove_key(key["apiKeyId"])


@pytest.mark.parametrize("bad", ["short", "0123456789ABCDEF01234567"])
def test_add_org_refuses_malformed_ids(bad: str) -> None:
    """Ids given to add_org must be 24 lowercase hex, like Atlas'."""
    with pytest.raises(ValueError, match="24 lowercase hex"):
        FakeAtlas().add_org(bad)


def test_add_org_refuses_duplicates() -> None:
    """An id can only be used once."""
    atlas = FakeAtlas()
    org_id = atlas.add_org()
    with pytest.raises(ValueError, match="already in use"):
        atlas.add_org(org_id)

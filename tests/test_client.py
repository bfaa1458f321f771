"""The Client: validation before any request, sessions, single pages and keys."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

import aiokeys
from aiokeys import Client, InvalidArgumentError, NotFoundError, Page
from aiokeys._transport import Transport
from aiokeys.testing import FakeAtlas

GOOD_ID = "0123456789abcdef01234567"
TOKEN = "tok-3f9a-never-shown"


def _client(atlas: FakeAtlas, **kwargs: Any) -> Client:
    return Client(
        auth=aiokeys.BearerToken(atlas.add_bearer_token(TOKEN)),
        base_url=atlas.url,
        **kwargs,
    )


def test_public_names_sorted_and_exported() -> None:
    """KeyStream, Progress and the option aliases are public; __all__ stays sorted."""
    assert aiokeys.__all__ == sorted(aiokeys.__all__)
    public = {"Client", "KeyStream", "Progress", "OnDrift", "OnError"}
    assert public <= set(aiokeys.__all__)
    assert all(hasattr(aiokeys, name) for name in aiokeys.__all__)


@pytest.mark.parametrize("version", ["2025-03-12", "2024-10-23.upcoming", "preview"])
def test_api_versions_atlas_publishes_are_accepted(version: str) -> None:
    """Dated versions, their upcoming form and preview pass the check."""
    assert aiokeys.Client(auth=aiokeys.BearerToken("t"), api_version=version)


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"concurrency": 0}, "0"),
        ({"concurrency": True}, "True"),
        ({"concurrency": "8"}, "'8'"),
        ({"window": 0}, "0"),
        ({"timeout": -1}, "-1"),
        ({"timeout": float("nan")}, "nan"),
        ({"api_version": "2025/03"}, "'2025/03'"),
        ({"api_version": "garbage"}, "'garbage'"),
        ({"api_version": "2025-03-12+json"}, "'2025-03-12+json'"),
        ({"base_url": "ftp://cloud.mongodb.com"}, "ftp"),
        ({"base_url": None}, "NoneType"),
        ({"base_url": 123}, "int"),
        ({"allow_insecure_http": "yes"}, "'yes'"),
        ({"allow_insecure_http": 1}, "allow_insecure_http"),
        ({"envelope": "true"}, "'true'"),
        ({"base_url": "http://example.com"}, "example.com"),
        ({"retry": {"max_tries": 3}}, "max_tries"),
        ({"session": "not a session"}, "session"),
        ({"auth": 42}, "int"),
    ],
)
def test_client_arguments_validated(kwargs: dict[str, Any], shown: str) -> None:
    """A bad constructor argument raises InvalidArgumentError naming it (no loop needed)."""
    kwargs = {"auth": aiokeys.BearerToken("t"), **kwargs}
    with pytest.raises(InvalidArgumentError) as info:
        Client(**kwargs)
    assert isinstance(info.value, ValueError)
    assert shown in str(info.value)


async def test_closed_session_refused() -> None:
    """A closed session given as session= is refused at construction."""
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(InvalidArgumentError, match="session is closed"):
        Client(auth=aiokeys.BearerToken("t"), session=session)


async def test_timeout_with_given_session_refused() -> None:
    """timeout= configures the client's own session only."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidArgumentError, match="timeout"):
            Client(auth=aiokeys.BearerToken("t"), session=session, timeout=5)


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"page_size": 0}, "0"),
        ({"page_size": 501}, "501"),
        ({"page_size": 1.5}, "1.5"),
        ({"max_items": 0}, "0"),
        ({"max_items": False}, "False"),
        ({"start_page": 0}, "0"),
        ({"ordered": "yes"}, "'yes'"),
        ({"on_drift": "ignore"}, "'ignore'"),
        ({"on_drift": ["repair"]}, "['repair']"),
        ({"deadline": 0}, "0"),
        ({"deadline": "soon"}, "'soon'"),
    ],
)
async def test_listing_arguments_validated(
    fake_atlas: FakeAtlas, kwargs: dict[str, Any], shown: str
) -> None:
    """A bad listing option is refused at the call, before any request."""
    org = fake_atlas.add_org()
    async with _client(fake_atlas) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.org_keys(org, **kwargs)
        assert shown in str(info.value)
        with pytest.raises(InvalidArgumentError):
            client.group_keys(org, **kwargs)
    assert fake_atlas.requests == []


@pytest.mark.parametrize(
    "bad", ["", "ABCDEF0123456789abcdef01", "0123", GOOD_ID + "0", 12, None]
)
async def test_ids_validated(fake_atlas: FakeAtlas, bad: Any) -> None:
    """Org and project ids must be 24 lowercase hex digits; key ids must be plain."""
    async with _client(fake_atlas) as client:
        with pytest.raises(InvalidArgumentError, match="org_id"):
            client.org_keys(bad)
        with pytest.raises(InvalidArgumentError, match="group_id"):
            await client.group_keys_page(bad)
        with pytest.raises(InvalidArgumentError, match="org_id"):
            await client.get_org_key(bad, "abc")
        for bad_key in ("../../orgs", "..", ".", "a/b", "", "k" * 129):
            with pytest.raises(InvalidArgumentError, match="api_key_id"):
                await client.get_group_key(GOOD_ID, bad_key)
        with pytest.raises(InvalidArgumentError, match="page_num"):
            await client.org_keys_page(GOOD_ID, page_num=0)
    assert fake_atlas.requests == []


async def test_single_page(fake_atlas: FakeAtlas) -> None:
    """org_keys_page returns the page as requested, with the count and links."""
    org = fake_atlas.add_org()
    seeded = fake_atlas.seed_keys(org, 25, seed=1)
    async with _client(fake_atlas) as client:
        page = await client.org_keys_page(org, page_num=2, page_size=10)
    assert isinstance(page, Page)
    assert (page.page_num, page.page_size, page.total_count) == (2, 10, 25)
    assert [k.api_key_id for k in page.items] == [k["apiKeyId"] for k in seeded[10:20]]
    assert fake_atlas.requests[0].query == {"itemsPerPage": "10", "pageNum": "2"}


async def test_single_group_page_and_keys(fake_atlas: FakeAtlas) -> None:
    """A project's page and its keys, one by one, at both levels."""
    org = fake_atlas.add_org()
    group = fake_atlas.add_group(org)
    seeded = fake_atlas.seed_keys(org, 5, groups=[group], seed=2)
    async with _client(fake_atlas) as client:
        page = await client.group_keys_page(group)
        key_id = seeded[3]["apiKeyId"]
        by_group = await client.get_group_key(group, key_id)
        by_org = await client.get_org_key(org, key_id)
        with pytest.raises(NotFoundError):
            await client.get_org_key(org, "nosuchkey0000000000000000")
    assert len(page.items) == 5
    assert by_group == by_org == page.items[3]
    assert by_group.name == seeded[3]["name"]


async def test_own_session_closed_given_session_kept(fake_atlas: FakeAtlas) -> None:
    """The client closes the session it built, never one it was given."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 3, seed=1)
    client = _client(fake_atlas)
    await client.org_keys_page(org)
    own = client.transport
    assert isinstance(own, Transport)
    await client.aclose()
    await client.aclose()  # idempotent
    assert client._session is not None
    assert client._session.closed
    async with aiohttp.ClientSession() as session:
        async with _client(fake_atlas, session=session) as borrowed:
            await borrowed.org_keys_page(org)
        assert not session.closed


async def test_closed_client_refuses_work(fake_atlas: FakeAtlas) -> None:
    """After aclose, new listings and requests raise ClientClosedError."""
    client = _client(fake_atlas)
    await client.aclose()
    with pytest.raises(aiokeys.ClientClosedError, match="closed"):
        client.org_keys(GOOD_ID)
    with pytest.raises(aiokeys.ClientClosedError, match="closed"):
        await client.org_keys_page(GOOD_ID)
    with pytest.raises(aiokeys.ClientClosedError, match="closed"):
        await client.get_org_key(GOOD_ID, "abc")
    with pytest.raises(aiokeys.ClientClosedError, match="closed"):
        client.keys_for_orgs([GOOD_ID])
    with pytest.raises(aiokeys.ClientClosedError, match="closed"):
        async with client:
            pass
    assert fake_atlas.requests == []


def test_token_passed_as_auth_is_not_echoed() -> None:
    """A raw token given as auth by mistake does not appear in the error."""
    with pytest.raises(InvalidArgumentError) as info:
        Client(auth=TOKEN)  # type: ignore[arg-type]
    assert TOKEN not in str(info.value)
    assert "str" in str(info.value)


def test_repr_hides_the_token() -> None:
    """Neither the client's repr nor its attributes' reprs show the token."""
    client = Client(auth=aiokeys.BearerToken(TOKEN))
    assert TOKEN not in repr(client)
    assert "cloud.mongodb.com" in repr(client)
    assert client.converter is not None
    assert client.window == 2 * client.concurrency == 16


async def test_converter_is_per_client() -> None:
    """Each client builds its own converter."""
    one = Client(auth=aiokeys.BearerToken("a"))
    two = Client(auth=aiokeys.BearerToken("b"))
    assert one.converter is not two.converter
    await one.aclose()
    await two.aclose()


async def test_envelope_sent_and_unwrapped(fake_atlas: FakeAtlas) -> None:
    """envelope=True: every request says envelope=true; pages and keys unwrap."""
    org = fake_atlas.add_org()
    seeded = fake_atlas.seed_keys(org, 25, seed=2)
    async with _client(fake_atlas, envelope=True) as client:
        ids = [k.api_key_id async for k in client.org_keys(org, page_size=10)]
        key = await client.get_org_key(org, seeded[4]["apiKeyId"])
        with pytest.raises(aiokeys.NotFoundError) as info:
            await client.get_org_key(org, "nosuchkey")
    assert ids == [k["apiKeyId"] for k in seeded]
    assert key.name == seeded[4]["name"]
    assert info.value.status == 404
    assert fake_atlas.requests
    assert all(r.query.get("envelope") == "true" for r in fake_atlas.requests)
    # Enveloped errors travel as HTTP 200: the body's status decided.
    assert fake_atlas.requests[-1].status == 200


async def test_no_envelope_by_default(fake_atlas: FakeAtlas) -> None:
    """Without envelope=True no request carries the parameter."""
    org = fake_atlas.add_org()
    fake_atlas.seed_keys(org, 3, seed=2)
    async with _client(fake_atlas) as client:
        await client.org_keys_page(org)
    assert all("envelope" not in r.query for r in fake_atlas.requests)

"""Page and key decoding: the example page, bad bodies, refusals named as ours."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiokeys import ApiKey, UnexpectedResponseError
from aiokeys._decode import decode_key, decode_page
from aiokeys._models import make_converter

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
CONVERTER = make_converter()

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TIMESTAMPS = st.sampled_from(
    [
        "2026-01-15T16:47:49.855000+00:00",
        "2026-01-15T16:47:49Z",
        "2026-01-15T16:47:49",  # no offset: refused
        "yesterday",
        "2026-02-30T00:00:00Z",
    ]
)
FIELD_NAMES = [
    "apiKeyId",
    "name",
    "status",
    "createdAt",
    "createdBy",
    "lastUsedAt",
    "groupId",
    "maskedSecret",
    "secret",
    "cloud",
    "geography",
    "endpoint",
    "unknownField",
]
KEYS = st.dictionaries(
    st.sampled_from(FIELD_NAMES),
    st.none()
    | st.text(max_size=6)
    | TIMESTAMPS
    | st.integers()
    | st.booleans()
    | st.lists(st.text(), max_size=1),
)


def test_example_page_decodes_field_by_field() -> None:
    """The published list page decodes to exactly its values."""
    path = EXAMPLES / "list-page.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    page = decode_page(
        CONVERTER, json.loads(path.read_text()), page_num=1, page_size=100
    )
    assert page.total_count == 42
    assert page.page_num == 1
    assert page.page_size == 100
    assert [(link.rel, link.href) for link in page.links] == [
        ("self", "https://cloud.mongodb.com/api/atlas")
    ]
    (key,) = page.items
    assert key.api_key_id == "a86r5kwrfsk5r5ku5tgvhmpj"
    assert key.name == "Production key"
    assert key.status == "ACTIVE"
    assert key.created_at == datetime(2026, 1, 15, 16, 47, 49, 855000, tzinfo=UTC)
    assert key.last_used_at == key.created_at
    assert key.created_by == "Jane Roe"
    assert key.group_id == "69681d39c9e8cfd375386316"
    assert key.masked_secret == "al-****odu2"
    assert key.secret == "al-EXAMPLEexampleEXAMPLEexampleEXAMPLEexodu2"
    assert (key.cloud, key.geography, key.endpoint) == (None, None, None)


def test_bad_key_error_names_page_index_and_field() -> None:
    """A wrong type deep in a page: page number, item index and field in the message."""
    body = {"results": [{"name": "ok"}, {"name": "ok"}, {"name": 7}], "totalCount": 3}
    with pytest.raises(UnexpectedResponseError) as info:
        decode_page(CONVERTER, body, page_num=6, page_size=10)
    message = str(info.value)
    assert "page 6" in message
    assert "item 2" in message
    assert "name" in message
    assert isinstance(info.value.__cause__, cattrs.ClassValidationError)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "not an object"),
        ({"totalCount": 1}, "no results list"),
        ({"results": {}}, "no results list"),
        ({"results": [], "totalCount": "3"}, "totalCount"),
        ({"results": [], "totalCount": True}, "totalCount"),
        ({"results": [], "totalCount": -1}, "totalCount"),
        ({"results": [], "links": {}}, "links"),
        ({"results": [], "links": [{"rel": 1}]}, "links"),
        ({"results": [3]}, "item 0"),
        ({"results": [{}] * 11}, "11 results"),
    ],
)
def test_bad_bodies(body: Any, words: str) -> None:
    """Each malformed body is an UnexpectedResponseError saying what is wrong."""
    with pytest.raises(UnexpectedResponseError, match=words):
        decode_page(CONVERTER, body, page_num=2, page_size=10)


@given(
    body=JSON
    | st.fixed_dictionaries(
        {"results": st.lists(KEYS | JSON, max_size=5)},
        optional={"totalCount": JSON, "links": JSON},
    )
)
def test_any_body_decodes_or_raises_ours(body: Any) -> None:
    """Arbitrary JSON: a Page, or an aiokeys error, never anything else."""
    error: UnexpectedResponseError | None = None
    try:
        page = decode_page(CONVERTER, body, page_num=1, page_size=5)
    except UnexpectedResponseError as exc:  # anything else fails the test
        error = exc
    if error is not None:
        assert error.page_num == 1
        return
    assert len(page.items) == len(body["results"])


def _via_converter(raw: dict[str, Any]) -> ApiKey | None:
    try:
        return CONVERTER.structure(raw, ApiKey)
    except cattrs.ClassValidationError:
        return None


@given(raw=KEYS)
def test_decode_key_agrees_with_the_converter(raw: dict[str, Any]) -> None:
    """decode_key accepts what the strict converter does, and refuses as ours."""
    expected = _via_converter(raw)
    try:
        got = decode_key(CONVERTER, raw)
    except UnexpectedResponseError:
        assert expected is None
        return
    assert expected is not None
    assert got == expected
    assert got.secret == expected.secret
    assert repr(got) == repr(expected)

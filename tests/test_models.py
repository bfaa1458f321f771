"""ApiKey decoding through the client-owned cattrs converter."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cattrs
import pytest

from aiokeys import ApiKey
from aiokeys._models import make_converter

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"


def test_example_page_decodes_field_by_field() -> None:
    """The published list example decodes to exactly its values."""
    path = EXAMPLES / "list-page.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    raw = json.loads(path.read_text())["results"][0]
    key = make_converter().structure(raw, ApiKey)
    assert key.api_key_id == "a86r5kwrfsk5r5ku5tgvhmpj"
    assert key.name == "Production key"
    assert key.status == "ACTIVE"
    assert key.created_at == datetime(2026, 1, 15, 16, 47, 49, 855000, tzinfo=UTC)
    assert key.last_used_at == key.created_at
    assert key.created_by == "Jane Roe"
    assert key.group_id == "69681d39c9e8cfd375386316"
    assert key.masked_secret == "al-****odu2"
    assert key.secret == raw["secret"]
    assert key.cloud is None


def test_z_suffix_and_offset_are_the_same_instant() -> None:
    """`Z` and `+00:00` both decode to aware datetimes."""
    conv = make_converter()
    a = conv.structure({"createdAt": "2026-01-15T16:47:49Z"}, ApiKey)
    b = conv.structure({"createdAt": "2026-01-15T16:47:49+00:00"}, ApiKey)
    assert a.created_at == b.created_at
    assert a.created_at is not None
    assert a.created_at.tzinfo is not None


@pytest.mark.parametrize("bad", [123, True, ["x"], {"a": "b"}])
def test_name_must_be_a_string(bad: object) -> None:
    """The strict str hook refuses what cattrs would silently stringify."""
    with pytest.raises(cattrs.ClassValidationError):
        make_converter().structure({"name": bad}, ApiKey)


def test_secret_not_in_repr_nor_equality() -> None:
    """A listing with the secret equals one without; repr never shows it."""
    with_secret = ApiKey(api_key_id="k", secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(with_secret)
    assert with_secret == ApiKey(api_key_id="k")


def test_to_atlas_writes_every_field_and_the_secret_only_by_name() -> None:
    """to_atlas writes camelCase, nulls for absent fields, the secret only by name."""
    conv = make_converter()
    raw = {
        "apiKeyId": "abc",
        "createdAt": "2026-01-15T16:47:49.855000+00:00",
        "lastUsedAt": None,
        "secret": "s",
        "unknownField": 1,
    }
    key = conv.structure(raw, ApiKey)
    expected = {
        "apiKeyId": "abc",
        "name": None,
        "status": None,
        "createdAt": raw["createdAt"],
        "createdBy": None,
        "lastUsedAt": None,
        "groupId": None,
        "maskedSecret": None,
        "cloud": None,
        "geography": None,
        "endpoint": None,
    }
    assert key.to_atlas() == expected
    assert key.to_atlas(include_secret=True) == {**expected, "secret": "s"}


def test_to_atlas_keeps_atlas_timestamp_precision() -> None:
    """A whole second still carries six fraction digits, as Atlas writes it."""
    stamp = "2025-08-06T17:58:45.000000+00:00"
    key = make_converter().structure({"createdAt": stamp}, ApiKey)
    assert key.to_atlas()["createdAt"] == stamp
    zulu = make_converter().structure({"createdAt": "2025-08-06T17:58:45Z"}, ApiKey)
    assert zulu.to_atlas()["createdAt"] == stamp

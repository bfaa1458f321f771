"""The simulator's pure pieces: parsers, token bucket, seeding template, log helpers."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from aiokeys.testing import RateLimit
from aiokeys.testing._app import requested_version
from aiokeys.testing._digest import parse_digest
from aiokeys.testing._log import DOCUMENTED_PARAMS, redact_query, scheme_of
from aiokeys.testing._ratelimit import TokenBucket
from aiokeys.testing._routes import page_num_of, page_params, parse_flags
from aiokeys.testing._seed import fake_keys
from aiokeys.testing._store import Store


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_takes_refills_and_caps() -> None:
    """Capacity bounds bursts; refill is pro rata; the wait is exact."""
    clock = _Clock()
    bucket = TokenBucket(
        limit=RateLimit(capacity=3, refill=6, period=60.0), clock=clock
    )
    assert [bucket.take() for _ in range(3)] == [None, None, None]
    assert bucket.take() == pytest.approx(10.0)
    clock.now += 5.0
    assert bucket.remaining == 0
    clock.now += 5.0
    assert bucket.take() is None
    clock.now += 10_000
    bucket.take()
    assert bucket.remaining == 2


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan")])
@pytest.mark.parametrize("field", ["capacity", "refill", "period"])
def test_rate_limit_must_be_positive(field: str, value: float) -> None:
    """A capacity, refill or period that is not a finite number > 0 is refused, named."""
    settings: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        RateLimit(**settings)


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        ("application/vnd.atlas.2025-03-12+json", "2025-03-12"),
        ("application/vnd.atlas.preview+json", "preview"),
        ("text/html, application/vnd.atlas.2025-03-12+json;q=0.9", "2025-03-12"),
        ("APPLICATION/VND.ATLAS.PREVIEW+JSON", "preview"),
        ("application/json", None),
        ("", None),
    ],
)
def test_requested_version(accept: str, version: str | None) -> None:
    """The version is read from the first versioned Atlas media type."""
    assert requested_version(accept) == version


@given(
    params=st.dictionaries(
        st.sampled_from(["username", "realm", "nonce", "uri", "cnonce", "opaque"]),
        st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30
        ),
    )
)
def test_parse_digest_round_trips_quoted_values(params: dict[str, str]) -> None:
    """Quoted-string values with quotes and backslashes parse back exactly."""
    quoted = ", ".join(
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in params.items()
    )
    assert parse_digest(f"Digest {quoted}, nc=00000001, qop=auth") == {
        **params,
        "nc": "00000001",
        "qop": "auth",
    }


def test_parse_digest_refuses_other_schemes() -> None:
    """Only the Digest scheme is parsed."""
    assert parse_digest("Basic dXNlcjpwYXNz") is None


def _param_values() -> st.SearchStrategy[list[str]]:
    """0, 1 or 2 values: numbers small and huge, signs, spaces, other scripts' digits."""
    numbers = st.integers(-5, 10**25).map(str)
    odd = st.sampled_from(["+5", " 5", "5 ", "5_0", "٣", "²", "５", "1.0", "", "-0"])
    value = st.one_of(numbers, odd, st.text(max_size=4))
    return st.lists(value, max_size=2)


def _expected(values: list[str], high: int, default: int) -> tuple[bool, int]:
    """The oracle: (valid, value used) for one parameter's values."""
    if not values:
        return True, default
    if len(values) == 1:
        raw = values[0]
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= high:
            return True, int(raw)
    return False, default


@given(size=_param_values(), page=_param_values())
def test_page_params_accept_exactly_the_documented_ranges(
    size: list[str], page: list[str]
) -> None:
    """itemsPerPage 1..500, pageNum 1..2**31-1, given once in ASCII digits; all else named."""
    query = MultiDict(
        [("itemsPerPage", v) for v in size] + [("pageNum", v) for v in page]
    )
    page_num, per_page, bad = page_params(query)
    named = [field for field, _ in bad]
    size_ok, size_used = _expected(size, 500, 100)
    page_ok, page_used = _expected(page, 2**31 - 1, 1)
    assert named.count("itemsPerPage") == (0 if size_ok else 1)
    assert named.count("pageNum") == (0 if page_ok else 1)
    assert (page_num, per_page) == (page_used, size_used)
    assert page_num_of(query) == (page_used if page_ok else None)


@pytest.mark.parametrize(
    ("query", "field", "description"),
    [
        ("itemsPerPage=0", "itemsPerPage", "must be between 1 and 500"),
        ("itemsPerPage=501", "itemsPerPage", "must be between 1 and 500"),
        ("itemsPerPage=" + "9" * 30, "itemsPerPage", "must be between 1 and 500"),
        ("itemsPerPage=-7", "itemsPerPage", "must be between 1 and 500"),
        ("pageNum=0", "pageNum", "must be 1 or more"),
        ("pageNum=-3", "pageNum", "must be 1 or more"),
        ("pageNum=99999999999999999999999", "pageNum", "must be 2147483647 or less"),
        ("pageNum=" + "9" * 5000, "pageNum", "must be 2147483647 or less"),
        ("pageNum=%2B5", "pageNum", "must be a whole number in ASCII digits (0-9)"),
        ("pageNum=%D9%A3", "pageNum", "must be a whole number in ASCII digits (0-9)"),
        ("pageNum=1&pageNum=2", "pageNum", "must be given only once"),
        ("itemsPerPage=5&itemsPerPage=5", "itemsPerPage", "must be given only once"),
    ],
)
def test_page_params_messages(query: str, field: str, description: str) -> None:
    """Each violation gets its own message: range, form or repeat."""
    parsed = MultiDict(parse_qsl(query, keep_blank_values=True))
    assert page_params(parsed)[2] == [(field, description)]


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        ("envelope=true&envelope=true", [("envelope", "must be given only once")]),
        ("pretty=yes", [("pretty", "must be true or false")]),
        ("envelope=TRUE&pretty=false", []),
    ],
)
def test_parse_flags_refuses_repeats(query: str, bad: list[tuple[str, str]]) -> None:
    """A flag given twice is a violation and off, even when both say true."""
    flags, found = parse_flags(MultiDict(parse_qsl(query)))
    assert found == bad
    assert flags["envelope"] is (not bad)


def test_template_json_equals_json_dumps() -> None:
    """The hand-written JSON of seeded keys is exactly json.dumps of the key."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    made = fake_keys(
        random.Random(4), ["a" * 24, "b" * 24], start, 2000, set(), 86400.0
    )
    for key_id, group_id, created, body, record in made:
        assert record is not None
        assert (key_id, group_id, created) == (
            record["apiKeyId"],
            record["groupId"],
            record["createdAt"],
        )
        public = {name: value for name, value in record.items() if name != "secret"}
        assert body == json.dumps(public, separators=(",", ":")).encode()
        assert (
            datetime.fromisoformat(created).isoformat(timespec="microseconds")
            == created
        )


def test_seeding_without_records_stores_the_same_keys() -> None:
    """records=False (the standalone's bulk load) stores exactly what records=True does."""
    with_dicts, without = Store(), Store()
    for store in (with_dicts, without):
        store.add_org("0123456789abcdef01234567")
    returned = with_dicts.seed("0123456789abcdef01234567", 300, 3, 7)
    assert without.seed("0123456789abcdef01234567", 300, 3, 7, records=False) == []
    assert [k.body for k in with_dicts.keys.values()] == [
        k.body for k in without.keys.values()
    ]
    assert [r["apiKeyId"] for r in returned] == list(without.keys)


@pytest.mark.parametrize(
    ("authorization", "scheme"),
    [
        ("Digest x", "Digest"),
        ("bearer y", "Bearer"),
        ("BASIC z", "Basic"),
        ("Bearer", "Bearer"),
        ("rawtokensecret9", "Other"),
        ("Token abc", "Other"),
        ("Bearerx y", "Other"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_scheme_of(authorization: str | None, scheme: str | None) -> None:
    """Three schemes by name, any other value as "Other", absent or blank as None."""
    assert scheme_of(authorization) == scheme


@given(st.text())
def test_scheme_of_never_echoes_the_value(authorization: str) -> None:
    """Whatever the header holds, the log gets one of five fixed answers."""
    assert scheme_of(authorization) in {"Digest", "Bearer", "Basic", "Other", None}


def test_redaction_keeps_only_documented_values() -> None:
    """Documented parameters keep their values; any other name gets "***"."""
    documented = {
        "itemsPerPage": "5",
        "pageNum": "2",
        "envelope": "true",
        "pretty": "false",
        "includeCount": "true",
    }
    others = {"token": "t", "sig": "s", "x": "", "PageNum": "3"}
    assert redact_query(documented | others) == documented | dict.fromkeys(
        others, "***"
    )


@given(st.dictionaries(st.text(), st.text()))
def test_redaction_blanks_every_undocumented_value(query: dict[str, str]) -> None:
    """Any query: same names, and no value survives under an undocumented name."""
    logged = redact_query(query)
    assert list(logged) == list(query)
    for name, value in logged.items():
        assert value == (query[name] if name in DOCUMENTED_PARAMS else "***")


def test_public_names() -> None:
    """aiokeys.testing exports exactly its documented names, sorted."""
    import aiokeys.testing as testing

    assert testing.__all__ == sorted(testing.__all__)
    assert set(testing.__all__) == {
        "FakeAtlas",
        "Fault",
        "FaultKind",
        "LoggedRequest",
        "RateLimit",
    }
    for name in testing.__all__:
        assert getattr(testing, name).__doc__ or name == "FaultKind"

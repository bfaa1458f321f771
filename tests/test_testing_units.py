"""The simulator's pure pieces: parsers, token bucket, seeding template, log helpers."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiokeys.testing import RateLimit
from aiokeys.testing._app import requested_version
from aiokeys.testing._digest import parse_digest
from aiokeys.testing._log import DOCUMENTED_PARAMS, redact_query, scheme_of
from aiokeys.testing._ratelimit import TokenBucket
from aiokeys.testing._routes import page_params
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


@pytest.mark.parametrize("field", ["capacity", "refill", "period"])
def test_rate_limit_must_be_positive(field: str) -> None:
    """A zero capacity, refill or period is refused, naming the field."""
    with pytest.raises(ValueError, match=field):
        RateLimit(**{field: 0})


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


@given(
    size=st.one_of(st.none(), st.integers(-5, 600).map(str), st.text(max_size=4)),
    page=st.one_of(st.none(), st.integers(-5, 10**6).map(str), st.text(max_size=4)),
)
def test_page_params_accept_exactly_the_documented_ranges(
    size: str | None, page: str | None
) -> None:
    """itemsPerPage in 1..500, pageNum >= 1, defaults 100 and 1; all else named."""
    query = {
        name: value
        for name, value in (("itemsPerPage", size), ("pageNum", page))
        if value is not None
    }
    page_num, per_page, bad = page_params(query)
    named = {field for field, _ in bad}

    def valid(raw: str | None, low: int, high: int | None) -> bool:
        if raw is None:
            return True
        try:
            value = int(raw)
        except ValueError:
            return False
        return (
            raw.strip() == raw
            and "_" not in raw
            and low <= value
            and (high is None or value <= high)
        )

    assert ("itemsPerPage" not in named) == valid(size, 1, 500)
    assert ("pageNum" not in named) == valid(page, 1, None)
    assert per_page == (
        int(size) if size is not None and "itemsPerPage" not in named else 100
    )
    assert page_num == (int(page) if page is not None and "pageNum" not in named else 1)


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

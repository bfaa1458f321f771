"""The export writers and the all-or-nothing output file."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiokeys import ApiKey
from aiokeys._models import make_converter
from aiokeys._output import CSV_COLUMNS, atomic_output, export_record, make_writer

ORG = "0123456789abcdef01234567"
KEYS = [
    ApiKey(
        api_key_id=f"key{n:021d}",
        name=f'name, with "quotes" and ünïcode {n}',
        status="ACTIVE",
        created_at=datetime(2026, 1, n + 1, 12, 0, tzinfo=UTC),
        last_used_at=None if n % 2 else datetime(2026, 2, 1, tzinfo=UTC),
        group_id="abcdefabcdefabcdefabcdef",
        masked_secret="al-****abcd",
        secret=f"al-secret-{n}",
    )
    for n in range(3)
]


def _write(fmt: str, keys: list[ApiKey], *, include_secret: bool = False) -> str:
    out = io.StringIO()
    writer = make_writer(fmt, out, include_secret=include_secret)  # type: ignore[arg-type]
    for key in keys:
        writer.write(export_record(ORG, key, include_secret=include_secret))
    writer.finish()
    return out.getvalue()


def _decode(record: dict[str, object]) -> ApiKey:
    fields = {k: v for k, v in record.items() if k != "orgId" and v != ""}
    return make_converter().structure(fields, ApiKey)


def test_export_record_puts_org_first_and_leaves_secret_out() -> None:
    """The record is Atlas' camelCase with orgId first, no secret by default."""
    record = export_record(ORG, KEYS[0])
    assert next(iter(record)) == "orgId"
    assert record["apiKeyId"] == KEYS[0].api_key_id
    assert "secret" not in record
    assert export_record(ORG, KEYS[0], include_secret=True)["secret"] == "al-secret-0"
    assert "orgId" not in export_record(None, KEYS[0])


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_each_format_reads_back_to_the_same_keys(fmt: str) -> None:
    """What is written decodes back to equal keys, in order, with orgId."""
    text = _write(fmt, KEYS)
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    elif fmt == "json":
        records = json.loads(text)
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    assert [r["orgId"] for r in records] == [ORG] * 3
    assert [_decode(r) for r in records] == KEYS
    assert "al-secret" not in text


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_empty_export_is_still_a_valid_document(fmt: str) -> None:
    """No keys: JSON is [], CSV is a header, JSONL is empty."""
    text = _write(fmt, [])
    expected = {"jsonl": "", "json": "[]\n", "csv": ",".join(CSV_COLUMNS) + "\r\n"}
    assert text == expected[fmt]


def test_csv_secret_column_only_on_request() -> None:
    """--include-secrets adds a secret column holding the secrets."""
    rows = list(csv.DictReader(io.StringIO(_write("csv", KEYS, include_secret=True))))
    assert [row["secret"] for row in rows] == [
        "al-secret-0",
        "al-secret-1",
        "al-secret-2",
    ]


def test_json_array_is_written_incrementally() -> None:
    """Each record is on the stream as soon as it is written, before finish()."""
    out = io.StringIO()
    writer = make_writer("json", out, include_secret=False)
    writer.write(export_record(ORG, KEYS[0]))
    assert KEYS[0].api_key_id is not None
    assert KEYS[0].api_key_id in out.getvalue()
    assert not out.getvalue().rstrip().endswith("]")


def test_atomic_output_renames_on_success(tmp_path: Path) -> None:
    """The target appears only at the end, with no temporary file left."""
    target = tmp_path / "keys.jsonl"
    with atomic_output(target, private=False) as stream:
        stream.write("partial")
        assert not target.exists()
        assert len(list(tmp_path.iterdir())) == 1
    assert target.read_text() == "partial"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_output_leaves_nothing_on_failure(
    tmp_path: Path, error: BaseException
) -> None:
    """An exception mid-write removes the temporary file and keeps the old target."""
    target = tmp_path / "keys.csv"
    target.write_text("previous export")

    def write_then_fail() -> None:
        with atomic_output(target, private=False) as stream:
            stream.write("half a row")
            raise error

    with pytest.raises(type(error)):
        write_then_fail()
    assert target.read_text() == "previous export"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_output_private_mode(tmp_path: Path) -> None:
    """An export with secrets is readable by its owner only."""
    target = tmp_path / "secrets.jsonl"
    with atomic_output(target, private=True) as stream:
        stream.write("{}\n")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


@pytest.mark.parametrize("where", ["missing/dir/keys.jsonl", "a-directory"])
def test_atomic_output_failure_names_the_target(tmp_path: Path, where: str) -> None:
    """Cannot create or cannot rename: the error names the target, nothing is left."""
    (tmp_path / "a-directory").mkdir()
    target = tmp_path / where

    def write() -> None:
        with atomic_output(target, private=False) as stream:
            stream.write("x")

    with pytest.raises(OSError, match=r"keys\.jsonl|a-directory") as info:
        write()
    assert info.value.filename == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-directory"]


_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
_moment = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)
_keys = st.builds(
    ApiKey,
    api_key_id=_text,
    name=st.none() | _text,
    status=st.none() | _text,
    created_at=st.none() | _moment,
    created_by=st.none() | _text,
    last_used_at=st.none() | _moment,
    masked_secret=st.none() | _text,
)


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_keys, max_size=4), fmt=st.sampled_from(["jsonl", "json", "csv"]))
def test_any_text_round_trips(keys: list[ApiKey], fmt: str) -> None:
    """Commas, quotes, line breaks and any Unicode survive every format."""
    text = _write(fmt, keys)
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    elif fmt == "json":
        records = json.loads(text)
    else:
        records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [_decode(r) for r in records] == keys

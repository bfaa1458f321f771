"""The export writers and the all-or-nothing output file."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiokeys import ApiKey
from aiokeys._models import make_converter
from aiokeys._output import (
    CSV_COLUMNS,
    _written_straight,
    atomic_output,
    defuse_cell,
    export_record,
    make_writer,
    printable,
)

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


def _write(
    fmt: str, keys: list[ApiKey], *, include_secret: bool = False, csv_raw: bool = False
) -> str:
    out = io.StringIO()
    writer = make_writer(fmt, out, include_secret=include_secret, csv_raw=csv_raw)  # type: ignore[arg-type]
    for key in keys:
        writer.write(export_record(ORG, key, include_secret=include_secret))
    writer.finish()
    return out.getvalue()


def _decode(record: dict[str, object]) -> ApiKey:
    fields = {k: v for k, v in record.items() if k != "orgId" and v != ""}
    return make_converter().structure(fields, ApiKey)


def _undefuse(cell: str) -> str:
    """What a reader does to get Atlas' text back from a defused CSV cell."""
    return cell[1:] if cell.startswith("'") else cell


def test_export_record_puts_org_first_and_leaves_secret_out() -> None:
    """The record is Atlas' camelCase with orgId first, no secret by default."""
    record = export_record(ORG, KEYS[0])
    assert next(iter(record)) == "orgId"
    assert record["apiKeyId"] == KEYS[0].api_key_id
    assert "secret" not in record
    assert export_record(ORG, KEYS[0], include_secret=True)["secret"] == "al-secret-0"
    assert export_record(None, KEYS[0])["orgId"] is None


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


def test_atomic_output_writes_through_a_symlink(tmp_path: Path) -> None:
    """A link stays a link: its target is replaced, the temporary file is beside it."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.jsonl"
    target.write_text("old")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with atomic_output(link, private=False) as stream:
        stream.write("new")
        assert [p.name for p in (tmp_path / "real").iterdir() if p != target]
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "link.jsonl",
        "real",
        "target.jsonl",
    ]


def test_atomic_output_creates_the_target_of_a_dangling_symlink(
    tmp_path: Path,
) -> None:
    """A link to a file not there yet: the file is created, the link kept."""
    link = tmp_path / "link.csv"
    link.symlink_to("made.csv")
    with atomic_output(link, private=True) as stream:
        stream.write("a,b\r\n")
    assert link.is_symlink()
    assert (tmp_path / "made.csv").read_text() == "a,b\n"
    assert stat.S_IMODE(os.stat(tmp_path / "made.csv").st_mode) == 0o600


def test_atomic_output_writes_a_fifo_straight(tmp_path: Path) -> None:
    """A FIFO is written, not replaced by a plain file."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # A reader first, so that opening for writing does not wait for one.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with atomic_output(fifo, private=False) as stream:
            stream.write("through the pipe\n")
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert os.read(reader, 1000) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert list(tmp_path.iterdir()) == [fifo]


def test_atomic_output_leaves_what_went_down_a_fifo(tmp_path: Path) -> None:
    """A failure while writing a FIFO raises; the FIFO is still a FIFO."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as pipe:
            got.append(pipe.read())

    def write_then_fail() -> None:
        with atomic_output(fifo, private=False) as stream:
            stream.write("half")
            raise RuntimeError("boom")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        with pytest.raises(RuntimeError):
            write_then_fail()
    finally:
        thread.join(10)
    assert got == [b"half"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize(
    ("path", "straight"),
    [
        ("/dev/null", True),  # only stat-ed here: a character device
        ("/dev/stdout", True),
        ("/dev/fd/1", True),
        ("/proc/self/fd/2", True),
        ("keys.jsonl", False),
    ],
)
def test_which_targets_are_written_straight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, straight: bool
) -> None:
    """Devices and descriptor names are written straight; a regular file is not."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys.jsonl").write_text("")
    assert _written_straight(Path(path)) is straight


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
        rows = csv.DictReader(io.StringIO(text, newline=""))
        records = [{k: _undefuse(v) for k, v in row.items()} for row in rows]
    assert [_decode(r) for r in records] == keys


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_keys, max_size=4))
def test_raw_csv_round_trips_without_undoing(keys: list[ApiKey]) -> None:
    """--csv-raw: every cell is exactly Atlas' text."""
    text = _write("csv", keys, csv_raw=True)
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [_decode(r) for r in records] == keys


# -- CSV formulas -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ['=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "'=1"],
)
def test_csv_cell_that_a_spreadsheet_would_run_gets_a_quote(name: str) -> None:
    """A cell starting with = + - @ tab CR (or ') is written with ' in front."""
    key = attrs.evolve(KEYS[0], name=name)
    [row] = csv.DictReader(io.StringIO(_write("csv", [key]), newline=""))
    assert row["name"] == "'" + name
    [raw] = csv.DictReader(io.StringIO(_write("csv", [key], csv_raw=True), newline=""))
    assert raw["name"] == name


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_formats_are_never_defused(fmt: str) -> None:
    """Only CSV goes to spreadsheets: JSON keeps the name as it is."""
    key = attrs.evolve(KEYS[0], name="=1+1")
    assert '"=1+1"' in _write(fmt, [key])


@given(text=st.text())
def test_defusing_is_undone_by_dropping_one_quote(text: str) -> None:
    """Defused text never starts with a formula character and is recoverable."""
    cell = defuse_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert _undefuse(cell) == text


def test_plain_cells_are_not_defused() -> None:
    """Names, dates and ids that start otherwise are left alone."""
    for value in ("prod key", "2026-01-01T00:00:00Z", "a=b", " =x", None, 3):
        assert defuse_cell(value) == value


# -- terminal text ----------------------------------------------------------------


def test_printable_escapes_every_control_character() -> None:
    """C0 (tab and line breaks too), DEL and C1 become escapes spelled as repr does."""
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert printable("\t\n\r\x00\x7f\x9b\x85") == "\\t\\n\\r\\x00\\x7f\\x9b\\x85"
    assert printable("ünï 名前 🔑 \xa0") == "ünï 名前 🔑 \xa0"


@given(text=st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    """Whatever the text, the result has no C0, DEL or C1 character."""
    out = printable(text)
    assert not [c for c in out if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]
    if out == text:
        assert not [c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]


def test_abandoned_json_array_ends_its_line_and_stays_invalid() -> None:
    """A JSON export cut short ends with a line break but is not valid JSON."""
    out = io.StringIO()
    writer = make_writer("json", out, include_secret=False)
    writer.write(export_record(ORG, KEYS[0]))
    writer.abandon()
    assert out.getvalue().endswith("}\n")
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.getvalue())

"""Streaming writers for exported keys, and the file that appears only when complete.

Three formats, each written record by record so that memory stays flat however
many keys an export holds:

- ``jsonl``: one JSON object per line (JSON Lines); JSON is written as
  ASCII (other characters as ``\\u`` escapes), so no character of a key's
  name can look like a line break to a line-based tool, whatever the
  terminal's encoding;
- ``csv``: a header line, then one row per key, columns in :data:`CSV_COLUMNS`,
  lines ended by CRLF as RFC 4180 says (which also makes Python's writer
  quote a field holding a lone CR); an absent field and an empty string are
  both an empty cell;
- ``json``: one JSON array, opened before the first record and closed after the
  last, never held in memory as a whole.

A record is a key in Atlas' own camelCase shape (:meth:`ApiKey.to_atlas`) with
``orgId`` in front. :func:`atomic_output` writes to a temporary file in the
target's directory and renames it over the target only once everything is
written, so an interrupted export leaves no truncated file that looks complete.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TextIO

from ._models import ApiKey

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "Format",
    "RecordWriter",
    "atomic_output",
    "export_record",
    "make_writer",
]

Format = Literal["jsonl", "csv", "json"]
FORMATS: Final[tuple[Format, ...]] = ("jsonl", "csv", "json")

# Atlas' field names, in the order Atlas documents them, after our own orgId.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "orgId",
    "apiKeyId",
    "name",
    "status",
    "createdAt",
    "createdBy",
    "lastUsedAt",
    "groupId",
    "maskedSecret",
    "cloud",
    "geography",
    "endpoint",
)


def export_record(
    org_id: str | None, key: ApiKey, *, include_secret: bool = False
) -> dict[str, Any]:
    """Return ``key`` as an Atlas-shaped record with ``orgId`` first.

    ``org_id`` is ``None`` for keys listed by project, whose org is not known
    from the listing; the field is then left out, as :meth:`ApiKey.to_atlas`
    leaves out every absent field. The secret is written only on request.
    """
    record: dict[str, Any] = {} if org_id is None else {"orgId": org_id}
    record.update(key.to_atlas(include_secret=include_secret))
    return record


class RecordWriter(Protocol):
    """Writes records one at a time; :meth:`finish` completes the document."""

    def write(self, record: Mapping[str, Any]) -> None: ...

    def finish(self) -> None: ...


class _JsonLinesWriter:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write(json.dumps(record) + "\n")

    def finish(self) -> None:
        self._stream.flush()


class _JsonArrayWriter:
    """A JSON array written element by element: ``[``, records, ``]``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        separator = "[\n" if self._count == 0 else ",\n"
        self._stream.write(separator + json.dumps(record))
        self._count += 1

    def finish(self) -> None:
        # An unfinished array is not valid JSON: a reader of a cut-short stdout
        # sees the damage instead of a plausible, shorter export.
        self._stream.write("[]\n" if self._count == 0 else "\n]\n")
        self._stream.flush()


class _CsvWriter:
    def __init__(self, stream: TextIO, *, include_secret: bool) -> None:
        columns = (*CSV_COLUMNS, "secret") if include_secret else CSV_COLUMNS
        self._writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        self._stream = stream
        self._writer.writeheader()

    def write(self, record: Mapping[str, Any]) -> None:
        self._writer.writerow(record)

    def finish(self) -> None:
        self._stream.flush()


def make_writer(fmt: Format, stream: TextIO, *, include_secret: bool) -> RecordWriter:
    """Return the writer for ``fmt`` on ``stream`` (CSV writes its header now).

    ``include_secret`` only decides whether CSV has a ``secret`` column; the
    records themselves decide what is written.
    """
    if fmt == "jsonl":
        return _JsonLinesWriter(stream)
    if fmt == "json":
        return _JsonArrayWriter(stream)
    return _CsvWriter(stream, include_secret=include_secret)


@contextlib.contextmanager
def atomic_output(path: Path, *, private: bool) -> Iterator[TextIO]:
    """Open a temporary file beside ``path``; rename it to ``path`` on success.

    The temporary file is ``.NAME.RANDOM.part`` in the same directory (a rename
    across file systems would not be atomic). It is flushed and synced before
    the rename. If the block raises anything, cancellation and
    ``KeyboardInterrupt`` included, the temporary file is removed and ``path``
    is left as it was.

    Args:
        path: The file to create or replace.
        private: Create the file with mode 0600 (for exports carrying
            secrets) instead of 0666 less the umask.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    mode = 0o600 if private else 0o666
    with _naming(path):
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        with _naming(path):
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Report a failure on the temporary file under the name the user gave."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc

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
  both an empty cell. A spreadsheet runs a cell that starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a CR as a formula, and a key's name is
  anyone's text: such a cell is written with a ``'`` in front, as OWASP
  advises ("CSV injection"). A cell that starts with ``'`` gets one more, so
  removing one leading ``'`` from every cell that has one gives back exactly
  what Atlas sent. ``csv_raw=True`` writes every cell as it is;
- ``json``: one JSON array, opened before the first record and closed after the
  last, never held in memory as a whole.

A record is a key in Atlas' own camelCase shape (:meth:`ApiKey.to_atlas`) with
``orgId`` in front. :func:`atomic_output` writes to a temporary file in the
target's directory and renames it over the target only once everything is
written, so an interrupted export leaves no truncated file that looks complete.
A symbolic link is followed (the file it points to is replaced, the link
stays); a target that is no regular file (a FIFO, a terminal, ``/dev/null``,
``/dev/stdout``) is written straight, never replaced.

:func:`printable` is for text shown on a terminal: every value Atlas sends
(a key's name, an error's detail) passes through it before it is rendered.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import stat
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
    "defuse_cell",
    "export_record",
    "make_writer",
    "printable",
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


# C0 (tab and line breaks included), DEL and C1: a terminal acts on them
# (ESC starts a sequence that can clear the screen or set the window title;
# C1 CSI is one on its own). Shown as ``repr`` spells them (``\x1b``,
# ``\n``): visible, and the spelling of aiokeys' error messages.
_CONTROLS: Final[dict[int, str]] = {
    code: repr(chr(code))[1:-1] for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
}

# A cell a spreadsheet would read as a formula (OWASP's list), or one that
# starts with the quote the defusing adds (so that the defusing can be undone).
_FORMULA_START: Final[tuple[str, ...]] = ("=", "+", "-", "@", "\t", "\r", "'")

# Paths that name an open file descriptor: writing them means writing that
# descriptor, whatever file it happens to be (``--output /dev/stdout > f``).
_DESCRIPTOR_PATH: Final = re.compile(
    r"/dev/(stdout|stderr|fd/\d+)|/proc/(self|\d+)/fd/\d+"
)


def printable(text: str) -> str:
    """Return ``text`` with every control character shown as ``repr`` shows it.

    C0 (tab, CR and LF included), DEL and C1 are replaced; every other
    character, any script or emoji, is kept.
    """
    return text.translate(_CONTROLS)


def export_record(
    org_id: str | None, key: ApiKey, *, include_secret: bool = False
) -> dict[str, Any]:
    """Return ``key`` as an Atlas-shaped record with ``orgId`` first.

    ``org_id`` is ``None`` for keys listed by project, whose org is not known
    from the listing; it is then written as ``null``, as :meth:`ApiKey.to_atlas`
    writes every absent field, so every record has the same fields. The secret
    is written only on request.
    """
    record: dict[str, Any] = {"orgId": org_id}
    record.update(key.to_atlas(include_secret=include_secret))
    return record


class RecordWriter(Protocol):
    """Writes records one at a time; :meth:`finish` completes the document."""

    def write(self, record: Mapping[str, Any]) -> None: ...

    def finish(self) -> None: ...

    def abandon(self) -> None:
        """End a document cut short: a final line break, nothing that completes it."""


class _JsonLinesWriter:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write(json.dumps(record) + "\n")

    def finish(self) -> None:
        self._stream.flush()

    def abandon(self) -> None:
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

    def abandon(self) -> None:
        # The array stays open (invalid, as it should), but a shell prompt
        # after it starts on a line of its own.
        if self._count:
            self._stream.write("\n")
        self._stream.flush()


class _CsvWriter:
    def __init__(self, stream: TextIO, *, include_secret: bool, raw: bool) -> None:
        columns = (*CSV_COLUMNS, "secret") if include_secret else CSV_COLUMNS
        self._writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        self._stream = stream
        self._raw = raw
        self._writer.writeheader()

    def write(self, record: Mapping[str, Any]) -> None:
        if not self._raw:
            record = {name: defuse_cell(value) for name, value in record.items()}
        self._writer.writerow(record)

    def finish(self) -> None:
        self._stream.flush()

    def abandon(self) -> None:
        self._stream.flush()


def defuse_cell(value: Any) -> Any:
    """Return ``value`` with a ``'`` in front if a spreadsheet could run it.

    See the module docstring: text starting with ``=``, ``+``, ``-``, ``@``,
    a tab, a CR or ``'`` gets one ``'`` more; anything else is returned as is.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def make_writer(
    fmt: Format, stream: TextIO, *, include_secret: bool, csv_raw: bool = False
) -> RecordWriter:
    """Return the writer for ``fmt`` on ``stream`` (CSV writes its header now).

    ``include_secret`` only decides whether CSV has a ``secret`` column; the
    records themselves decide what is written. ``csv_raw`` writes CSV cells
    exactly, without defusing formulas (:func:`defuse_cell`).
    """
    if fmt == "jsonl":
        return _JsonLinesWriter(stream)
    if fmt == "json":
        return _JsonArrayWriter(stream)
    return _CsvWriter(stream, include_secret=include_secret, raw=csv_raw)


@contextlib.contextmanager
def atomic_output(path: Path, *, private: bool) -> Iterator[TextIO]:
    """Open a temporary file beside ``path``; rename it to ``path`` on success.

    The temporary file is ``.NAME.RANDOM.part`` in the same directory (a rename
    across file systems would not be atomic). It is flushed and synced before
    the rename. If the block raises anything, cancellation and
    ``KeyboardInterrupt`` included, the temporary file is removed and ``path``
    is left as it was. Only SIGKILL (or a crash of the machine) can leave it
    behind.

    A symbolic link is resolved first: the temporary file is made beside the
    file it points to and renamed onto that file, so the link stays a link.
    A ``path`` that exists and is no regular file (a FIFO, a character device
    such as ``/dev/null``, a terminal), and ``/dev/stdout`` and its kind, are
    written straight, opened for appending: renaming over them would replace
    a device or a pipe by a plain file. A write cut short there stays cut
    short; the caller ends it (:meth:`RecordWriter.abandon`).

    Args:
        path: The file to create or replace.
        private: Create the file with mode 0600 (for exports carrying
            secrets) instead of 0666 less the umask.
    """
    if _written_straight(path):
        with _naming(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
        return

    target = Path(os.path.realpath(path))
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    mode = 0o600 if private else 0o666
    with _naming(path):
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        with _naming(path):
            os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _written_straight(path: Path) -> bool:
    """Whether ``path`` is a descriptor's name or exists and is no regular file."""
    if _DESCRIPTOR_PATH.fullmatch(os.path.abspath(path)):
        return True
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except OSError:
        return False  # absent (to be created), or the temporary file says why
    return not stat.S_ISREG(mode)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Report a failure on the temporary file under the name the user gave."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc

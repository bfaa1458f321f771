"""The ``aiokeys`` command line: ``list``, ``export`` and ``demo``.

::

    aiokeys list ORG_ID
    aiokeys export [--org ID ...] [--orgs-file FILE ...] [--group ID ...]
                   [--format jsonl|csv|json] [--output FILE|-] [--include-secrets]
                   [--csv-raw] [--on-error raise|skip|collect] [--quiet]
    aiokeys demo [--orgs N] [--keys N] [--latency SECONDS]
                 [--baseline measure|compute] [--output FILE|- [--format F]]

    every command: [--concurrency N] [--page-size N] [--api-version VERSION]
                   [--no-progress] [--debug]
    list, export:  [--base-url URL] [--max-tries N] [--allow-insecure-http]

Credentials come from the environment (:func:`aiokeys.auth_from_env`); the base
URL from ``--base-url``, else ``MONGODB_ATLAS_BASE_URL``, else Atlas. ``demo``
needs none: it starts the embedded simulator.

``list`` prints each key as it arrives, one line per key in fixed-width
columns, so memory stays flat however many keys the org has. An export is
written to a hidden temporary file ``.NAME.XXXXXXXX.part`` beside ``--output``
(beside the file a symbolic link points to) and renamed over it only when
complete (mode 0600 with ``--include-secrets``); an ``--output`` that is no
regular file (a FIFO, a device, ``/dev/stdout``) is written straight. Without
``--output``, or with ``--output -``, it goes to stdout. Ctrl-C, SIGTERM and
SIGHUP remove the temporary file; SIGKILL cannot be caught, so after one a
``.NAME.XXXXXXXX.part`` may be left to delete. Progress bars go to stderr, and
only when stderr is a terminal and stdout is not the same screen of records.

Every text Atlas sends is shown with its control characters escaped
(``\\x1b`` for ESC): a key's name cannot move the cursor, clear the screen or
retitle the terminal. CSV cells a spreadsheet would run as a formula get a
``'`` in front unless ``--csv-raw`` is given (see :mod:`aiokeys._output`).

Exit codes:

== ===========================================================
0  success
1  anything else (an unexpected answer, a file that cannot be written)
2  usage: a bad option, argument or id (nothing was sent)
3  authentication: no credentials, or Atlas refused them (401)
4  permission denied (403)
5  not found (404)
6  rate limited (429), or the retries ran out on a 5xx or network fault
129 hung up (SIGHUP); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)
== ===========================================================

With ``--on-error skip`` or ``collect``, an org answering 403 or 404 is left
out with one line on stderr; if every org (and project) was left out the
exit code is that of the first one's error (4 or 5), else 0.

Errors are one line on stderr and never carry a secret; ``--debug`` adds the
traceback and aiokeys' DEBUG logs. The library never configures logging; this
module does, on the ``aiokeys`` logger only, for the length of one run.

``rich`` (the ``cli`` extra) draws the progress bars and measures the columns;
it is imported only when a command runs, so a missing ``rich`` is one clear
error line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TextIO

import attrs

from ._bulk import BulkKeyStream, OrgFailure, Scope, open_bulk, validate_scopes
from ._errors import (
    AiokeysError,
    AuthenticationError,
    InvalidArgumentError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ._models import ApiKey
from ._output import (
    FORMATS,
    Format,
    RecordWriter,
    atomic_output,
    export_record,
    make_writer,
    printable,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleRenderable
    from rich.progress import Progress, TaskID

    from ._client import Client

__all__ = ["EXIT_CODES", "amain", "build_parser", "exit_code_for", "main"]

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTHENTICATION: Final = 3
EXIT_PERMISSION: Final = 4
EXIT_NOT_FOUND: Final = 5
EXIT_GAVE_UP: Final = 6
EXIT_HUNG_UP: Final = 128 + signal.SIGHUP
EXIT_INTERRUPTED: Final = 128 + signal.SIGINT
EXIT_TERMINATED: Final = 128 + signal.SIGTERM

# Most specific first: MissingCredentialsError is also an InvalidArgumentError.
EXIT_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (MissingCredentialsError, EXIT_AUTHENTICATION),
    (AuthenticationError, EXIT_AUTHENTICATION),
    (InvalidArgumentError, EXIT_USAGE),
    (PermissionDeniedError, EXIT_PERMISSION),
    (NotFoundError, EXIT_NOT_FOUND),
    (RateLimitError, EXIT_GAVE_UP),
    (ServerError, EXIT_GAVE_UP),
    (TransportError, EXIT_GAVE_UP),
)

DEFAULT_API_VERSION: Final = "2025-03-12"
_PROGRESS_INTERVAL: Final = 0.1  # seconds between two progress redraws
_STDERR_CONSOLE: contextvars.ContextVar[Console | None] = contextvars.ContextVar(
    "aiokeys_cli_stderr", default=None
)


class UsageError(Exception):
    """A command line that parses but makes no sense (exit code 2)."""


class NothingExportedError(Exception):
    """Every org of an export was left out (``--on-error skip|collect``).

    Its exit code is the one of ``error``, the first left-out org's 403 or
    404 in command-line order, as if ``--on-error raise`` had met it.
    """

    def __init__(self, message: str, *, error: BaseException) -> None:
        super().__init__(message)
        self.error = error


def exit_code_for(exc: BaseException) -> int:
    """Map an exception to the command's exit code (see the module docstring)."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, NothingExportedError):
        return exit_code_for(exc.error)
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


# -- arguments -----------------------------------------------------------------


def _int_in(low: int, high: int | None) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be from 0 to 10 seconds, got {text}")
    return value


def _shared_options() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--debug", action="store_true", help="DEBUG logs and tracebacks on stderr"
    )
    shared.add_argument(
        "--concurrency",
        metavar="N",
        type=_int_in(1, 64),
        default=8,
        help="requests in flight at once, over all orgs (default 8)",
    )
    shared.add_argument(
        "--page-size",
        metavar="N",
        type=_int_in(1, 500),
        default=100,
        help="keys per page, 1..500 (default 100)",
    )
    shared.add_argument(
        "--api-version",
        metavar="VERSION",
        default=DEFAULT_API_VERSION,
        help=f"Atlas API version for the Accept header (default {DEFAULT_API_VERSION})",
    )
    shared.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar, even when stderr is a terminal",
    )
    return shared


def _connection_options() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--base-url",
        metavar="URL",
        help="Atlas origin (default: $MONGODB_ATLAS_BASE_URL, else https://cloud.mongodb.com)",
    )
    connection.add_argument(
        "--max-tries",
        metavar="N",
        type=_int_in(1, 20),
        default=None,
        help="attempts per request, the first included (default 5)",
    )
    connection.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow a plain-http base URL that is not loopback",
    )
    return connection


_LIST_EPILOG: Final = """\
Each key is printed as it arrives, one line per key, in columns sized from
the first keys; on a terminal a longer name is cut short with "…" (export
writes it whole). Control characters in what Atlas sends are shown escaped,
ESC as \\x1b, so a key's name cannot act on the terminal.
"""

_EXPORT_EPILOG: Final = """\
The file appears only when complete: the export goes to a hidden temporary
file .NAME.XXXXXXXX.part beside it (beside the file a symbolic link points
to), renamed over it at the end and removed on an error, Ctrl-C, SIGTERM or
SIGHUP. SIGKILL cannot be caught: after one, delete that .part file. An
--output that is no regular file (a FIFO, a device, /dev/stdout) is written
straight; --output - is stdout.

CSV: a cell starting with =, +, -, @, a tab or a CR would run as a formula in
a spreadsheet, so it is written with a ' in front (and a cell starting with '
gets one more: strip one leading ' from each cell to get Atlas' text back).
--csv-raw writes every cell exactly as Atlas sent it.

--on-error skip|collect: each org left out (403 or 404) is one line on stderr.
The exit code is 0 if at least one org was exported; if every org was left
out it is the first one's (4 for 403, 5 for 404) and no file is written.
"""


def _add_list(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "list",
        parents=parents,
        help="print the keys of one org as a table, as they arrive",
        epilog=_LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("org_id", metavar="ORG_ID", help="24-hex org id")
    parser.set_defaults(command=_run_list)


def _add_export(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "export",
        parents=parents,
        help="write every key of many orgs to a file",
        epilog=_EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--org", action="append", default=[], metavar="ID", help="an org id (repeat)")
    add(
        "--orgs-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="org ids, one a line; - is stdin (repeat)",
    )
    add(
        "--group",
        action="append",
        default=[],
        metavar="ID",
        help="a project id (repeat)",
    )
    add(
        "--on-error",
        choices=("raise", "skip", "collect"),
        default="raise",
        help="an org answering 403/404: end the export (raise), leave it out "
        "with a short line on stderr (skip), or with the full error (collect)",
    )
    _add_output_options(parser)
    add(
        "--csv-raw",
        action="store_true",
        help="CSV cells exactly as Atlas sent them: no ' before a cell that "
        "starts with = + - @ tab or CR (a spreadsheet may run it as a formula)",
    )
    parser.set_defaults(command=_run_export)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--format",
        choices=FORMATS,
        help="jsonl, csv or json (default: from --output's suffix, else jsonl)",
    )
    add(
        "--output",
        metavar="FILE",
        help="write here (atomically), not stdout; - is stdout",
    )
    add("--include-secrets", action="store_true", help="also write each key's secret")
    add("--quiet", action="store_true", help="no summary line on stderr")


def _add_demo(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo", parents=parents, help="list keys from the embedded Atlas simulator"
    )
    add = parser.add_argument
    add(
        "--orgs",
        type=_int_in(1, 50),
        default=4,
        metavar="N",
        help="orgs to simulate (default 4)",
    )
    add(
        "--keys",
        metavar="N",
        type=_int_in(0, 100_000),
        default=1250,
        help="keys per org (default 1250)",
    )
    add(
        "--latency",
        metavar="SECONDS",
        type=_seconds,
        default=0.04,
        help="simulated latency per request in seconds (default 0.04)",
    )
    add("--format", choices=FORMATS, help="with --output: jsonl, csv or json")
    add(
        "--output",
        metavar="FILE",
        help="also export the keys to FILE (- is stdout; the summary then "
        "goes to stderr)",
    )
    add(
        "--baseline",
        choices=("measure", "compute"),
        default="measure",
        help="time the page-by-page walk for real, or compute it from latency x pages",
    )
    parser.set_defaults(command=_run_demo)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE,
            f"aiokeys: error: {message} (see {self.prog} --help)\n",
        )


def build_parser() -> argparse.ArgumentParser:
    """Return the ``aiokeys`` argument parser."""
    from . import __version__

    parser = _Parser(
        prog="aiokeys",
        description="List MongoDB Atlas AI model API keys, fast and in order.",
    )
    parser.add_argument("--version", action="version", version=f"aiokeys {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    shared, connection = _shared_options(), _connection_options()
    _add_list(commands, [shared, connection])
    _add_export(commands, [shared, connection])
    _add_demo(commands, [shared])
    return parser


# -- running -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script's entry)."""
    received: list[signal.Signals] = []
    try:
        return asyncio.run(_main_with_signals(argv, received))
    except KeyboardInterrupt:
        _say("aiokeys: interrupted")
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        if received and received[0] == signal.SIGHUP:
            _say("aiokeys: hung up")
            return EXIT_HUNG_UP
        _say("aiokeys: terminated")
        return EXIT_TERMINATED


def _say(line: str) -> None:
    # After SIGHUP the terminal may be gone: the exit code still counts.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr)


async def _main_with_signals(
    argv: Sequence[str] | None, received: list[signal.Signals]
) -> int:
    # SIGTERM and SIGHUP (the terminal closed) cancel the run like Ctrl-C
    # does, so cleanups (the temporary export file above all) run instead of
    # the process dying mid-write. SIGKILL cannot be caught.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        received.append(sig)
        if task is not None:
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop, sig)
    return await amain(argv)


async def amain(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its code.

    Usable from a running event loop (tests do); :func:`main` wraps it in
    :func:`asyncio.run`.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a usage error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        import rich  # noqa: F401
    except ImportError:
        return _fail("the command line needs rich: pip install 'aiokeys[cli]'")

    with _run_console(), _logging(debug=args.debug):
        try:
            code: int = await args.command(args)
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_ERROR
        except Exception as exc:
            return _report(exc, debug=args.debug)
    return code


def _fail(message: str) -> int:
    print(f"aiokeys: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _report(exc: Exception, *, debug: bool) -> int:
    """Print ``exc`` as one line on stderr (and its traceback with --debug)."""
    if debug:
        text = "".join(traceback.format_exception(exc))
        print(_printable_lines(text), file=sys.stderr)
    print(f"aiokeys: error: {_describe(exc)}", file=sys.stderr)
    return exit_code_for(exc)


def _describe(exc: BaseException) -> str:
    """``exc`` as one line of text, control characters escaped, no secret."""
    refused = _connector_error(exc)
    if refused is not None:
        text = _could_not_connect(refused)
    elif isinstance(exc, AiokeysError | UsageError | NothingExportedError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (--debug shows the traceback)"
    # One line, whatever the server's detail held, and nothing a terminal
    # would act on (str.split also splits at the C0 separators and NEL).
    return printable(" ".join(text.split())[:1000])


def _connector_error(exc: BaseException) -> Any:
    """The ``aiohttp.ClientConnectorError`` behind a transport error, or ``None``."""
    import aiohttp

    if not isinstance(exc, TransportError):
        return None
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, aiohttp.ClientConnectorError):
        cause = cause.__cause__
    return cause


def _could_not_connect(exc: Any) -> str:
    """``could not connect to HOST:PORT: REASON``; host and port hold no secret.

    The base URL refuses user info, so its host and port are all there is.
    """
    host, port, os_error = exc.host, exc.port, exc.os_error
    where = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(os_error, socket.gaierror) and os_error.strerror:
        reason = os_error.strerror  # a name that does not resolve
    elif isinstance(os_error, OSError) and os_error.errno and os_error.errno > 0:
        reason = os.strerror(os_error.errno)
    else:
        reason = type(exc).__name__
    return f"could not connect to {where}: {reason}"


def _silence_stdout() -> None:
    # The reader went away (| head): nothing more to say, and Python must not
    # complain while flushing stdout at exit.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def _logging(*, debug: bool) -> Iterator[None]:
    """Send the ``aiokeys`` logger to stderr for one run, then undo it."""
    package = logging.getLogger("aiokeys")
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = _rich_handler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            _PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    old_level = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(old_level)


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped.

    The message is escaped whole (a line break in it must not forge a log
    line); a traceback keeps its own line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _printable_lines(super().formatStack(stack_info))


def _printable_lines(text: str) -> str:
    """``text`` with control characters escaped, but its line breaks kept."""
    return "\n".join(printable(line) for line in text.splitlines())


def _rich_handler() -> logging.Handler:
    from rich.logging import RichHandler

    class PrintableRichHandler(RichHandler):
        def render_message(
            self, record: logging.LogRecord, message: str
        ) -> ConsoleRenderable:
            return super().render_message(record, printable(message))

    return PrintableRichHandler(console=_err_console(), show_path=False)


def _console(*, stderr: bool = False) -> Console:
    """A rich console on stdout or stderr, wide when it is not a terminal.

    Piped output gets no colours and no wrapping: a table row stays one line
    for ``grep``, however long the key's name.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 10_000
    return Console(file=stream, width=width, highlight=False)


@contextlib.contextmanager
def _run_console() -> Iterator[None]:
    """One stderr console per run, shared by the logs and the progress bars.

    Sharing it is what lets a log line print above a live bar instead of
    through it.
    """
    token = _STDERR_CONSOLE.set(_console(stderr=True))
    try:
        yield
    finally:
        _STDERR_CONSOLE.reset(token)


def _err_console() -> Console:
    return _STDERR_CONSOLE.get() or _console(stderr=True)


def _make_client(args: argparse.Namespace) -> Client:
    from ._client import Client
    from ._env import auth_from_env
    from ._retry import RetryPolicy

    found = auth_from_env()
    logger.debug("credentials from %s", ", ".join(found.variables))
    retry = (
        RetryPolicy()
        if args.max_tries is None
        else RetryPolicy(max_tries=args.max_tries)
    )
    try:
        return Client(
            auth=found.auth,
            base_url=args.base_url or found.base_url,
            api_version=args.api_version,
            concurrency=args.concurrency,
            retry=retry,
            allow_insecure_http=args.allow_insecure_http,
        )
    except InvalidArgumentError as exc:
        # The library names its keyword argument; here it is an option.
        text = str(exc).replace("allow_insecure_http=True", "--allow-insecure-http")
        if text == str(exc):
            raise
        raise UsageError(text) from exc


# -- progress and tables -------------------------------------------------------


class _ProgressView:
    """Bars on stderr while keys stream in; nothing when stderr is not a terminal.

    Redraws at most every :data:`_PROGRESS_INTERVAL` seconds: callers ask
    :meth:`due` per key (a clock read) and build a progress snapshot only then.
    """

    def __init__(self, *, enabled: bool, orgs: int | None = None) -> None:
        self._progress: Progress | None = None
        self._orgs_task: TaskID | None = None
        self._pages_task: TaskID | None = None
        self._next = 0.0
        if enabled:
            self._build(orgs)

    def _build(self, orgs: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description:>5}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=_err_console(),
            redirect_stdout=False,
            redirect_stderr=False,
        )
        if orgs is not None:
            self._orgs_task = self._progress.add_task("orgs", total=orgs, note="")
        self._pages_task = self._progress.add_task("pages", total=None, note="")

    def __enter__(self) -> _ProgressView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def due(self) -> bool:
        """Whether a redraw is due (never, when disabled)."""
        if self._progress is None:
            return False
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + _PROGRESS_INTERVAL
        return True

    def show(
        self,
        *,
        pages_done: int,
        pages_expected: int | None,
        keys: int,
        orgs_done: int | None = None,
    ) -> None:
        """Redraw with these totals."""
        if self._progress is None or self._pages_task is None:
            return
        total = max(pages_expected or 0, pages_done) or None
        note = f"{keys:,} keys"
        self._progress.update(
            self._pages_task, completed=pages_done, total=total, note=note
        )
        if self._orgs_task is not None and orgs_done is not None:
            self._progress.update(self._orgs_task, completed=orgs_done)

    def show_bulk(self, stream: BulkKeyStream) -> None:
        """Redraw from a bulk stream's progress."""
        p = stream.progress
        self.show(
            pages_done=p.pages_done,
            pages_expected=p.pages_expected,
            keys=p.keys_yielded,
            orgs_done=p.orgs_done,
        )


def _wants_progress(args: argparse.Namespace) -> bool:
    """Bars only on a terminal, and not over records printed to that terminal."""
    if args.no_progress or not sys.stderr.isatty():
        return False
    return not (_records_to_stdout(args) and sys.stdout.isatty())


def _records_to_stdout(args: argparse.Namespace) -> bool:
    """Whether the command prints keys or records on stdout as it goes."""
    command = getattr(args, "command", None)
    if command is _run_list:
        return True
    if command is _run_export:
        return _output_file(args.output) is None
    return getattr(args, "output", None) == "-"


def _output_file(output: str | None) -> Path | None:
    """The file ``--output`` names, or ``None`` for stdout (no option, or ``-``).

    The option is kept as text so that ``-`` and ``./-`` stay apart:
    ``Path`` spells both ``-``.
    """
    if output is None or output == "-":
        return None
    return Path(output)


# -- key lines -----------------------------------------------------------------

_COLUMNS: Final = ("name", "status", "created (UTC)", "last used (UTC)", "secret")
_SIZING_KEYS: Final = 100  # keys held to size the columns before the first line
_GAP: Final = "  "


def _when(moment: datetime | None, *, missing: str = "") -> str:
    if moment is None:
        return missing
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _cells(key: ApiKey) -> tuple[str, ...]:
    """One key's cells; every text Atlas sent with its control characters escaped."""
    return (
        printable(key.name or ""),
        printable(key.status or ""),
        _when(key.created_at),
        _when(key.last_used_at, missing="never"),
        printable(key.masked_secret or ""),
    )


class _KeyLines:
    """Keys printed as they come, one line each, in fixed-width columns.

    A rich table is measured whole before it is drawn: it holds every key and
    takes minutes for 100,000. Here the first :data:`_SIZING_KEYS` keys size
    the columns and every later key is printed at once, so memory stays flat.
    With a terminal ``width`` a name wider than its column is cut short with
    "…" and the columns stay straight; without one (a pipe, a file) nothing is
    cut, so each key stays one whole line for ``grep``.
    """

    def __init__(self, out: TextIO, *, width: int | None) -> None:
        self._out = out
        self._width = width
        self._held: list[tuple[str, ...]] | None = []
        self._sizes: list[int] = []
        self.count = 0

    def add(self, key: ApiKey) -> None:
        """Print ``key`` (or hold it while the columns are not sized yet)."""
        self.count += 1
        if self._held is None:
            self._print(_cells(key))
            return
        self._held.append(_cells(key))
        if len(self._held) >= _SIZING_KEYS:
            self.flush()

    def flush(self) -> None:
        """Print the header and the keys held, if there are any."""
        held, self._held = self._held, None
        if not held:
            return
        self._sizes = _column_sizes(held, width=self._width)
        self._print(_COLUMNS)
        for cells in held:
            self._print(cells)

    def _print(self, cells: tuple[str, ...]) -> None:
        from rich.cells import cell_len, set_cell_size

        parts = []
        for index, (text, size) in enumerate(zip(cells, self._sizes, strict=False)):
            width = cell_len(text)
            if width > size and index == 0 and self._width is not None:
                text, width = set_cell_size(text, size - 1) + "…", size
            parts.append(text + " " * (size - width))
        parts.append(cells[-1])
        self._out.write(_GAP.join(parts).rstrip() + "\n")


def _column_sizes(rows: list[tuple[str, ...]], *, width: int | None) -> list[int]:
    """Widths of every column but the last (which is not padded).

    On a terminal the name column gets at most what the other columns leave
    of the line, and at least 10.
    """
    from rich.cells import cell_len

    sizes = [max(map(cell_len, column)) for column in zip(_COLUMNS, *rows, strict=True)]
    if width is not None:
        room = width - sum(sizes[1:]) - len(_GAP) * (len(sizes) - 1)
        sizes[0] = max(min(sizes[0], room), 10)
    return sizes[:-1]


def _terminal_width(stream: TextIO) -> int | None:
    """The terminal's width if ``stream`` is one, else ``None`` (never cut)."""
    import shutil

    return shutil.get_terminal_size().columns if stream.isatty() else None


def _print_keys(keys: Sequence[ApiKey], *, out: TextIO) -> None:
    """Print ``keys`` as lines of columns: name, status, dates, masked secret."""
    lines = _KeyLines(out, width=_terminal_width(out))
    for key in keys:
        lines.add(key)
    lines.flush()


# -- list ----------------------------------------------------------------------


async def _run_list(args: argparse.Namespace) -> int:
    """``aiokeys list ORG_ID``: every key of one org, a line each as it arrives.

    Memory stays flat however many keys the org has (see :class:`_KeyLines`);
    the count follows the last line. Keys printed before an error stay
    printed: the error line on stderr says the listing is incomplete.
    """
    validate_scopes([args.org_id], "org")
    lines = _KeyLines(sys.stdout, width=_terminal_width(sys.stdout))
    try:
        async with (
            _make_client(args) as client,
            client.org_keys(args.org_id, page_size=args.page_size) as stream,
        ):
            with _ProgressView(enabled=_wants_progress(args)) as view:
                async for key in stream:
                    lines.add(key)
                    if view.due():
                        p = stream.progress
                        view.show(
                            pages_done=p.pages_done,
                            pages_expected=p.pages_expected,
                            keys=p.keys_yielded,
                        )
    finally:
        lines.flush()

    print(f"{_plural(lines.count, 'key')} of org {args.org_id}")
    return EXIT_OK


# -- export --------------------------------------------------------------------


def _read_ids(path: Path) -> list[str]:
    """Ids from a file (``-`` is stdin), one a line; blanks and ``#`` comments skipped."""
    try:
        text = (
            sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --orgs-file {str(path)!r}: {exc}") from exc
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _export_scopes(args: argparse.Namespace) -> tuple[list[Scope], frozenset[str]]:
    """The orgs and projects to export, checked; and the set of org ids."""
    org_ids = list(args.org)
    for path in args.orgs_file:
        org_ids += _read_ids(path)
    orgs = validate_scopes(org_ids, "org")
    groups = validate_scopes(args.group, "group")

    if not orgs and not groups:
        raise UsageError("nothing to export: give --org, --orgs-file or --group")
    both = sorted(set(orgs) & set(groups))
    if both:
        raise UsageError(f"{both[0]} is given both as an org and as a project")

    scopes: list[Scope] = [("org", o) for o in orgs] + [("group", g) for g in groups]
    return scopes, frozenset(orgs)


def _pick_format(given: Format | None, output: Path | None) -> Format:
    if given is not None:
        return given
    suffix = output.suffix.lower() if output is not None else ""
    by_suffix: dict[str, Format] = {".csv": "csv", ".json": "json"}
    return by_suffix.get(suffix, "jsonl")


@contextlib.contextmanager
def _destination(output: Path | None, *, private: bool) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_output(output, private=private) as stream:
        yield stream


async def _write_export(
    stream: BulkKeyStream,
    out: TextIO,
    *,
    args: argparse.Namespace,
    fmt: Format,
    org_ids: frozenset[str],
) -> None:
    """Write every pair of ``stream`` to ``out``; finish the document on success."""
    secrets = bool(args.include_secrets)
    writer = make_writer(fmt, out, include_secret=secrets, csv_raw=args.csv_raw)
    try:
        with _ProgressView(
            enabled=_wants_progress(args), orgs=stream.progress.orgs_total
        ) as view:
            async for scope_id, key in stream:
                org_id = scope_id if scope_id in org_ids else None
                writer.write(export_record(org_id, key, include_secret=secrets))
                if view.due():
                    view.show_bulk(stream)
            view.show_bulk(stream)
    except BaseException:
        with contextlib.suppress(OSError, ValueError):
            writer.abandon()
        raise
    writer.finish()


async def _run_export(args: argparse.Namespace) -> int:
    """``aiokeys export``: every key of the given orgs and projects, streamed to a file."""
    scopes, org_ids = _export_scopes(args)
    output = _output_file(args.output)
    fmt = _pick_format(args.format, output)
    started = time.monotonic()

    async with _make_client(args) as client:
        # skip and collect differ only in what is printed: both need the errors.
        stream = open_bulk(
            client,
            scopes,
            page_size=args.page_size,
            on_error="raise" if args.on_error == "raise" else "collect",
            org_concurrency=None,
        )
        async with stream:
            with _destination(output, private=args.include_secrets) as out:
                try:
                    await _write_export(
                        stream, out, args=args, fmt=fmt, org_ids=org_ids
                    )
                finally:  # also when another org's error ends the export
                    failures = _report_left_out(stream, scopes, args)
                _check_exported(failures, scopes, org_ids=org_ids)

    _export_summary(stream, args, org_ids=org_ids, elapsed=time.monotonic() - started)
    return EXIT_OK


def _report_left_out(
    stream: BulkKeyStream, scopes: list[Scope], args: argparse.Namespace
) -> list[OrgFailure]:
    """Print one stderr line per org left out, in command-line order; return them."""
    order = {scope_id: n for n, (_, scope_id) in enumerate(scopes)}
    failures = sorted(stream.errors, key=lambda f: order.get(f.org_id, len(order)))
    for failure in failures:
        error = failure.error
        why = (
            _describe(error)
            if args.on_error == "collect"
            else f"{error.status} {type(error).__name__}"
        )
        print(f"aiokeys: left out {failure.org_id}: {why}", file=sys.stderr)
    return failures


def _check_exported(
    failures: list[OrgFailure], scopes: list[Scope], *, org_ids: frozenset[str]
) -> None:
    """Raise :class:`NothingExportedError` if every org was left out.

    Called inside the output's block, so that the file is then not written.
    """
    if failures and len(failures) >= len(scopes):
        what = _scopes_text(len(org_ids), len(scopes) - len(org_ids))
        raise NothingExportedError(
            f"nothing exported: {what} left out", error=failures[0].error
        )


def _export_summary(
    stream: BulkKeyStream,
    args: argparse.Namespace,
    *,
    org_ids: frozenset[str],
    elapsed: float,
) -> None:
    if args.quiet:
        return
    p = stream.progress
    scopes = _scopes_text(len(org_ids), p.orgs_total - len(org_ids))
    left_out = f" ({p.orgs_failed} left out)" if p.orgs_failed else ""
    output = _output_file(args.output)
    where = f" to {output}" if output is not None else ""
    print(
        f"aiokeys: exported {_plural(p.keys_yielded, 'key')} of {scopes}{left_out} "
        f"in {_plural(p.pages_done, 'page')}, {elapsed:.2f} s{where}",
        file=sys.stderr,
    )


def _scopes_text(orgs: int, groups: int) -> str:
    """``3 orgs``, ``1 project``, ``2 orgs and 1 project``."""
    text = _plural(orgs, "org") if orgs else ""
    if groups:
        text += (" and " if text else "") + _plural(groups, "project")
    return text


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


# -- demo ----------------------------------------------------------------------


async def _run_demo(args: argparse.Namespace) -> int:
    """``aiokeys demo``: the embedded simulator, listed concurrently, then compared.

    The comparison is either measured (the same pages fetched again one at a
    time with ``org_keys_page``, as the official tools walk them) or computed
    as pages x simulated latency, a lower bound that ignores transfer and
    decoding. The summary says which.
    """
    from ._auth import BearerToken
    from ._client import Client
    from .testing import FakeAtlas

    async with FakeAtlas(latency=args.latency) as atlas:
        token = atlas.add_bearer_token()
        orgs = [atlas.add_org() for _ in range(args.orgs)]
        for seed, org_id in enumerate(orgs, start=1):
            atlas.seed_keys(org_id, args.keys, groups=3, seed=seed)
        auth = BearerToken(token)
        async with Client(
            auth=auth,
            base_url=atlas.url,
            api_version=args.api_version,
            concurrency=args.concurrency,
        ) as client:
            listed = await _demo_listing(client, orgs, args)
            measure = args.baseline == "measure"
            walk = await _demo_walk(client, orgs, args) if measure else None

    _demo_summary(listed, walk, args)
    return EXIT_OK


@attrs.frozen(kw_only=True)
class _Listed:
    """What the concurrent listing of the demo saw."""

    keys: int
    pages: int
    elapsed: float
    sample: list[ApiKey]


@contextlib.contextmanager
def _demo_output(args: argparse.Namespace) -> Iterator[RecordWriter | None]:
    """The writer for ``demo --output`` (atomic, like ``export``), or ``None``."""
    if args.output is None:
        yield None
        return
    output = _output_file(args.output)
    fmt = _pick_format(args.format, output)
    with _destination(output, private=False) as out:
        yield make_writer(fmt, out, include_secret=False)


async def _demo_listing(
    client: Client, orgs: list[str], args: argparse.Namespace
) -> _Listed:
    """List every org through ``keys_for_orgs`` (``org_keys`` under it), timed."""
    sample: list[ApiKey] = []
    started = time.monotonic()
    stream = client.keys_for_orgs(orgs, page_size=args.page_size)
    async with stream:
        with (
            _demo_output(args) as writer,
            _ProgressView(enabled=_wants_progress(args), orgs=len(orgs)) as view,
        ):
            async for org_id, key in stream:
                if len(sample) < 5:
                    sample.append(key)
                if writer is not None:
                    writer.write(export_record(org_id, key))
                if view.due():
                    view.show_bulk(stream)
            view.show_bulk(stream)
            if writer is not None:
                writer.finish()
    p = stream.progress
    return _Listed(
        keys=p.keys_yielded,
        pages=p.pages_done,
        elapsed=time.monotonic() - started,
        sample=sample,
    )


async def _demo_walk(
    client: Client, orgs: list[str], args: argparse.Namespace
) -> tuple[int, float]:
    """Fetch every page again, one request at a time; return (pages, seconds)."""
    pages = 0
    started = time.monotonic()
    status = _err_console().status("walking the same pages one at a time…")
    with status if _wants_progress(args) else contextlib.nullcontext():
        for org_id in orgs:
            page_num = 1
            while True:
                page = await client.org_keys_page(
                    org_id, page_num=page_num, page_size=args.page_size
                )
                pages += 1
                if len(page.items) < args.page_size:
                    break
                page_num += 1
    return pages, time.monotonic() - started


def _demo_summary(
    listed: _Listed, walk: tuple[int, float] | None, args: argparse.Namespace
) -> None:
    """The demo's report: on stdout, or on stderr when stdout holds the export."""
    out = sys.stderr if args.output == "-" else sys.stdout
    latency_ms = args.latency * 1000
    print(
        f"aiokeys demo: embedded Atlas simulator, {_plural(args.orgs, 'org')} x "
        f"{_plural(args.keys, 'key')}, {latency_ms:.0f} ms latency per request",
        file=out,
    )
    if listed.sample:
        print(f"the first {_plural(len(listed.sample), 'key')}:", file=out)
        _print_keys(listed.sample, out=out)
    print(
        f"listed {_plural(listed.keys, 'key')} in {_plural(listed.pages, 'page')}: "
        f"{listed.elapsed:.2f} s (concurrency {args.concurrency}, "
        f"{_plural(args.page_size, 'key')} per page)",
        file=out,
    )
    print(_walk_line(listed, walk, args), file=out)
    if args.output is not None:
        where = "stdout" if args.output == "-" else args.output
        print(f"exported {_plural(listed.keys, 'key')} to {where}", file=out)


def _walk_line(
    listed: _Listed, walk: tuple[int, float] | None, args: argparse.Namespace
) -> str:
    """The page-by-page walk, measured or computed, against the listing."""
    latency_ms = args.latency * 1000
    if walk is not None:
        pages, seconds = walk
        how = f"measured: the same {_plural(pages, 'page')} fetched one at a time"
    else:
        pages = listed.pages
        seconds = pages * args.latency
        how = f"computed: {_plural(pages, 'page')} x {latency_ms:.0f} ms, a lower bound"
    ratio = _compared(seconds, listed.elapsed)
    return f"a page-by-page walk: {seconds:.2f} s ({how}){ratio}"


def _compared(walk: float, listing: float) -> str:
    """The walk's time as a multiple of the listing's: ``, 3.2 times as long``."""
    if walk <= 0 or listing <= 0:
        return ""
    ratio = walk / listing
    if 0.95 <= ratio < 1.05:
        return ", about as long as the concurrent listing"
    return f", {ratio:.1f} times as long as the concurrent listing"

"""The aiokeys command line, in process and as a subprocess, against the simulator."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiokeys import ApiKey
from aiokeys._cli import amain
from aiokeys._models import make_converter
from aiokeys.testing import FakeAtlas, Fault

TOKEN_VAR = "MONGODB_ATLAS_ACCESS_TOKEN"
CREDENTIAL_VARS = (
    "MONGODB_ATLAS_CLIENT_ID",
    "MONGODB_ATLAS_CLIENT_SECRET",
    "MONGODB_ATLAS_PUBLIC_API_KEY",
    "MONGODB_ATLAS_PUBLIC_KEY",
    "MONGODB_ATLAS_PRIVATE_API_KEY",
    "MONGODB_ATLAS_PRIVATE_KEY",
    "MONGODB_ATLAS_ACCESS_TOKEN",
    "MONGODB_ATLAS_BASE_URL",
)
UNKNOWN_ORG = "ffffffffffffffffffffffff"
SIZES = (45, 0, 30)


@attrs.frozen
class World:
    atlas: FakeAtlas
    token: str
    orgs: list[str]
    keys: dict[str, list[dict[str, object]]]  # org id -> Atlas JSON, server order

    @property
    def secrets(self) -> list[str]:
        return [
            str(k["secret"]) for ks in self.keys.values() for k in ks if k.get("secret")
        ]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def world(fake_atlas: FakeAtlas, clean_env: pytest.MonkeyPatch) -> World:
    token = fake_atlas.add_bearer_token()
    orgs = [fake_atlas.add_org() for _ in SIZES]
    keys = {
        org: fake_atlas.seed_keys(org, n, groups=2, seed=i)
        for i, (org, n) in enumerate(zip(orgs, SIZES, strict=True))
    }
    clean_env.setenv(TOKEN_VAR, token)
    clean_env.setenv("MONGODB_ATLAS_BASE_URL", fake_atlas.url)
    return World(atlas=fake_atlas, token=token, orgs=orgs, keys=keys)


def _keys_of(raw: list[dict[str, object]]) -> list[ApiKey]:
    converter = make_converter()
    return [converter.structure(k, ApiKey) for k in raw]


def _decode(records: list[dict[str, str]]) -> list[tuple[str, ApiKey]]:
    converter = make_converter()
    out = []
    for record in records:
        fields = {k: v for k, v in record.items() if k != "orgId" and v != ""}
        out.append((record["orgId"], converter.structure(fields, ApiKey)))
    return out


def _expected(world: World, orgs: list[str]) -> list[tuple[str, ApiKey]]:
    return [(org, key) for org in orgs for key in _keys_of(world.keys[org])]


def _by_org(pairs: list[tuple[str, ApiKey]]) -> dict[str, list[ApiKey]]:
    out: dict[str, list[ApiKey]] = {}
    for org, key in pairs:
        out.setdefault(org, []).append(key)
    return out


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await amain(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- export ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
async def test_export_reads_back_to_the_same_keys(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """Each format holds every key of every org, each org in server order."""
    out = tmp_path / f"keys.{fmt}"
    code, stdout, stderr = await _run(
        capsys, "export", *(a for o in world.orgs for a in ("--org", o)),
        "--format", fmt, "--output", str(out), "--page-size", "10",
    )  # fmt: skip
    assert code == 0, stderr
    assert stdout == ""
    text = out.read_text(encoding="utf-8")
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    elif fmt == "json":
        records = json.loads(text)
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    assert _by_org(_decode(records)) == _by_org(
        _expected(world, [world.orgs[0], world.orgs[2]])
    )
    assert "exported 75 keys of 3 orgs" in stderr
    assert list(tmp_path.iterdir()) == [out]


async def test_export_to_stdout_and_from_an_orgs_file(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --output, JSON Lines go to stdout; ids may come from a file."""
    ids = tmp_path / "orgs.txt"
    ids.write_text(f"# audit list\n{world.orgs[0]}\n\n{world.orgs[2]}  # second\n")
    code, stdout, _ = await _run(capsys, "export", "--orgs-file", str(ids), "--quiet")
    assert code == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert _by_org(_decode(records)) == _by_org(
        _expected(world, [world.orgs[0], world.orgs[2]])
    )


async def test_export_by_group_has_no_org_id(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys listed by project carry their groupId and a null orgId."""
    group = str(world.keys[world.orgs[0]][0]["groupId"])
    code, stdout, _ = await _run(capsys, "export", "--group", group, "--quiet")
    assert code == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert records
    assert all(r["orgId"] is None and r["groupId"] == group for r in records)


@pytest.mark.parametrize(
    ("on_error", "code"), [("raise", 4), ("skip", 0), ("collect", 0)]
)
async def test_export_with_a_denied_org_under_each_on_error(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    on_error: str,
    code: int,
) -> None:
    """403: exit 4 and no file (raise), or the org left out (skip, collect)."""
    world.atlas.deny(world.token, world.orgs[2])
    out = tmp_path / "keys.jsonl"
    got, _, stderr = await _run(
        capsys, "export", *(a for o in world.orgs for a in ("--org", o)),
        "--output", str(out), "--on-error", on_error,
    )  # fmt: skip
    assert got == code, stderr
    if on_error == "raise":
        assert list(tmp_path.iterdir()) == []
        assert len(stderr.strip().splitlines()) == 1
        return
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert _by_org(_decode(records)) == _by_org(_expected(world, [world.orgs[0]]))
    assert "(1 left out)" in stderr
    [line] = [line for line in stderr.splitlines() if "left out " in line]
    assert line.startswith(f"aiokeys: left out {world.orgs[2]}: 403")
    # skip says what it was; collect adds the error's whole message.
    short = f"aiokeys: left out {world.orgs[2]}: 403 PermissionDeniedError"
    assert (line == short) == (on_error == "skip")


@pytest.fixture
async def leaky_atlas(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    clean_env: pytest.MonkeyPatch,
) -> list[str]:
    """A loopback server whose list carries each key's secret.

    The simulator never lists secrets, but Atlas' published list example
    does, so this is what the command line must be safe against.
    """
    secrets = [f"al-{n}LeakedSecretValue{n}" for n in range(3)]
    results = [
        {
            "apiKeyId": f"leaky{n:019d}",
            "name": f"leaky key {n}",
            "status": "ACTIVE",
            "createdAt": "2026-01-15T16:47:49.855000+00:00",
            "lastUsedAt": None,
            "groupId": "69681d39c9e8cfd375386316",
            "maskedSecret": f"al-****lue{n}",
            "secret": secret,
        }
        for n, secret in enumerate(secrets)
    ]

    async def page(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer leaky-token":
            return web.json_response(
                {"error": 401, "errorCode": "UNAUTHORIZED"}, status=401
            )
        body = {"links": [], "results": results, "totalCount": len(results)}
        return web.json_response(
            body, content_type="application/vnd.atlas.2025-03-12+json"
        )

    app = web.Application()
    app.router.add_get("/api/atlas/v2/orgs/{org}/aiModelApiKeys", page)
    server = await aiohttp_server(app)
    clean_env.setenv(TOKEN_VAR, "leaky-token")
    clean_env.setenv("MONGODB_ATLAS_BASE_URL", str(server.make_url("/")).rstrip("/"))
    return secrets


async def test_no_secret_in_any_output_by_default(
    leaky_atlas: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Secrets a listing carries reach no file, stdout or stderr by default."""
    seen = []
    for fmt in ("jsonl", "csv", "json"):
        out = tmp_path / f"keys.{fmt}"
        code, stdout, stderr = await _run(
            capsys, "export", "--org", UNKNOWN_ORG, "--output", str(out)
        )
        assert code == 0, stderr
        seen += [stdout, stderr, out.read_text()]
        assert "leaky key 2" in seen[-1]
    code, stdout, stderr = await _run(capsys, "list", UNKNOWN_ORG, "--debug")
    assert code == 0, stderr
    assert "leaky key 2" in stdout
    seen += [stdout, stderr]
    blob = "\n".join(seen)
    assert [s for s in leaky_atlas if s in blob] == []

    for fmt in ("jsonl", "csv", "json"):
        code, stdout, _ = await _run(
            capsys,
            "export",
            "--org",
            UNKNOWN_ORG,
            "--format",
            fmt,
            "--include-secrets",
            "--quiet",
        )
        assert code == 0
        assert all(s in stdout for s in leaky_atlas)


# -- list -----------------------------------------------------------------------


async def test_list_prints_a_table(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """One row per key with name, status, created, last used and masked secret."""
    code, stdout, stderr = await _run(capsys, "list", world.orgs[0])
    assert code == 0, stderr
    header, *rows, count = stdout.splitlines()
    assert count == f"45 keys of org {world.orgs[0]}"
    assert header.split() == [
        "name", "status", "created", "(UTC)", "last", "used", "(UTC)", "secret",
    ]  # fmt: skip
    assert len(rows) == 45
    for raw, row in zip(world.keys[world.orgs[0]], rows, strict=True):
        assert row.startswith(f"{raw['name']} ")
        assert row.endswith(str(raw["maskedSecret"]))
        assert str(raw["createdAt"])[:10] in row
        # Fixed-width columns: every status starts where the header's does.
        assert row.index(str(raw["status"])) == header.index("status")


# -- exit codes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "not-an-org"],
        ["export"],
        ["export", "--org", "0123456789ABCDEF01234567"],
        ["export", "--org", UNKNOWN_ORG, "--page-size", "0"],
        ["export", "--org", UNKNOWN_ORG, "--format", "xml"],
        ["frobnicate"],
        [],
    ],
)
async def test_usage_errors_exit_2_before_any_request(
    world: World, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Bad arguments: exit 2, a message on stderr, nothing sent."""
    world.atlas.clear_requests()
    code, _, stderr = await _run(capsys, *argv)
    assert code == 2
    [line] = stderr.strip().splitlines()
    assert line.startswith("aiokeys: error: ")
    assert world.atlas.requests == []


async def test_missing_credentials_exit_3(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No credentials in the environment is an authentication failure."""
    code, _, stderr = await _run(capsys, "list", UNKNOWN_ORG)
    assert code == 3
    assert "MONGODB_ATLAS_ACCESS_TOKEN" in stderr


@pytest.mark.parametrize(
    ("setup", "code", "words"),
    [
        ("wrong_token", 3, "401"),
        ("deny", 4, "403"),
        ("unknown_org", 5, "404"),
        ("rate_limited", 6, "429"),
        ("server_error", 6, "503"),
        ("bad_request", 1, "400"),
    ],
)
async def test_api_errors_map_to_exit_codes(
    world: World,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    code: int,
    words: str,
) -> None:
    """Each failure class has its exit code and one line on stderr, no traceback."""
    org = world.orgs[0]
    if setup == "wrong_token":
        clean_env.setenv(TOKEN_VAR, "not-the-token")
    elif setup == "deny":
        world.atlas.deny(world.token, org)
    elif setup == "unknown_org":
        org = UNKNOWN_ORG
    elif setup == "rate_limited":
        world.atlas.add_fault(Fault(kind="status", status=429, retry_after=0))
    elif setup == "server_error":
        world.atlas.add_fault(Fault(kind="status", status=503))
    else:
        world.atlas.add_fault(Fault(kind="status", status=400))

    got, stdout, stderr = await _run(capsys, "list", org, "--max-tries", "2")
    assert got == code, stderr
    assert stdout == ""
    [line] = stderr.strip().splitlines()
    assert line.startswith("aiokeys: error: ")
    assert words in line
    assert "not-the-token" not in stderr
    assert world.token not in stderr


async def test_unreachable_server_exits_6(
    world: World, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused connection, once the retries run out, is "gave up" (6)."""
    code, _, stderr = await _run(
        capsys,
        "list",
        world.orgs[0],
        "--base-url",
        "http://127.0.0.1:1",
        "--max-tries",
        "1",
    )
    assert code == 6
    [line] = stderr.strip().splitlines()
    assert (
        line == "aiokeys: error: could not connect to 127.0.0.1:1: Connection refused"
    )


async def test_unwritable_output_exits_1_naming_the_file(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output in a missing directory: exit 1, the message names that path."""
    out = tmp_path / "missing" / "keys.csv"
    code, _, stderr = await _run(
        capsys, "export", "--org", world.orgs[0], "--output", str(out)
    )
    assert code == 1
    [line] = stderr.strip().splitlines()
    assert str(out) in line
    assert list(tmp_path.iterdir()) == []


async def test_debug_adds_a_traceback(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """--debug prints the traceback and DEBUG logs before the error line."""
    world.atlas.deny(world.token, world.orgs[0])
    code, _, stderr = await _run(capsys, "list", world.orgs[0], "--debug")
    assert code == 4
    assert "Traceback" in stderr
    assert "DEBUG" in stderr
    assert stderr.strip().splitlines()[-1].startswith("aiokeys: error: ")
    assert world.token not in stderr


# -- demo -----------------------------------------------------------------------


async def test_demo_prints_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny demo lists every key and compares with a measured walk."""
    code, stdout, stderr = await _run(
        capsys,
        "demo",
        "--orgs",
        "2",
        "--keys",
        "25",
        "--latency",
        "0",
        "--page-size",
        "10",
    )
    assert code == 0, stderr
    assert "listed 50 keys in 6 pages" in stdout
    assert "a page-by-page walk" in stdout
    assert "measured: the same 6 pages" in stdout


async def test_demo_can_export_what_it_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """demo --output writes every listed key, like export does."""
    out = tmp_path / "demo.jsonl"
    code, stdout, _ = await _run(
        capsys, "demo", "--orgs", "3", "--keys", "7", "--latency", "0",
        "--baseline", "compute", "--output", str(out),
    )  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 21
    assert len({r["orgId"] for r in records}) == 3
    assert f"exported 21 keys to {out}" in stdout


async def test_demo_can_compute_the_walk(capsys: pytest.CaptureFixture[str]) -> None:
    """--baseline compute says it is computed from the latency."""
    code, stdout, _ = await _run(
        capsys, "demo", "--orgs", "1", "--keys", "5", "--latency", "0.001",
        "--baseline", "compute",
    )  # fmt: skip
    assert code == 0
    assert "listed 5 keys in 1 page:" in stdout
    assert "computed: 1 page x 1 ms" in stdout


# -- output targets -------------------------------------------------------------


async def test_export_through_a_symlink_writes_its_target(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output link.jsonl -> target.jsonl: the target is written, the link kept."""
    target = tmp_path / "target.jsonl"
    target.write_text("old export\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target.name)
    code, _, stderr = await _run(
        capsys, "export", "--org", world.orgs[2], "--output", str(link), "--quiet"
    )
    assert code == 0, stderr
    assert link.is_symlink()
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "target.jsonl"]


async def test_export_to_a_fifo_writes_into_it(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO (like /dev/null or a terminal: not a regular file) is written straight."""
    fifo = tmp_path / "keys.pipe"
    os.mkfifo(fifo)
    reader = os.open(
        fifo, os.O_RDONLY | os.O_NONBLOCK
    )  # so the export's open is not kept waiting
    try:
        code, _, stderr = await _run(
            capsys, "export", "--org", world.orgs[2], "--output", str(fifo), "--quiet"
        )
        assert code == 0, stderr
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        data = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert len(data.splitlines()) == 30
    assert list(tmp_path.iterdir()) == [fifo]


async def test_output_dash_is_stdout(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    clean_env: pytest.MonkeyPatch,
) -> None:
    """--output - writes to stdout; ./- is a file named "-"."""
    clean_env.chdir(tmp_path)
    code, stdout, stderr = await _run(
        capsys, "export", "--org", world.orgs[2], "--output", "-", "--format", "csv"
    )
    assert code == 0, stderr
    assert len(list(csv.DictReader(io.StringIO(stdout)))) == 30
    assert " to " not in stderr
    assert list(tmp_path.iterdir()) == []

    code, stdout, _ = await _run(
        capsys, "export", "--org", world.orgs[2], "--output", "./-"
    )
    assert code == 0
    assert stdout == ""
    assert len((tmp_path / "-").read_text().splitlines()) == 30


async def test_json_cut_short_on_stdout_ends_its_line(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export that fails mid-way: the JSON stays invalid, the last line is ended."""
    world.atlas.add_fault(Fault(kind="latency", delay=0.3, page_num=3))
    world.atlas.add_fault(Fault(kind="status", status=400, page_num=3))
    code, stdout, _ = await _run(
        capsys, "export", "--org", world.orgs[0], "--format", "json",
        "--page-size", "10", "--quiet",
    )  # fmt: skip
    assert code == 1
    assert stdout.startswith("[\n{")
    assert stdout.endswith("}\n")
    with pytest.raises(json.JSONDecodeError):
        json.loads(stdout)


# -- what Atlas sends, shown safely -----------------------------------------------

HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\x9b31m\x7f"


async def test_list_escapes_control_characters(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key's name and status cannot clear the screen or retitle the terminal."""
    group = world.atlas.add_group(world.orgs[1])
    world.atlas.add_key(group, name=HOSTILE, status="ACTIVE\x1b[8m")
    code, stdout, stderr = await _run(capsys, "list", world.orgs[1])
    assert code == 0, stderr
    assert [
        c for c in stdout if c != "\n" and (ord(c) < 32 or 127 <= ord(c) < 160)
    ] == []
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x7f" in stdout
    assert "ACTIVE\\x1b[8m" in stdout


@pytest.fixture
async def hostile_atlas(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    """A loopback server whose 403 carries control characters in its detail."""

    async def page(request: web.Request) -> web.Response:
        body = {
            "error": 403,
            "errorCode": "EVIL\x1b[2J",
            "reason": "Forbidden",
            "detail": f"no\n{HOSTILE}\r\x1b[1A",
        }
        return web.json_response(body, status=403)

    app = web.Application()
    app.router.add_get("/api/atlas/v2/orgs/{org}/aiModelApiKeys", page)
    server = await aiohttp_server(app)
    clean_env.setenv(TOKEN_VAR, "hostile-token")
    clean_env.setenv("MONGODB_ATLAS_BASE_URL", str(server.make_url("/")).rstrip("/"))


@pytest.mark.parametrize("debug", [False, True])
async def test_error_lines_escape_control_characters(
    hostile_atlas: None, capsys: pytest.CaptureFixture[str], debug: bool
) -> None:
    """The server's detail reaches stderr escaped, in the error line and --debug."""
    argv = ["list", UNKNOWN_ORG, *(["--debug"] if debug else [])]
    code, _, stderr = await _run(capsys, *argv)
    assert code == 4
    assert [
        c for c in stderr if c != "\n" and (ord(c) < 32 or 127 <= ord(c) < 160)
    ] == []
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("aiokeys: error: 403")
    assert "\\x1b]0;pwned\\x07" in last
    assert (len(stderr.strip().splitlines()) > 1) == debug


def test_long_names_are_cut_on_a_terminal_only() -> None:
    """On a terminal the columns stay straight within its width; piped, names stay whole."""
    from rich.cells import cell_len

    from aiokeys._cli import _KeyLines

    keys = [
        ApiKey(
            api_key_id=f"k{n}", name=name, status="ACTIVE", masked_secret="al-****ab"
        )
        for n, name in enumerate(["short", "名前" * 40, "x" * 200])
    ]
    for width in (80, None):
        out = io.StringIO()
        lines = _KeyLines(out, width=width)
        for key in keys:
            lines.add(key)
        lines.flush()
        header, *rows = out.getvalue().splitlines()
        assert len(rows) == 3
        if width is None:
            assert [row.split("  ")[0] for row in rows] == [k.name for k in keys]
            continue
        assert all(cell_len(line) <= width for line in (header, *rows))
        assert rows[2].startswith("x" * 20)
        assert "…" in rows[2]
        # Columns in cells, not characters: 名 is two cells wide.
        starts = {cell_len(row[: row.index("ACTIVE")]) for row in rows}
        assert starts == {header.index("status")}


def test_log_lines_escape_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the library logs reaches stderr with its control characters escaped."""
    from aiokeys._cli import _logging

    with _logging(debug=True):
        logging.getLogger("aiokeys.test").info("detail %s", "x\x1b[2J\ny")
    err = capsys.readouterr().err
    assert "detail x\\x1b[2J\\ny" in err
    assert "\x1b" not in err


# -- CSV formulas -----------------------------------------------------------------


@pytest.mark.parametrize("raw", [False, True])
async def test_csv_formula_cells(
    world: World, capsys: pytest.CaptureFixture[str], raw: bool
) -> None:
    """Names a spreadsheet would run get a leading ' unless --csv-raw is given."""
    group = world.atlas.add_group(world.orgs[1])
    names = ['=HYPERLINK("http://evil","x")', "+1", "-2", "@SUM(A1)", "\tx", "plain"]
    for name in names:
        world.atlas.add_key(group, name=name)
    argv = ["export", "--org", world.orgs[1], "--format", "csv", "--quiet"]
    code, stdout, _ = await _run(capsys, *argv, *(["--csv-raw"] if raw else []))
    assert code == 0
    got = [row["name"] for row in csv.DictReader(io.StringIO(stdout))]
    if raw:
        assert got == names
    else:
        assert got == [*("'" + n for n in names[:-1]), "plain"]


# -- export options ---------------------------------------------------------------


async def test_orgs_file_repeats(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every --orgs-file counts, like every --org."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(world.orgs[0] + "\n")
    second.write_text(world.orgs[2] + "\n")
    code, stdout, _ = await _run(
        capsys,
        "export",
        "--orgs-file",
        str(first),
        "--orgs-file",
        str(second),
        "--quiet",
    )
    assert code == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert {r["orgId"] for r in records} == {world.orgs[0], world.orgs[2]}
    assert len(records) == 75


@pytest.mark.parametrize("on_error", ["skip", "collect"])
@pytest.mark.parametrize("denied_first", [True, False])
async def test_every_org_left_out_is_an_error(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    on_error: str,
    denied_first: bool,
) -> None:
    """Nothing exported: a line per org, the first one's exit code, no file."""
    world.atlas.deny(world.token, world.orgs[0])
    orgs = (
        [world.orgs[0], UNKNOWN_ORG] if denied_first else [UNKNOWN_ORG, world.orgs[0]]
    )
    out = tmp_path / "keys.csv"
    code, _, stderr = await _run(
        capsys, "export", "--org", orgs[0], "--org", orgs[1],
        "--on-error", on_error, "--output", str(out),
    )  # fmt: skip
    assert code == (4 if denied_first else 5), stderr
    *left_out, last = stderr.strip().splitlines()
    status = {world.orgs[0]: "403", UNKNOWN_ORG: "404"}
    assert len(left_out) == 2
    for org, line in zip(orgs, left_out, strict=True):
        assert line.startswith(f"aiokeys: left out {org}: {status[org]}")
    assert last == "aiokeys: error: nothing exported: 2 orgs left out"
    assert list(tmp_path.iterdir()) == []


async def test_skip_reports_each_org_left_out(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """skip: one short line per org left out, exit 0 since one org was exported."""
    world.atlas.deny(world.token, world.orgs[0])
    code, stdout, stderr = await _run(
        capsys, "export", "--org", world.orgs[0], "--org", UNKNOWN_ORG,
        "--org", world.orgs[2], "--on-error", "skip",
    )  # fmt: skip
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 30
    assert stderr.splitlines()[:2] == [
        f"aiokeys: left out {world.orgs[0]}: 403 PermissionDeniedError",
        f"aiokeys: left out {UNKNOWN_ORG}: 404 NotFoundError",
    ]
    assert "(2 left out)" in stderr
    assert world.token not in stderr


async def test_left_out_orgs_are_reported_when_another_error_ends_the_export(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """collect, then a 503 ends the export: the org left out is still named."""
    world.atlas.deny(world.token, world.orgs[0])
    world.atlas.add_fault(Fault(kind="latency", delay=0.5, org_id=world.orgs[2]))
    world.atlas.add_fault(Fault(kind="status", status=503, org_id=world.orgs[2]))
    code, _, stderr = await _run(
        capsys, "export", "--org", world.orgs[0], "--org", world.orgs[2],
        "--on-error", "collect", "--max-tries", "1",
    )  # fmt: skip
    assert code == 6, stderr
    left_out, last = stderr.strip().splitlines()
    assert left_out.startswith(f"aiokeys: left out {world.orgs[0]}: 403")
    assert last.startswith("aiokeys: error: 503")


# -- messages ---------------------------------------------------------------------


async def test_plain_http_off_loopback_names_the_option(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal of a plain-http base URL names --allow-insecure-http."""
    world.atlas.clear_requests()
    code, _, stderr = await _run(
        capsys, "list", world.orgs[0], "--base-url", "http://10.11.12.13:8080"
    )
    assert code == 2
    [line] = stderr.strip().splitlines()
    assert "--allow-insecure-http" in line
    assert "allow_insecure_http" not in line
    assert world.atlas.requests == []


async def test_demo_wording(capsys: pytest.CaptureFixture[str]) -> None:
    """Singular where it is one; the walk compared as "N times as long"."""
    code, stdout, _ = await _run(
        capsys, "demo", "--orgs", "1", "--keys", "3", "--latency", "0.001",
        "--page-size", "1", "--baseline", "compute",
    )  # fmt: skip
    assert code == 0
    assert "(concurrency 8, 1 key per page)" in stdout
    assert "computed: 4 pages x 1 ms" in stdout
    assert re.search(
        r", (\d+\.\d times|about) as long as the concurrent listing", stdout
    )
    assert "x longer" not in stdout


async def test_demo_output_dash_sends_the_summary_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """demo --output -: records alone on stdout, the summary on stderr."""
    code, stdout, stderr = await _run(
        capsys, "demo", "--orgs", "2", "--keys", "4", "--latency", "0",
        "--baseline", "compute", "--output", "-",
    )  # fmt: skip
    assert code == 0
    assert len([json.loads(line) for line in stdout.splitlines()]) == 8
    assert "exported 8 keys to stdout" in stderr


# -- subprocesses ---------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def standalone() -> Iterator[dict[str, object]]:
    """``python -m aiokeys.testing --json`` in its own process."""
    argv = [sys.executable, "-m", "aiokeys.testing", "--json", "--orgs", "3",
            "--keys", "60", "--token", "cli-test-token", "--port", "0"]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            if not line:
                pytest.fail("python -m aiokeys.testing printed nothing")
            yield json.loads(line)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(10)


def test_subprocess_export_against_the_standalone_simulator(
    standalone: dict[str, object], tmp_path: Path
) -> None:
    """``python -m aiokeys export`` writes a CSV of every key; exit 0."""
    orgs = standalone["orgs"]
    assert isinstance(orgs, list)
    ids = tmp_path / "orgs.txt"
    ids.write_text("\n".join(orgs) + "\n")
    out = tmp_path / "keys.csv"
    done = subprocess.run(
        [sys.executable, "-m", "aiokeys", "export", "--orgs-file", str(ids),
         "--output", str(out), "--base-url", str(standalone["url"])],
        env=_env(**{TOKEN_VAR: "cli-test-token"}), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 180
    assert {r["orgId"] for r in rows} == set(orgs)
    assert "exported 180 keys of 3 orgs" in done.stderr
    assert "━" not in done.stderr  # no progress bar: stderr is not a terminal


def test_subprocess_exit_code_passes_through(
    standalone: dict[str, object],
) -> None:
    """The process exit status is the command's code (3: bad token)."""
    orgs = standalone["orgs"]
    assert isinstance(orgs, list)
    done = subprocess.run(
        [sys.executable, "-m", "aiokeys", "list", orgs[0], "--base-url", str(standalone["url"])],
        env=_env(**{TOKEN_VAR: "wrong"}), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


@pytest.fixture
async def slow_atlas() -> AsyncIterator[tuple[FakeAtlas, str, str]]:
    async with FakeAtlas(latency=0.2) as atlas:
        token = atlas.add_bearer_token()
        org = atlas.add_org()
        atlas.seed_keys(org, 2000, seed=3)
        yield atlas, token, org


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_interrupted_export_leaves_no_file(
    slow_atlas: tuple[FakeAtlas, str, str],
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
) -> None:
    """Ctrl-C, SIGTERM or SIGHUP mid-export: no output file, no temporary file."""
    atlas, token, org = slow_atlas
    out = tmp_path / "keys.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiokeys", "export", "--org", org, "--output", str(out),
        "--page-size", "10", "--concurrency", "2", "--base-url", atlas.url,
        env=_env(**{TOKEN_VAR: token}),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".keys.json.*.part")) or len(atlas.requests) < 3:
        assert time.monotonic() < deadline, "the export never started"
        await asyncio.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == code, stderr
    assert list(tmp_path.iterdir()) == []


async def test_list_prints_keys_while_it_lists(
    slow_atlas: tuple[FakeAtlas, str, str],
) -> None:
    """list streams: lines come out while pages are still being fetched."""
    atlas, token, org = slow_atlas
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiokeys", "list", org, "--page-size", "10",
        "--concurrency", "2", "--base-url", atlas.url,
        env=_env(**{TOKEN_VAR: token}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        # The header and 150 keys, out of 2000 at 0.2 s per page of 10.
        lines = [await asyncio.wait_for(proc.stdout.readline(), 20) for _ in range(151)]
        assert proc.returncode is None
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert lines[0].split()[:2] == [b"name", b"status"]
    assert all(line.endswith(b"\n") for line in lines)
    assert len(atlas.requests) < 200


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """With stderr a terminal the demo draws bars there; stdout stays clean."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiokeys", "demo", "--orgs", "2", "--keys", "300",
         "--latency", "0.005", "--baseline", "compute"],
        stdout=subprocess.PIPE, stderr=secondary, env=_env(TERM="xterm", COLUMNS="100"),
    )  # fmt: skip
    os.close(secondary)
    terminal = _read_all(main).decode(errors="replace")
    stdout, _ = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 0
    assert "pages" in terminal
    assert "orgs" in terminal
    assert b"pages" in stdout  # the summary
    assert b"\x1b[" not in stdout


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_list_on_a_terminal_draws_no_bar_over_its_lines(world: World) -> None:
    """list with stdout and stderr one terminal: the key lines, no progress bar."""
    main, secondary = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiokeys", "list", world.orgs[0], "--page-size", "5",
        env=_env(**{TOKEN_VAR: world.token}, MONGODB_ATLAS_BASE_URL=world.atlas.url,
                 TERM="xterm", COLUMNS="120"),
        stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    terminal = await asyncio.get_running_loop().run_in_executor(None, _read_all, main)
    os.close(main)
    assert await proc.wait() == 0
    text = terminal.decode(errors="replace")
    assert f"45 keys of org {world.orgs[0]}" in text
    assert text.count("al-****") == 45
    assert "━" not in text
    assert "\x1b[" not in text


async def test_no_bar_over_records_printed_to_the_terminal(world: World) -> None:
    """export to stdout, stdout and stderr one terminal: records, but no bar."""
    main, secondary = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiokeys", "export", "--org", world.orgs[0],
        env=_env(**{TOKEN_VAR: world.token}, MONGODB_ATLAS_BASE_URL=world.atlas.url, TERM="xterm"),
        stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    terminal = await asyncio.get_running_loop().run_in_executor(None, _read_all, main)
    os.close(main)
    assert await proc.wait() == 0
    text = terminal.decode(errors="replace")
    assert text.count('"apiKeyId"') == 45
    assert "━" not in text

"""The aiokeys command line, in process and as a subprocess, against the simulator."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import signal
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
    """Keys listed by project carry their groupId and no orgId."""
    group = str(world.keys[world.orgs[0]][0]["groupId"])
    code, stdout, _ = await _run(capsys, "export", "--group", group, "--quiet")
    assert code == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert records
    assert all("orgId" not in r and r["groupId"] == group for r in records)


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
    assert (f"left out {world.orgs[2]}: 403" in stderr) == (on_error == "collect")


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
    assert f"45 keys of org {world.orgs[0]}" in stdout
    header = next(line for line in stdout.splitlines() if "name" in line)
    for column in ("status", "created (UTC)", "last used (UTC)", "secret"):
        assert column in header
    for raw in world.keys[world.orgs[0]]:
        row = next(line for line in stdout.splitlines() if f" {raw['name']} " in line)
        assert str(raw["maskedSecret"]) in row
        assert str(raw["createdAt"])[:10] in row


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
    assert len(stderr.strip().splitlines()) == 1


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
    assert "computed: 1 pages x 1 ms" in stdout


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


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_interrupted_export_leaves_no_file(
    slow_atlas: tuple[FakeAtlas, str, str],
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
) -> None:
    """Ctrl-C or SIGTERM mid-export: no output file, no temporary file."""
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

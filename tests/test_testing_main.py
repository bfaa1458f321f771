"""`python -m aiokeys.testing`: the standalone simulator, driven from outside."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from aiokeys.testing.__main__ import _exposed, main

GA = "application/vnd.atlas.2025-03-12+json"


@asynccontextmanager
async def _standalone(
    *args: str,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start the server, yield (process, first line of its banner), stop it with SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiokeys.testing",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        yield proc, line.decode()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)


async def test_json_banner_and_serving() -> None:
    """--json prints one line with url, orgs and credentials that all work."""
    args = (
        "--orgs",
        "2",
        "--keys",
        "7",
        "--digest",
        "PUB:PRIV",
        "--client",
        "cid:csecret",
        "--token",
        "tok-1",
        "--json",
    )
    async with _standalone(*args) as (proc, line):
        info: dict[str, Any] = json.loads(line)
        assert set(info) == {"url", "orgs", "token", "digest", "client"}
        assert (info["token"], info["digest"], info["client"]) == (
            "tok-1",
            "PUB:PRIV",
            "cid:csecret",
        )
        assert len(info["orgs"]) == 2
        async with aiohttp.ClientSession(
            headers={"Accept": GA, "Authorization": "Bearer tok-1"}
        ) as http:
            for org_id in info["orgs"]:
                async with http.get(
                    f"{info['url']}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys"
                ) as resp:
                    body = await resp.json(content_type=None)
                assert (resp.status, len(body["results"]), body["totalCount"]) == (
                    200,
                    7,
                    7,
                )
        assert proc.returncode is None
    assert proc.returncode == 0


async def test_text_banner_names_url_orgs_and_generated_credentials() -> None:
    """Without credentials on the command line, generated ones are printed."""
    async with _standalone("--orgs", "1", "--keys", "1") as (proc, line):
        assert proc.stdout is not None
        rest = await asyncio.wait_for(proc.stdout.read(600), timeout=30)
    text = line + rest.decode()
    assert re.search(r"http://127\.0\.0\.1:\d+", text)
    assert re.search(r"\b[0-9a-f]{24}\b", text)
    assert "digest" in text
    assert "service account" in text
    assert "bearer token" in text


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_issue_curl_commands_against_standalone() -> None:
    """The documented curl commands (digest, then token + Bearer) get the keys."""
    args = (
        "--orgs",
        "1",
        "--keys",
        "3",
        "--digest",
        "PUB:PRIV",
        "--client",
        "cid:csecret",
        "--json",
    )
    async with _standalone(*args) as (_, line):
        info = json.loads(line)
        url, org_id = info["url"], info["orgs"][0]
        out = await _curl(
            "--user",
            "PUB:PRIV",
            "--digest",
            "--include",
            "--header",
            "Accept: application/vnd.atlas.preview+json",
            "-X",
            "GET",
            f"{url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys?pretty=true",
        )
        assert "HTTP/1.1 200" in out
        assert '"totalCount": 3' in out
        token = json.loads(
            await _curl(
                "--user",
                "cid:csecret",
                "--data",
                "grant_type=client_credentials",
                f"{url}/api/oauth/token",
            )
        )
        out = await _curl(
            "--header",
            f"Authorization: Bearer {token['access_token']}",
            "--header",
            f"Accept: {GA}",
            f"{url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys",
        )
        assert len(json.loads(out)["results"]) == 3


async def _curl(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "--silent",
        "--show-error",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def _banner_lines(proc: asyncio.subprocess.Process, first: str) -> list[str]:
    """The text banner, from its first line to "Ctrl-C to stop."."""
    assert proc.stdout is not None
    lines = [first.rstrip("\n")]
    while not lines[-1].startswith("Ctrl-C"):
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert raw, f"banner ended early: {lines}"
        lines.append(raw.decode().rstrip("\n"))
    return lines


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_banner_urls_are_bracketed_and_its_curl_lines_work() -> None:
    """On --host ::1 every URL in the banner is http://[::1]:PORT; the curl lines run."""
    async with _standalone("--host", "::1", "--keys", "2") as (proc, first):
        lines = await _banner_lines(proc, first)
        urls = re.findall(r"http://\S+", "\n".join(lines))
        assert len(urls) >= 4
        assert all(re.match(r"http://\[::1\]:[1-9]\d*/?", url) for url in urls)
        await _run_examples(lines, results=2)


async def _run_examples(lines: list[str], *, results: int) -> None:
    """Run the banner's two curl lines; each must list ``results`` keys."""
    examples = [line.strip() for line in lines if line.strip().startswith("curl ")]
    assert len(examples) == 2
    for example in examples:
        out = await _curl(*shlex.split(example)[1:])
        assert len(json.loads(out)["results"]) == results


async def test_rate_limit_and_retired_versions_are_served() -> None:
    """--rate-limit shows RateLimit-* headers and a 429; --retired-version a 410."""
    args = ("--keys", "1", "--token", "tok-1", "--json", "--rate-limit", "2/1/3600")
    retire = ("--retired-version", "2023-01-01", "--retired-version", "PREVIEW")
    async with _standalone(*args, *retire) as (proc, line):
        info = json.loads(line)
        url = f"{info['url']}/api/atlas/v2/orgs/{info['orgs'][0]}/aiModelApiKeys"
        async with aiohttp.ClientSession(
            headers={"Authorization": "Bearer tok-1"}
        ) as http:
            answers = []
            for version in (
                "2025-03-12",
                "2025-03-12",
                "2025-03-12",
                "2023-01-01",
                "preview",
            ):
                accept = f"application/vnd.atlas.{version}+json"
                async with http.get(url, headers={"Accept": accept}) as resp:
                    body = await resp.json(content_type=None)
                    answers.append((resp.status, resp.headers, body))
    (s1, h1, _), (s2, h2, _), (s3, h3, b3), (s4, _, b4), (s5, _, b5) = answers
    assert (s1, s2, s3, s4, s5) == (200, 200, 429, 410, 410)
    assert [h["RateLimit-Limit"] for h in (h1, h2, h3)] == ["2", "2", "2"]
    assert [h["RateLimit-Remaining"] for h in (h1, h2, h3)] == ["1", "0", "0"]
    assert 1 <= int(h3["Retry-After"]) <= 3600
    assert (b3["errorCode"], b4["errorCode"], b5["errorCode"]) == (
        "RATE_LIMITED_TOKEN_BUCKET",
        "VERSION_GONE",
        "VERSION_GONE",
    )
    assert proc.stderr is not None
    assert await proc.stderr.read() == b""  # loopback: no warning


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_text_banner_names_limits_and_its_examples_avoid_retired_versions() -> (
    None
):
    """The banner states the limit and retired versions; its curl lines still work."""
    args = ("--keys", "3", "--rate-limit", "5/2.5/60", "--retired-version", "preview")
    async with _standalone(*args) as (proc, first):
        lines = await _banner_lines(proc, first)
        await _run_examples(lines, results=3)
    text = "\n".join(lines)
    assert "rate limit per org and per project: 5 requests, 2.5 more every 60 s" in text
    assert "retired versions (410 VERSION_GONE): preview" in text
    assert "Accept: application/vnd.atlas.2025-03-12+json\n" in text
    assert "vnd.atlas.preview" not in text.partition("try:")[2]


def test_help_documents_the_new_options(capsys: pytest.CaptureFixture[str]) -> None:
    """--help shows the form of --rate-limit and that --retired-version repeats."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--rate-limit CAPACITY/REFILL/PERIOD" in out
    assert "e.g. 10/5/60" in out
    assert "--retired-version VERSION" in out
    assert "(repeatable)" in out


@pytest.mark.parametrize(
    ("host", "exposed"),
    [
        ("127.0.0.1", []),
        ("127.3.2.1", []),
        ("::1", []),
        ("::ffff:127.0.0.1", []),
        ("localhost", []),
        ("0.0.0.0", ["0.0.0.0"]),
        ("::", ["::"]),
        ("192.0.2.1", ["192.0.2.1"]),
        ("", ["every interface"]),
    ],
)
def test_exposed_addresses(host: str, exposed: list[str]) -> None:
    """Only addresses off loopback count as exposed; "" is every interface."""
    assert _exposed(host) == exposed


def _can_bind(address: str) -> bool:
    try:
        with socket.socket() as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(_can_bind("192.0.2.1"), reason="192.0.2.1 is bound here")
def test_host_off_loopback_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-loopback --host warns on stderr before serving (here it cannot bind)."""
    assert main(["--host", "192.0.2.1", "--keys", "0"]) == 1
    err = capsys.readouterr().err
    warning, _, rest = err.partition("\n")
    assert warning.startswith("warning: --host '192.0.2.1' listens on 192.0.2.1")
    assert "not loopback" in warning
    assert "credentials" in warning
    assert rest.startswith("cannot listen on 192.0.2.1:0")


@pytest.mark.parametrize(
    "argv",
    [
        ["--digest", "nocolon"],
        ["--keys", "x"],
        ["--rate-limit", "10/5"],
        ["--rate-limit", "10/5/60/1"],
        ["--rate-limit", "0/5/60"],
        ["--rate-limit", "1.5/5/60"],
        ["--rate-limit", "10/0/60"],
        ["--rate-limit", "10/5/inf"],
        ["--rate-limit", "10/nan/60"],
        ["--retired-version", "not a version"],
        ["--retired-version", ""],
    ],
)
def test_bad_arguments_exit_2(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed options are refused by argparse with exit status 2."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--keys", "-1"], "--keys"), (["--port", "65536"], "--port")],
)
def test_out_of_range_numbers_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative --keys or a port past 65535 is refused before anything is served."""
    assert main(argv) == 2
    assert named in capsys.readouterr().err


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A port that cannot be bound is a one-line error and exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--keys", "0"]) == 1
    assert "cannot listen" in capsys.readouterr().err

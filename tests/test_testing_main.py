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

from aiokeys.testing.__main__ import main

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
        examples = [line.strip() for line in lines if line.strip().startswith("curl ")]
        assert len(examples) == 2
        for example in examples:
            out = await _curl(*shlex.split(example)[1:])
            assert len(json.loads(out)["results"]) == 2


@pytest.mark.parametrize("argv", [["--digest", "nocolon"], ["--keys", "x"]])
def test_bad_arguments_exit_2(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed options are refused by argparse with exit status 2."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_negative_counts_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A negative --keys is refused before anything is served."""
    assert main(["--keys", "-1"]) == 2
    assert "--keys" in capsys.readouterr().err


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A port that cannot be bound is a one-line error and exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--keys", "0"]) == 1
    assert "cannot listen" in capsys.readouterr().err

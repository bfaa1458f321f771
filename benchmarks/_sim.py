"""The Atlas simulator in a process of its own, so client and server never share a loop.

The benchmarks start ``python -m aiokeys.testing ... --json``, read the one JSON
line it prints (its URL and org ids), and terminate it when the scenario ends.
Seeding a million keys takes a while, so the wait for that line is generous.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import attrs

__all__ = ["SimInfo", "simulator"]

logger = logging.getLogger(__name__)

_TOKEN = "bench-token-0123456789"
#: Another module with the same command line may stand in for aiokeys.testing.
_MODULE_ENV = "AIOKEYS_BENCH_SIMULATOR"
_READY_TIMEOUT = 300.0


@attrs.frozen(kw_only=True)
class SimInfo:
    """What a running simulator told us: where it listens and which orgs it seeded."""

    url: str
    orgs: tuple[str, ...]
    token: str = attrs.field(repr=False)
    pid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(*, orgs: int, keys: int, latency: float, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        os.environ.get(_MODULE_ENV, "aiokeys.testing"),
        "--port",
        str(port),
        "--orgs",
        str(orgs),
        "--keys",
        str(keys),
        "--latency",
        repr(latency),
        "--token",
        _TOKEN,
        "--json",
    ]


def _read_ready_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """Wait for the simulator's JSON line; fail loudly if it exits or stalls."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                line = proc.stdout.readline()
                if line.strip().startswith("{"):
                    return line
                if not line:
                    break
            if proc.poll() is not None:
                break
    raise RuntimeError(f"simulator did not start (exit code {proc.poll()})")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def simulator(*, orgs: int, keys: int, latency: float) -> Iterator[SimInfo]:
    """Run a simulator with ``orgs`` orgs of ``keys`` keys each, ``latency`` s per request.

    The simulator's stderr goes to a temporary file whose tail is shown if it
    fails to start.
    """
    port = _free_port()
    cmd = _command(orgs=orgs, keys=keys, latency=latency, port=port)
    with tempfile.TemporaryFile(mode="w+") as errlog:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=errlog, text=True, env=dict(os.environ)
        )
        try:
            ready = json.loads(_read_ready_line(proc, _READY_TIMEOUT))
        except BaseException:
            _stop(proc)
            errlog.seek(0)
            sys.stderr.write(errlog.read()[-4000:])
            raise
        try:
            logger.debug("simulator %s up: %d orgs x %d keys", ready["url"], orgs, keys)
            yield SimInfo(
                url=ready["url"],
                orgs=tuple(ready["orgs"]),
                token=ready.get("token") or _TOKEN,
                pid=proc.pid,
            )
        finally:
            _stop(proc)

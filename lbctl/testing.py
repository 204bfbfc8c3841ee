"""Test helpers shipped with lbctl (as trio ships ``trio.testing``).

- :func:`embedded_apiserver`: the embedded API server in the current event loop.
- :class:`APIServerProcess`: ``lbctl apiserver`` as a child process (for kubectl, for
  ``kill -9``), bound to 127.0.0.1 on a free port.
- :func:`wait_for`: poll a condition until a deadline (never a bare sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from lbctl.allocators.nodeport import PortRange
from lbctl.apiserver.server import APIServer, APIServerConfig

__all__ = ["APIServerProcess", "embedded_apiserver", "free_port", "wait_for", "wait_for_async"]

T = TypeVar("T")


@contextlib.asynccontextmanager
async def embedded_apiserver(data_dir: Path, **options: Any) -> AsyncIterator[APIServer]:
    """Start an :class:`APIServer` on 127.0.0.1 (free port) in this loop; stop it after."""
    if "port_range" in options and isinstance(options["port_range"], str):
        options["port_range"] = PortRange.parse(options["port_range"])
    server = APIServer(APIServerConfig(data_dir=data_dir, host="127.0.0.1", port=0, **options))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    every: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


async def wait_for_async(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 10.0,
    every: float = 0.05,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


class APIServerProcess:
    """``lbctl apiserver`` in a child process; ``url`` and ``kubeconfig`` once started."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def start(self, *, timeout: float = 30.0) -> APIServerProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lbctl",
                "apiserver",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**base, **(self.env or {})},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"lbctl apiserver exited: {err.strip()}")
            if "serving on " in line:
                self.url = line.split("serving on ", 1)[1].strip()
                return self
        raise TimeoutError("lbctl apiserver did not start")

    def kill(self) -> None:
        """``kill -9``: no chance to flush or clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> APIServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""pixelmcp as agent frameworks meet it: `pixelmcp serve` as a subprocess (tiny profile), over stdio or HTTP.

This suite runs in its own venv (requirements.txt: the frameworks need the MCP SDK 1.x on the client
side). PIXELMCP_BIN names the `pixelmcp` command of the project's venv, which serves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Served:
    """How a framework reaches one running pixelmcp: a command to spawn (stdio) or a URL (HTTP)."""

    transport: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""


def pixelmcp_bin() -> str:
    found = os.environ.get("PIXELMCP_BIN")
    if not found or not Path(found).is_file():
        raise RuntimeError("Set PIXELMCP_BIN to the pixelmcp command of the project's venv (e.g. .venv/bin/pixelmcp).")
    return found


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> str:
    return os.environ.get("PIXELMCP_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("tiny-cache"))


@pytest.fixture
def serve(tiny_cache, tmp_path):
    """`serve(transport, **settings)`: a context manager giving a Served pixelmcp with these PIXELMCP_ settings."""

    @contextmanager
    def start(transport: str, **settings: str) -> Iterator[Served]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PIXELMCP_", "OPENAI_", "GEMINI_"))}
        env.update(PIXELMCP_PROFILE="tiny", PIXELMCP_CACHE_DIR=tiny_cache, PIXELMCP_OUTPUT_DIR=str(tmp_path / "out"),
                   HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="",
                   **{f"PIXELMCP_{key.upper()}": value for key, value in settings.items()})
        if transport == "stdio":
            yield Served("stdio", command=pixelmcp_bin(), args=["serve"], env=env)
            return
        port = _free_port()
        log = tmp_path / f"server-{port}.log"
        with open(log, "w") as output:
            process = subprocess.Popen([pixelmcp_bin(), "serve", "--transport", "http", "--port", str(port)],
                                       env=env, stdout=output, stderr=subprocess.STDOUT)
            try:
                _wait_for(port, process, log)
                yield Served("http", url=f"http://127.0.0.1:{port}/mcp", env=env)
            finally:
                process.terminate()
                process.wait(timeout=30)

    return start


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pixelmcp serve exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"pixelmcp serve did not listen on {port} within 60 s: {log.read_text()[-2000:]}")

"""End to end: `pixelmcp serve` as a subprocess, over stdio and over streamable HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import anyio
import pytest
from helpers import ok
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


def server_env(tiny_cache, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELMCP_")}
    env.update(PIXELMCP_PROFILE="tiny", PIXELMCP_OUTPUT_DIR=str(tmp_path / "out"),
               PIXELMCP_CACHE_DIR=str(tiny_cache), HF_HUB_OFFLINE="1")
    return env


async def call_generate(client: Client) -> dict:
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} >= {"generate_image", "rewrite_prompt"}
    steps = []

    async def on_progress(progress, total, message):
        steps.append(progress)

    result = await client.call_tool("generate_image", {"prompt": "a lantern", "seed": 5, "rewrite": False},
                                    progress_callback=on_progress)
    data = ok(result)
    resource = await client.read_resource(data["uri"])
    assert resource.contents[0].mime_type == "image/png"
    assert steps, "no progress notifications arrived"
    return data


async def test_stdio_server_generates_an_image(tiny_cache, tmp_path):
    params = StdioServerParameters(command=sys.executable, args=["-m", "pixelmcp.cli", "serve"],
                                   env=server_env(tiny_cache, tmp_path))
    with anyio.fail_after(180):
        async with Client(params) as client:
            data = await call_generate(client)
    assert data["path"].startswith(str(tmp_path / "out"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_server_generates_an_image(tiny_cache, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pixelmcp.cli", "serve", "--transport", "http", "--port", str(port)],
        env={**server_env(tiny_cache, tmp_path), "COLUMNS": "200"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    try:
        with anyio.fail_after(180):
            # Uvicorn announces the socket once it accepts connections.
            while True:
                line = await anyio.to_thread.run_sync(process.stdout.readline)
                assert line, f"server exited early with {process.poll()}"
                if "Uvicorn running on" in line:
                    break
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                data = await call_generate(client)
        assert data["model"] == "tiny-sd15"
    finally:
        process.terminate()
        process.wait(timeout=30)

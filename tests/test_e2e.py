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


async def test_http_server_generates_an_image_and_logs_on_stderr_only_one_line_each(tiny_cache, tmp_path):
    process, port = await start_http(tiny_cache, tmp_path, separate_stdout=True)
    try:
        with anyio.fail_after(180):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                data = await call_generate(client)
        assert data["model"] == "tiny-sd15"
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert (tmp_path / f"server-{port}.out").read_text() == ""  # uvicorn's access lines included
    lines = (tmp_path / f"server-{port}.log").read_text().splitlines()
    assert any("INFO uvicorn.access:" in line and '"POST /mcp HTTP/1.1" 200' in line for line in lines), lines
    assert all(line[:4].isdigit() and line[4] == "-" for line in lines), lines  # each record on one dated line


async def start_http(tiny_cache, tmp_path, *args: str, separate_stdout: bool = False, **env: str):
    """`pixelmcp serve --transport http` on a free port; returns (process, port) once it accepts connections.

    Its output goes to a file: a pipe nobody reads would fill up and stall the server. With
    `separate_stdout`, stdout goes to server-PORT.out and stderr alone to server-PORT.log.
    """
    port = free_port()
    log = open(tmp_path / f"server-{port}.log", "w")  # noqa: SIM115 (closed with the process)
    out = open(tmp_path / f"server-{port}.out", "w") if separate_stdout else log  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "pixelmcp.cli", "serve", "--transport", "http", "--port", str(port), *args],
        env={**server_env(tiny_cache, tmp_path), "COLUMNS": "200", **env}, stdout=out, stderr=log,
    )
    with anyio.fail_after(120):
        while True:
            assert process.poll() is None, (tmp_path / f"server-{port}.log").read_text()[-2000:]
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.1)  # polling a starting process; bounded by fail_after
                continue
            await stream.aclose()
            return process, port


async def test_http_token_is_required_on_every_request_and_never_logged(tiny_cache, tmp_path):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    process, port = await start_http(tiny_cache, tmp_path, PIXELMCP_HTTP_TOKEN="s3cret-token-0123456789",
                                     PIXELMCP_LOG_LEVEL="DEBUG")  # every library's debug lines too
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx2.AsyncClient() as http:
            missing = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            wrong = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                    headers={"Authorization": "Bearer wrong-guess-0123456789"})
        assert missing.status_code == wrong.status_code == 401
        assert "PIXELMCP_HTTP_TOKEN" in missing.text and "s3cret-token-0123456789" not in missing.text
        assert missing.headers["www-authenticate"].startswith("Bearer")
        authorised = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-token-0123456789"}, timeout=120)
        with anyio.fail_after(120):
            async with Client(streamable_http_client(url, http_client=authorised)) as client:
                tools = await client.list_tools()
        assert "generate_image" in {t.name for t in tools.tools}
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = (tmp_path / f"server-{port}.log").read_text()
    assert "DEBUG" in log and "s3cret-token-0123456789" not in log and "wrong-guess-0123456789" not in log


def test_serving_a_non_loopback_address_needs_a_token(tiny_cache, tmp_path):
    out = subprocess.run([sys.executable, "-m", "pixelmcp.cli", "serve", "--transport", "http", "--host", "0.0.0.0"],
                         env=server_env(tiny_cache, tmp_path), capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode != 0 and "PIXELMCP_HTTP_TOKEN" in out.stderr


async def test_http_server_reaches_a_provider_with_the_key_from_its_environment(tiny_cache, tmp_path):
    from fake_providers import fake_openai
    from mcp_types import CreateMessageResult, TextContent

    key = "sk-e2e-0123456789abcdef"

    async def sampler(context, params):
        return CreateMessageResult(role="assistant", model="client-llm",
                                   content=TextContent(type="text", text="A paper lantern glowing over a dark river"))

    with fake_openai() as api:
        process, port = await start_http(
            tiny_cache, tmp_path, OPENAI_API_KEY=key, PIXELMCP_OPENAI_BASE_URL=f"http://127.0.0.1:{api.port}/v1",
            PIXELMCP_REWRITER="sampling", PIXELMCP_LOG_LEVEL="DEBUG",
        )
        try:
            with anyio.fail_after(120):
                async with Client(f"http://127.0.0.1:{port}/mcp", sampling_callback=sampler) as client:
                    data = ok(await client.call_tool("generate_image", {"prompt": "a lantern", "rewrite": True,
                                                                        "model": "openai:gpt-image-1"}))
                    resource = await client.read_resource(data["uri"])
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert data["provider"] == "openai" and data["rewriter"] == "sampling:client-llm"
    assert api.to("/images/generations")[0].body["prompt"] == "A paper lantern glowing over a dark river"
    assert resource.contents[0].mime_type == "image/png"
    assert key not in (tmp_path / f"server-{port}.log").read_text()


#: The first generation of a fresh server process: its job imports torch and diffusers and loads the model before
#: its steps, seconds even on fast machines, far past a 0.5 s call budget (and a call queued behind it waits as long).
SLOW_CALL = {"prompt": "a harbour at dawn", "width": 128, "height": 128, "steps": 8, "seed": 9, "rewrite": False}


async def poll_job(client: Client, job_id: str, until_finished: bool = False, **arguments):
    """check_job until the tool's result arrives (or, `until_finished`, a job status that is final)."""
    with anyio.fail_after(300):
        while True:
            result = await client.call_tool("check_job", {"job_id": job_id, **arguments})
            job = (result.structured_content or {}).get("job")
            if job is None or (until_finished and job["status"] in ("completed", "failed", "cancelled")):
                return result


async def test_stdio_client_with_a_5s_timeout_gets_a_job_then_the_image_by_polling(tiny_cache, tmp_path):
    env = {**server_env(tiny_cache, tmp_path), "PIXELMCP_CALL_BUDGET_S": "0.5"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "pixelmcp.cli", "serve"], env=env)
    async with Client(params, read_timeout_seconds=5) as client:
        await client.list_tools()  # the server has started (imports are not part of the budget)
        started = await client.call_tool("generate_image", SLOW_CALL)
        job = started.structured_content["job"]
        cancelled_id = (await client.call_tool("generate_image", {**SLOW_CALL, "seed": 10})).structured_content["job"]
        await client.call_tool("check_job", {"job_id": cancelled_id["id"], "cancel": True})
        stopped = await poll_job(client, cancelled_id["id"], until_finished=True)
        assert stopped.structured_content["job"]["status"] == "cancelled"
        data = ok(await poll_job(client, job["id"]))
    assert data["seed"] == 9 and data["path"].startswith(str(tmp_path / "out"))


async def test_http_job_is_collected_from_a_second_connection(tiny_cache, tmp_path):
    process, port = await start_http(tiny_cache, tmp_path, PIXELMCP_CALL_BUDGET_S="0.5")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with Client(url, read_timeout_seconds=5) as first:
            job = (await first.call_tool("generate_image", SLOW_CALL)).structured_content["job"]
        async with Client(url, read_timeout_seconds=5) as second:  # a new session, as a stateless client makes
            data = ok(await poll_job(second, job["id"]))
        assert data["seed"] == 9 and data["width"] == 128
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_first_use_of_a_model_not_on_disk_downloads_it_in_the_background(tiny_cache, tmp_path):
    import json
    import time

    from fake_hub import FakeHub

    from pixelmcp.engine.tiny import ensure_built

    folder = ensure_built("sd15", tiny_cache / "tiny")  # a real (tiny) pipeline, served as a hub repository
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    repo = "fake-org/tiny-sd15"
    model = {"source": repo, "kind": "sd15", "min_side": 16, "default_width": 64, "default_height": 64}
    with FakeHub({repo: {name: len(data) for name, data in files.items()}},
                 {(repo, name): data for name, data in files.items()}, rate=2_000_000) as hub:
        process, port = await start_http(
            tiny_cache, tmp_path, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0",
            PIXELMCP_MODELS=json.dumps({"hub-sd15": model}), PIXELMCP_CALL_BUDGET_S="20",
        )
        try:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=5) as client:
                began = time.monotonic()
                started = await client.call_tool("generate_image", {"prompt": "a", "model": "hub-sd15", "steps": 2,
                                                                    "seed": 1, "rewrite": False})
                job = started.structured_content["job"]
                assert job["status"] == "downloading" and "downloading hub-sd15" in job["message"]
                assert time.monotonic() - began < 5  # answered when the download began, not after the budget
                report = ok(await client.call_tool("list_models", {}))
                assert [d["alias"] for d in report["downloads"]] in (["hub-sd15"], [])  # [] once it is done
                data = ok(await poll_job(client, job["id"], wait_s=2))  # a wait within the client's timeout
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert data["model"] == "hub-sd15" and data["seed"] == 1
    assert "unet/diffusion_pytorch_model.safetensors" in hub.files_of(repo)


async def test_http_client_of_the_tasks_extension_follows_a_task_to_its_result(tiny_cache, tmp_path):
    from tasks_client import TasksClient

    process, port = await start_http(tiny_cache, tmp_path, PIXELMCP_CALL_BUDGET_S="0.5")
    tasks = TasksClient()
    try:
        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=5, extensions=[tasks]) as client:
            data = ok(await client.call_tool("generate_image", SLOW_CALL))
        assert data["seed"] == 9 and tasks.handles and tasks.states[-1].status == "completed"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_no_log_record_shows_a_secret_whoever_writes_it(make_settings, caplog, monkeypatch):
    import logging

    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdefghijklmnop")
    from pixelmcp.server.app import build_server

    build_server(make_settings(http_token="s3cret-token-0123456789"))
    library = logging.getLogger("httpx")  # a library's debug lines, as any of them could write one
    with caplog.at_level(logging.DEBUG):
        library.debug("request headers: %s", {"authorization": "Bearer s3cret-token-0123456789"})
        library.debug("provider key %s", "sk-live-abcdefghijklmnop")
        library.debug("another credential: Authorization: Bearer abcdefgh12345678")
        try:
            raise RuntimeError("refused s3cret-token-0123456789")
        except RuntimeError:
            library.exception("a failure")
    text = caplog.text
    for secret in ("s3cret-token-0123456789", "sk-live-abcdefghijklmnop", "abcdefgh12345678"):
        assert secret not in text
    assert text.count("[redacted]") >= 4 and "a failure" in text and "RuntimeError" in text


async def test_sigterm_stops_an_http_server_dropping_its_call_cleanly(tiny_cache, tmp_path):
    import signal
    import time

    process, port = await start_http(tiny_cache, tmp_path)
    step = anyio.Event()

    async def on_progress(progress, total, message):
        if message and message.startswith("step "):
            step.set()

    async def call() -> None:
        from mcp.shared.exceptions import MCPError

        try:
            with anyio.move_on_after(60):
                async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
                    await client.call_tool("generate_image", {"prompt": "a", "width": 256, "height": 256,
                                                              "steps": 50, "rewrite": False},
                                           progress_callback=on_progress)
        except* (MCPError, OSError):  # the server goes away mid-call
            pass

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(120):
                await step.wait()
            process.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = await anyio.to_thread.run_sync(lambda: process.wait(timeout=30))
            stopped_in = time.monotonic() - began
            tg.cancel_scope.cancel()
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / f"server-{port}.log").read_text()
    assert code == 0 and stopped_in < 15, (code, log[-2000:])
    assert "dropped a generate_image call" in log and "the server is stopping (SIGTERM)" in log, log[-2000:]
    assert not [p.name for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix in (".png", ".tmp")]


async def test_http_refuses_rebinding_hosts_foreign_origins_cross_site_reads_and_large_bodies(tiny_cache, tmp_path):
    import httpx2

    process, port = await start_http(tiny_cache, tmp_path, PIXELMCP_HTTP_MAX_BODY_MB="1")
    url = f"http://127.0.0.1:{port}/mcp"
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    try:
        async with httpx2.AsyncClient(timeout=60) as http:
            rebound = await http.post(url, json=ping, headers={**accept, "Host": "attacker.example"})
            foreign = await http.post(url, json=ping, headers={**accept, "Origin": "http://attacker.example"})
            preflight = await http.options(url, headers={"Origin": "http://attacker.example",
                                                         "Access-Control-Request-Method": "POST"})
            large = await http.post(url, content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": "'
                                    + b"A" * (2 * 1024 * 1024) + b'"}', headers={**accept,
                                                                                "Content-Type": "application/json"})
            local = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
                headers={**accept, "Origin": f"http://127.0.0.1:{port}"})
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert rebound.status_code in (400, 421) and foreign.status_code == 403  # DNS rebinding: the SDK's checks
    for response in (rebound, foreign, preflight, large, local):  # no page of another site may read an answer
        assert "access-control-allow-origin" not in response.headers, response.headers
    assert large.status_code == 413 and "PIXELMCP_HTTP_MAX_BODY_MB" in large.text
    assert local.status_code == 200  # the server's own origin is welcome

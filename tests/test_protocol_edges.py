"""The edges a client or an attacker meets first: what counts as an HTTP token, JSON-RPC requests that
are not valid, and numbers that are not finite, over the real transports."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

import anyio
import pytest
from test_e2e import server_env, start_http

from pixelmcp.config import MIN_TOKEN_CHARS, load_settings
from pixelmcp.server.app import build_server
from pixelmcp.server.http import BearerTokenGate, http_app

GOOD_TOKEN = "k" * MIN_TOKEN_CHARS


def serve(tiny_cache, tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`pixelmcp serve --transport http ARGS` that is expected to refuse to start."""
    return subprocess.run([sys.executable, "-m", "pixelmcp.cli", "serve", "--transport", "http", *args],
                          env={**server_env(tiny_cache, tmp_path), **env}, capture_output=True, text=True,
                          timeout=60, check=False)


# --------------------------------------------------------------------------- HTTP tokens


@pytest.mark.parametrize("token", ["", "   ", "\t"], ids=["empty", "spaces", "tab"])
def test_an_empty_or_blank_token_is_no_token_so_a_public_bind_is_refused(tiny_cache, tmp_path, token):
    out = serve(tiny_cache, tmp_path, "--host", "0.0.0.0", PIXELMCP_HTTP_TOKEN=token)
    assert out.returncode == 1
    assert "refusing to bind 0.0.0.0 without a token (PIXELMCP_HTTP_TOKEN is unset or empty)" in out.stderr
    assert "listening" not in out.stderr


@pytest.mark.parametrize(("host", "token", "problem"), [
    ("0.0.0.0", "short", "is 5 characters long, shorter than the minimum of 16"),
    ("127.0.0.1", "short", "is 5 characters long, shorter than the minimum of 16"),
    ("0.0.0.0", "a token with spaces inside", "contains spaces, control or non-ASCII characters"),
    ("0.0.0.0", "tökén-with-äccents-long", "contains spaces, control or non-ASCII characters"),
])
def test_a_weak_token_is_refused_at_start_on_any_address(tiny_cache, tmp_path, host, token, problem):
    out = serve(tiny_cache, tmp_path, "--host", host, PIXELMCP_HTTP_TOKEN=token)
    assert out.returncode == 1 and "invalid configuration" in out.stderr and problem in out.stderr
    assert "secrets.token_urlsafe(32)" in out.stderr and token not in out.stderr.replace(problem, "")


@pytest.mark.parametrize("token", [GOOD_TOKEN, "0123456789abcdef" * 4, "A-b_c.d~e!f@g#h$i%j^k&l*m(n)o+p=q"])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "gpu-box.example"])
def test_every_accepted_token_installs_the_gate(make_settings, token, host):
    settings = make_settings(http_token=token)
    assert settings.http_token is not None
    assert isinstance(http_app(build_server(settings), settings, host), BearerTokenGate)


@pytest.mark.parametrize("token", ["", "  "])
def test_an_empty_token_on_loopback_serves_without_a_gate(make_settings, token):
    settings = make_settings(http_token=token)
    assert settings.http_token is None
    assert not isinstance(http_app(build_server(settings), settings, "127.0.0.1"), BearerTokenGate)


def test_settings_from_the_environment_treat_an_empty_token_as_none(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELMCP_HTTP_TOKEN", "")
    assert load_settings(profile="tiny", output_dir=tmp_path).http_token is None


@pytest.mark.anyio
async def test_a_public_bind_with_a_token_refuses_requests_without_it(tiny_cache, tmp_path):
    import httpx2

    process, port = await start_http(tiny_cache, tmp_path, "--host", "0.0.0.0", PIXELMCP_HTTP_TOKEN=GOOD_TOKEN)
    url = f"http://127.0.0.1:{port}/mcp"
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    try:
        async with httpx2.AsyncClient(timeout=30) as http:
            refused = await http.post(url, json=ping, headers=headers)
            allowed = await http.post(url, json=ping, headers={**headers, "Authorization": f"Bearer {GOOD_TOKEN}"})
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert refused.status_code == 401 and allowed.status_code != 401
    assert "(bearer token required)" in log


@pytest.mark.anyio
async def test_the_insecure_flag_serves_without_a_token_and_the_log_says_so(tiny_cache, tmp_path):
    import httpx2

    process, port = await start_http(tiny_cache, tmp_path, "--host", "0.0.0.0", "--insecure-allow-remote",
                                     PIXELMCP_HTTP_TOKEN="")
    try:
        async with httpx2.AsyncClient(timeout=30) as http:
            answer = await http.post(f"http://127.0.0.1:{port}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                     headers={"Accept": "application/json, text/event-stream",
                                              "MCP-Protocol-Version": "2025-11-25"})
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert answer.status_code != 401
    assert "INSECURE" in log and "NO TOKEN" in log and "bearer token" not in log


# --------------------------------------------------------------------------- raw JSON-RPC over stdio


class RawStdio:
    """`pixelmcp serve` over stdio, spoken to line by line (no SDK client to repair what is sent)."""

    def __init__(self, tiny_cache, tmp_path):
        self.log = open(tmp_path / "stdio-server.log", "w")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen([sys.executable, "-m", "pixelmcp.cli", "serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        env=server_env(tiny_cache, tmp_path))
        self.replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.replies.put(line)

    def send(self, message: dict | str) -> None:
        self.process.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 120) -> dict:
        try:
            return json.loads(self.replies.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no answer within {timeout} s") from None

    def initialize(self) -> None:
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        assert self.receive()["id"] == 0
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture
def raw_stdio(tiny_cache, tmp_path):
    server = RawStdio(tiny_cache, tmp_path)
    yield server
    server.close()


def test_invalid_requests_over_stdio_get_an_error_with_their_id(raw_stdio):
    raw_stdio.initialize()
    invalid = [
        ({"jsonrpc": "1.0", "id": 5, "method": "ping"}, "jsonrpc"),
        ({"jsonrpc": "2.0", "id": "s-6", "method": 7}, "method"),
        ({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": [1]}, "params"),
        ({"jsonrpc": "2.0", "id": 8}, "method"),
    ]
    for message, named in invalid:
        raw_stdio.send(message)
        reply = raw_stdio.receive()
        assert reply["id"] == message["id"] and reply["error"]["code"] == -32600, reply
        assert named in reply["error"]["message"]
    raw_stdio.send("this is not JSON")  # nothing to answer (no id), and the server keeps going
    raw_stdio.send({"jsonrpc": "2.0", "id": 9, "method": "ping"})
    assert raw_stdio.receive() == {"jsonrpc": "2.0", "id": 9, "result": {}}


def test_every_float_argument_refuses_nan_and_infinities_sent_as_json_literals(raw_stdio):
    raw_stdio.initialize()
    raw_stdio.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    tools = raw_stdio.receive()["result"]["tools"]
    checked = []
    request_id = 100
    for tool in tools:
        for name, schema in tool["inputSchema"]["properties"].items():
            types = {kind for option in [schema, *schema.get("anyOf", [])]
                     for kind in (option.get("type") if isinstance(option.get("type"), list) else [option.get("type")])}
            if "number" not in types:
                continue
            for literal in ("NaN", "Infinity", "-Infinity"):
                request_id += 1
                # json.dumps cannot write these literals into a request; write them by hand.
                raw_stdio.send(f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "tools/call", "params": '
                               f'{{"name": "{tool["name"]}", "arguments": {{"prompt": "a", "{name}": {literal}}}}}}}')
                reply = raw_stdio.receive()
                assert reply["id"] == request_id and reply["result"]["isError"], reply
                text = reply["result"]["content"][0]["text"]
                assert f"Invalid {name}=" in text and "not a finite number" in text, text
            checked.append(f"{tool['name']}.{name}")
    assert {"generate_image.guidance_scale", "controlnet_generate.conditioning_scale",
            "style_transfer.scale"} <= set(checked)


@pytest.mark.anyio
async def test_an_invalid_request_over_http_gets_a_json_rpc_error(tiny_cache, tmp_path):
    import httpx2

    process, port = await start_http(tiny_cache, tmp_path)
    try:
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=30) as http:
                reply = await http.post(f"http://127.0.0.1:{port}/mcp",
                                        json={"jsonrpc": "2.0", "id": 3, "method": 7},
                                        headers={"Accept": "application/json, text/event-stream",
                                                 "MCP-Protocol-Version": "2025-11-25"})
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert reply.status_code == 400 and "error" in reply.json()


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_during_a_call_drops_it_cleanly_and_exits_0(tiny_cache, tmp_path, signal_name):
    import signal
    import time

    server = RawStdio(tiny_cache, tmp_path)
    server.initialize()
    server.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "generate_image", "_meta": {"progressToken": "p"},
        "arguments": {"prompt": "a", "width": 256, "height": 256, "steps": 50, "rewrite": False}}})
    while True:  # until the denoising runs
        message = server.receive()
        if (message.get("params") or {}).get("message", "").startswith("step "):
            break
    server.process.send_signal(getattr(signal, signal_name))
    began = time.monotonic()
    code = server.process.wait(timeout=30)
    stopped_in = time.monotonic() - began
    server.log.close()
    log = (tmp_path / "stdio-server.log").read_text()
    assert code == 0 and stopped_in < 15, (code, log[-2000:])
    assert f"{signal_name}: stopping" in log and log.count("dropped a generate_image call") == 1, log[-2000:]
    assert "did not stop within" not in log  # stopped at a step boundary, not by the deadline
    out = tmp_path / "out"
    assert not [p.name for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".json", ".tmp")]

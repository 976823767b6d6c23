"""pixelmcp through four agent frameworks' own MCP adapters and schema conversions, over stdio and HTTP.

No LLM is called: each framework converts the tool schemas with its own code for the model APIs it
targets, and a tool is invoked the way the framework invokes it when a model asks (google-genai's
automatic function calling runs against a local stand-in for the Gemini API).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

pytestmark = pytest.mark.anyio

TRANSPORTS = ["stdio", "http"]
KITE = {"prompt": "a red kite", "seed": 1, "steps": 2, "rewrite": False}
#: Generous: a fresh server's first call imports torch and builds or loads the model.
TIMEOUT_S = 120


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_openai_agents_converts_every_schema_to_strict_and_invokes_a_tool(serve, transport):
    from agents import RunContextWrapper
    from agents.mcp import MCPServerStdio, MCPServerStreamableHttp, MCPUtil

    with serve(transport) as served:
        if transport == "stdio":
            server = MCPServerStdio(params={"command": served.command, "args": served.args, "env": served.env},
                                    client_session_timeout_seconds=TIMEOUT_S, cache_tools_list=True)
        else:
            server = MCPServerStreamableHttp(params={"url": served.url, "timeout": TIMEOUT_S},
                                             client_session_timeout_seconds=TIMEOUT_S, cache_tools_list=True)
        async with server:
            tools = await server.list_tools()
            converted = {tool.name: MCPUtil.to_function_tool(tool, server, convert_schemas_to_strict=True)
                         for tool in tools}
            assert [name for name, tool in converted.items() if not tool.strict_json_schema] == []
            kite = next(tool for tool in tools if tool.name == "generate_image")
            output = await MCPUtil.invoke_mcp_tool(server, kite, RunContextWrapper(context=None), json.dumps(KITE))
    assert "pixelmcp://images/" in str(output)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_langchain_mcp_adapters_in_one_session_on_the_defaults(serve, transport):
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.tools import load_mcp_tools

    # The adapters turn a resource_link to an image into an image block with its pixelmcp:// URL, which no model
    # API can fetch: by default the server sends this client (the 1.x SDK's unnamed default) no links, and the
    # uri stays in the text.
    with serve(transport) as served:
        connection = ({"transport": "stdio", "command": served.command, "args": served.args, "env": served.env}
                      if transport == "stdio" else {"transport": "streamable_http", "url": served.url})
        client = MultiServerMCPClient({"pixelmcp": connection})
        async with client.session("pixelmcp") as session:  # one session (one server process) for every call
            tools = await load_mcp_tools(session)
            for tool in tools:
                function = convert_to_openai_tool(tool, strict=True)["function"]
                assert function["strict"] is True and function["parameters"]["additionalProperties"] is False
            kite = next(tool for tool in tools if tool.name == "generate_image")
            with anyio.fail_after(TIMEOUT_S):
                output = await kite.ainvoke(KITE)
            second = await kite.ainvoke({**KITE, "seed": 2})
    blocks = output if isinstance(output, list) else [output]
    shown = json.dumps(blocks, default=str)
    assert "pixelmcp://images/" in shown and second
    urls = [block.get("url") or block.get("image_url", {}).get("url", "")
            for block in blocks if isinstance(block, dict)]
    assert not any(str(url).startswith("pixelmcp://") for url in urls), blocks


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pydantic_ai_toolset_schemas_and_a_direct_call(serve, transport):
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai.mcp import MCPToolset
    from pydantic_ai.profiles.google import GoogleJsonSchemaTransformer
    from pydantic_ai.profiles.openai import OpenAIJsonSchemaTransformer

    with serve(transport) as served:
        target = (StdioTransport(command=served.command, args=served.args, env=served.env)
                  if transport == "stdio" else served.url)
        toolset = MCPToolset(target, read_timeout=TIMEOUT_S, init_timeout=TIMEOUT_S)
        async with toolset:
            tools = await toolset.list_tools()
            for tool in tools:
                strict = OpenAIJsonSchemaTransformer(tool.inputSchema, strict=True)
                strict.walk()
                assert strict.is_strict_compatible, tool.name
                GoogleJsonSchemaTransformer(tool.inputSchema).walk()
            result = await toolset.direct_call_tool("generate_image", KITE)
    assert "pixelmcp://images/" in json.dumps(result, default=str)


class _FakeGemini(BaseHTTPRequestHandler):
    """The Gemini API's generateContent: first asks for generate_image, then answers in words."""

    bodies: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).bodies.append(body)
        asked = any("functionResponse" in part for content in body["contents"] for part in content.get("parts", []))
        part = {"text": "Here is your kite."} if asked else {"functionCall": {"name": "generate_image", "args": KITE}}
        reply = json.dumps({"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}],
                            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_google_genai_passes_the_mcp_session_as_a_tool(serve, transport):
    from google import genai
    from google.genai import types
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    gemini = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGemini)
    threading.Thread(target=gemini.serve_forever, daemon=True).start()
    _FakeGemini.bodies = []
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=f"http://127.0.0.1:{gemini.server_address[1]}/", timeout=TIMEOUT_S * 1000))
    # google-genai JSON-dumps the whole MCP result into its request, and a 1.x resource_link's pydantic URL is not
    # JSON-serialisable there: by default the server sends this client (the SDK's unnamed default) no links, and
    # the uri stays in the text and structured content.
    try:
        with serve(transport) as served:
            if transport == "stdio":
                streams = stdio_client(StdioServerParameters(command=served.command, args=served.args, env=served.env))
            else:
                streams = streamable_http_client(served.url)
            async with streams as opened, ClientSession(opened[0], opened[1]) as session:
                await session.initialize()
                # A config dict, not a GenerateContentConfig: google-genai deep-copies a config object,
                # and a live MCP session cannot be copied.
                response = await client.aio.models.generate_content(
                    model="gemini-2.5-flash", contents="Make a picture of a red kite.", config={"tools": [session]})
    finally:
        gemini.shutdown()
    assert response.text == "Here is your kite."
    first, second = _FakeGemini.bodies
    declarations = {d["name"]: d for tool in first["tools"] for d in tool.get("functionDeclarations", [])}
    rewrite = declarations["generate_image"]["parameters"]["properties"]["rewrite"]
    assert "auto" in json.dumps(rewrite)  # the string choice reached Gemini (a const was dropped)
    assert "pixelmcp://images/" in json.dumps(second["contents"][-1])

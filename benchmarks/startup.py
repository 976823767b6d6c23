"""How long an MCP client waits for pixelmcp to answer `initialize` and `tools/list` over stdio,
next to a bare MCP server with one trivial tool (the SDK's own floor), measured side by side.

    python benchmarks/startup.py [rounds]

The last line is the ratio pixelmcp / bare server; near 1 means model libraries stay out of startup.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import anyio
from mcp import Client, StdioServerParameters

BARE = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("bare")
@server.tool()
def ping() -> str:
    return "pong"
server.run("stdio")
"""


async def time_to_tools(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with Client(params) as client:
        await client.list_tools()
        return time.perf_counter() - started


async def main(rounds: int) -> None:
    out = tempfile.mkdtemp()
    env = dict(os.environ, PIXELMCP_PROFILE="tiny", PIXELMCP_OUTPUT_DIR=out, PIXELMCP_LOG_LEVEL="WARNING")
    pixel = StdioServerParameters(command=sys.executable, args=["-m", "pixelmcp.cli", "serve"], env=env)
    bare = StdioServerParameters(command=sys.executable, args=["-c", BARE], env=env)
    pixel_times, bare_times = [], []
    for _ in range(rounds):  # interleaved, so machine noise hits both alike
        pixel_times.append(await time_to_tools(pixel))
        bare_times.append(await time_to_tools(bare))
    p, b = statistics.median(pixel_times), statistics.median(bare_times)
    print(f"pixelmcp initialize+tools/list: median {p:.3f}s over {rounds} runs")
    print(f"bare MCP server initialize+tools/list: median {b:.3f}s over {rounds} runs")
    print(f"ratio pixelmcp/bare: {p / b:.2f}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 5)

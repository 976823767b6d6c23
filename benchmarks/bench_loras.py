"""LoRA switching: what a call with another LoRA costs on a model that is already loaded (tiny profile, CPU,
in-memory MCP client).

    python benchmarks/bench_loras.py [calls per kind]

Side by side in one run, on one warm server: plain calls, calls that alternate between two loaded LoRAs (each a
switch), and the first call of each LoRA (a load). Besides whole calls, the time spent making the call's LoRAs
active (`LoraBank.activate`: a switch sets scales, a first use loads the file) is timed by itself. The last line is
the switch time against a plain call (target: well under a second).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARGUMENTS = {"prompt": "a lighthouse", "seed": 3, "rewrite": False, "verify": False}


async def main(calls: int) -> None:
    from pixelmcp.config import load_settings
    from pixelmcp.engine.loras import LoraBank
    from pixelmcp.server.app import build_server

    cache = Path(os.environ.get("PIXELMCP_CACHE_DIR") or Path(tempfile.gettempdir()) / "pixelmcp-bench-cache")
    with tempfile.TemporaryDirectory() as out:
        settings = load_settings(profile="tiny", output_dir=out, cache_dir=cache, alignment=False)
        server = build_server(settings)
        activations: list[tuple[str, float]] = []
        activate = LoraBank.activate

        def timed(bank, pipe, uses, folders, **kw):
            started = time.perf_counter()
            try:
                return activate(bank, pipe, uses, folders, **kw)
            finally:
                activations.append(("+".join(u.spec.alias for u in uses) or "none", time.perf_counter() - started))

        LoraBank.activate = timed
        async with Client(server) as client:

            async def call(loras: list[dict] | None = None) -> float:
                started = time.perf_counter()
                result = await client.call_tool("generate_image", {**ARGUMENTS, "loras": loras} if loras else ARGUMENTS)
                assert not result.is_error, result.content[0].text
                return time.perf_counter() - started

            await call()  # the model's load
            first = [await call([{"name": "tiny-lora-a"}]), await call([{"name": "tiny-lora-b"}])]
            loads = [seconds for _, seconds in activations]
            activations.clear()
            plain, switched = [], []
            for index in range(calls):
                plain.append(await call())
                switched.append(await call([{"name": "tiny-lora-a" if index % 2 else "tiny-lora-b"}]))
            switches = [seconds for name, seconds in activations if name != "none"]
            offs = [seconds for name, seconds in activations if name == "none"]
            stats = (await client.call_tool("list_models", {})).structured_content["stats"]
    plain_s, switched_s, switch_s = statistics.median(plain), statistics.median(switched), statistics.median(switches)
    print(f"tiny-sd15 on cpu, {calls} calls per kind (medians)")
    print(f"plain call                 {plain_s * 1000:8.1f} ms")
    print(f"call switching LoRA        {switched_s * 1000:8.1f} ms   ratio switched/plain {switched_s / plain_s:.2f}")
    print(f"first call of a LoRA       {statistics.median(first) * 1000:8.1f} ms   (its load: "
          f"{statistics.median(loads) * 1000:.1f} ms)")
    print(f"adapters off (plain call)  {statistics.median(offs) * 1000:8.1f} ms")
    print(f"LoRA loads {stats['lora_loads']} (one per LoRA: every later use is a switch)")
    print(f"switch {switch_s * 1000:.1f} ms vs plain call {plain_s * 1000:.1f} ms: ratio {switch_s / plain_s:.3f}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 10)

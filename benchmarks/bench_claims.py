"""The cost of the claim check on vision answers: ask_about_image with the check off, by similarity only, and on
(similarity and counts), in turn on one warm server, through an in-memory MCP client. The check runs at real size
(CLIP ViT-L/14 scores the claims, RT-DETR R50 counts objects; random weights); the answer is a fixed one from a
local OpenAI-compatible stub (three sentences naming people, a car and a dog), listed by sentence, so what is
measured is exactly what the check adds to an answer.

    python benchmarks/bench_claims.py [rounds]

A real answer takes what its VLM takes (seconds on a GPU); the added seconds printed here are what to set
against it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
from mcp import Client
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from bench_alignment import build_clip_large

ANSWER = "Two people stand next to a red car. A dog sits on the grass. The sky is blue."


def stub_vlm() -> ThreadingHTTPServer:
    """An OpenAI-compatible chat endpoint that answers ANSWER at once."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"id": "b", "object": "chat.completion", "created": 0, "model": "stub", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 20, "total_tokens": 21}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def build_rtdetr_r50(folder: Path) -> Path:
    """RT-DETR with the ResNet-50-vd backbone (transformers' RTDetrConfig defaults: PekingU/rtdetr_r50vd's
    architecture) and COCO's 80 classes, random weights; saved once."""
    if (folder / ".complete").exists():
        return folder
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil

    labels = {index: f"class {index}" for index in range(80)} | {0: "person", 2: "car", 16: "dog"}
    config = RTDetrConfig(id2label=labels, label2id={name: index for index, name in labels.items()})
    RTDetrForObjectDetection(config).eval().save_pretrained(folder)
    RTDetrImageProcessorPil(size={"height": 640, "width": 640}).save_pretrained(folder)
    (folder / ".complete").write_text("ok\n")
    return folder


def photo() -> str:
    """A 768x512 PNG data URI with a few shapes."""
    import base64
    import io

    image = Image.new("RGB", (768, 512), (90, 140, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((80, 260, 330, 470), fill=(200, 40, 40))
    draw.ellipse((420, 120, 640, 340), fill=(240, 220, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def main(rounds: int) -> None:
    cache = Path(__file__).parent / ".cache"
    clip, rtdetr = build_clip_large(cache / "clip-large-real"), build_rtdetr_r50(cache / "rtdetr-r50-real")
    os.environ["PIXELMCP_MODELS"] = json.dumps({
        "bench-clip": {"source": str(clip), "kind": "clip"},
        "bench-pose": {"source": str(rtdetr), "kind": "pose", "detector": str(rtdetr)},
    })
    from pixelmcp.config import load_settings
    from pixelmcp.server.app import build_server

    stub = stub_vlm()
    settings = load_settings(output_dir=tempfile.mkdtemp(), vision_model="openai-compatible:stub",
                             openai_compatible_base_url=f"http://127.0.0.1:{stub.server_address[1]}/v1",
                             alignment_model="bench-clip", pose_model="bench-pose", claims_model="sentences",
                             log_level="WARNING")
    image = photo()
    modes = ("off", "similarity", "on")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    async with Client(build_server(settings)) as client:
        async def ask(mode: str) -> float:
            settings.claim_check = mode
            started = time.perf_counter()
            result = await client.call_tool("ask_about_image", {"image": image, "question": "What is in the picture?"})
            assert not result.is_error, result.content[0].text
            checked = result.structured_content["claim_check"]
            assert (checked is None) == (mode == "off") and (mode != "on" or checked["detector"]), checked
            return time.perf_counter() - started

        await ask("on")  # loads every model
        for _ in range(rounds):
            for mode in modes:
                times[mode].append(await ask(mode))
    stub.shutdown()
    median = {mode: statistics.median(values) for mode, values in times.items()}
    print(f"claim check at real size: CLIP ViT-L/14 + RT-DETR R50 (random weights); a 768x512 image; 3 claims, "
          f"2 naming detector classes; {rounds} rounds, modes in turn")
    for mode in modes:
        print(f"{mode:>10}: median {median[mode]:.3f} s ({', '.join(f'{t:.2f}' for t in times[mode])})")
    print(f"added per answer: similarity {median['similarity'] - median['off']:.3f} s, "
          f"similarity + counts {median['on'] - median['off']:.3f} s; "
          f"ratio on/similarity (the detector's share): {median['on'] / median['similarity']:.3f}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 5)

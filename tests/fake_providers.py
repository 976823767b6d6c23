"""Local HTTP servers that speak the OpenAI and Gemini wire formats, for offline provider tests.

Each records every request (path, headers, JSON body) and answers from a script: queue
`Reply`s for a route to make the next calls fail (429, 500, slow, refusal), and otherwise the
route's default handler answers like the real API. Images they return depend on the prompt, so
a test can see that a different prompt made a different image.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from PIL import Image


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def png_b64(seed_text: str, size: tuple[int, int] = (64, 64)) -> str:
    """A solid-colour PNG whose colour is a function of `seed_text`."""
    digest = hashlib.sha256(seed_text.encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", size, tuple(digest[:3])).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class FakeAPI:
    """A threaded HTTP server on 127.0.0.1 with scripted routes."""

    def __init__(self, routes: dict[str, Callable[[Recorded], Reply]]):
        self.routes = routes  # path substring -> default handler
        self.queued: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[Recorded] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST("GET")

            def do_POST(self, method: str = "POST") -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                record = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(record)
                reply = fake._reply(record)
                if reply.delay:
                    time.sleep(reply.delay)
                binary = isinstance(reply.body, bytes)
                payload = reply.body if binary else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "image/png" if binary else "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _reply(self, record: Recorded) -> Reply:
        for route, handler in self.routes.items():
            if route in record.path:
                if self.queued[route]:
                    return self.queued[route].popleft()
                return handler(record)
        return Reply(404, {"error": {"message": f"no route {record.path}"}})

    def queue(self, route: str, *replies: Reply) -> None:
        self.queued[route].extend(replies)

    def to(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if route in r.path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------- OpenAI


def openai_images(record: Recorded) -> Reply:
    body = record.body
    width, height = (int(v) for v in body.get("size", "1024x1024").split("x"))
    items = []
    for index in range(body.get("n") or 1):
        item: dict[str, Any] = {"b64_json": png_b64(f"{body['prompt']}#{index}", (width // 16, height // 16))}
        if body["model"].startswith("dall-e-3"):
            item["revised_prompt"] = f"A detailed rendering of {body['prompt']}"
        items.append(item)
    return Reply(200, {"created": 0, "data": items})


def openai_chat(record: Recorded) -> Reply:
    body = record.body
    last = body["messages"][-1]["content"]
    parts = last if isinstance(last, list) else [{"type": "text", "text": last}]
    images = sum(1 for part in parts if part.get("type") == "image_url")
    text = next(part["text"] for part in parts if part.get("type") == "text")
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else None
    reply = (f"A richly detailed scene: {text.removeprefix('Request: ')}, golden light" if system
             else f"I see {images} image(s). Question was {len(text)} characters.")
    return Reply(200, {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
    })


def openai_edits(record: Recorded) -> Reply:
    """images.edit is multipart: the images are counted, the colour follows the whole body."""
    body = record.body if isinstance(record.body, bytes) else b""
    images = body.count(b'name="image[]"') or body.count(b'name="image"')
    digest = hashlib.sha256(body).hexdigest()
    return Reply(200, {"created": 0, "data": [{"b64_json": png_b64(f"edit {images} {digest}")}]})


def fake_openai() -> FakeAPI:
    return FakeAPI({"/images/generations": openai_images, "/images/edits": openai_edits,
                    "/chat/completions": openai_chat})


def openai_error(status: int, message: str, code: str | None = None, headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}},
                 headers or {})


# --------------------------------------------------------------------------- Gemini


def gemini_generate(record: Recorded) -> Reply:
    body = record.body
    parts = [part for content in body["contents"] for part in content.get("parts", [])]
    text = " ".join(part["text"] for part in parts if "text" in part)
    images = sum(1 for part in parts if "inlineData" in part)
    model = record.path.split("/models/")[1].split(":")[0]
    if "image" in model:
        ratio = body["generationConfig"]["imageConfig"]["aspectRatio"]
        out = [{"text": "Here is your image."},
               {"inlineData": {"mimeType": "image/png", "data": png_b64(f"{text}|{images}|{ratio}")}}]
    elif body.get("systemInstruction"):
        out = [{"text": f"A richly detailed scene: {text.removeprefix('Request: ')}, soft light"}]
    else:
        out = [{"text": f"I see {images} image(s)."}]
    return Reply(200, {
        "candidates": [{"content": {"role": "model", "parts": out}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 6, "totalTokenCount": 16},
        "modelVersion": model,
    })


def fake_gemini() -> FakeAPI:
    return FakeAPI({":generateContent": gemini_generate})


def gemini_error(status: int, message: str, status_name: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"code": status, "message": message, "status": status_name}}, headers or {})


# --------------------------------------------------------------------------- Anthropic


def anthropic_messages(record: Recorded) -> Reply:
    """The Messages API: a rewrite when there is a system prompt, else a count of the images it was sent."""
    body = record.body
    content = body["messages"][-1]["content"]
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    images = sum(1 for part in parts if part.get("type") == "image")
    text = next(part["text"] for part in parts if part.get("type") == "text")
    reply = (f"A richly detailed scene: {text.removeprefix('Request: ')}, warm light" if body.get("system")
             else f"I see {images} image(s). Question was {len(text)} characters.")
    return Reply(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                       "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 9}})


def fake_anthropic() -> FakeAPI:
    return FakeAPI({"/v1/messages": anthropic_messages})


def anthropic_error(status: int, kind: str, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {})


# --------------------------------------------------------------------------- image engines (SGLang, vLLM-Omni)


class FakeEngine(FakeAPI):
    """An OpenAI-compatible image engine: /v1/images/generations and /v1/images/edits, its images a function of
    the prompt, seed and index (so a seed reproduces an image); with `links`, it answers with a URL on itself,
    served at /v1/images/ID/content, instead of base64; /v1/models answers a health probe."""

    def __init__(self, links: bool = False):
        self.links = links
        self.stored: dict[str, bytes] = {}
        super().__init__({"/images/generations": self.generations, "/images/edits": self.edits,
                          "/content": self.content, "/models": self.models})

    def _item(self, key: str, size: tuple[int, int]) -> dict[str, Any]:
        encoded = png_b64(key, size)
        if not self.links:
            return {"b64_json": encoded}
        name = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.stored[name] = base64.b64decode(encoded)
        return {"url": f"/v1/images/{name}/content"}

    def generations(self, record: Recorded) -> Reply:
        body = record.body
        width, height = (int(v) for v in body.get("size", "1024x1024").split("x"))
        seed = body.get("seed")
        items = [self._item(f"{body['prompt']}|{seed}|{index}", (width, height)) for index in range(body.get("n", 1))]
        return Reply(200, {"created": 0, "data": items})

    def edits(self, record: Recorded) -> Reply:
        body = record.body if isinstance(record.body, bytes) else b""
        return Reply(200, {"created": 0, "data": [self._item(f"edit {hashlib.sha256(body).hexdigest()}", (64, 64))]})

    def content(self, record: Recorded) -> Reply:
        name = record.path.split("/images/")[1].split("/")[0]
        return Reply(200, self.stored[name]) if name in self.stored else Reply(404, {"detail": "no such image"})

    def models(self, record: Recorded) -> Reply:
        return Reply(200, {"object": "list", "data": [{"id": "black-forest-labs/FLUX.1-dev", "object": "model"}]})

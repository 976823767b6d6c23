"""A local stand-in for the Hugging Face hub API (huggingface_hub honours HF_ENDPOINT).

It lists repositories with the file names and sizes of the real ones and serves small stand-in
contents (real JSON where a loader reads it, e.g. model_index.json), recording every file that
is downloaded, so a test can assert that exactly the needed files were requested.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """repos: {repo id: {file name: size}}; contents: {(repo id, file name): bytes} for files read as data;
    rate: bytes per second each file download is sent at (None: at once), to make downloads take a while."""

    def __init__(self, repos: dict[str, dict[str, int]], contents: dict[tuple[str, str], bytes] | None = None,
                 rate: float | None = None):
        self.repos = repos
        self.contents = contents or {}
        self.rate = rate
        self.downloaded: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def files_of(self, repo: str) -> set[str]:
        return {name for r, name in self.downloaded if r == repo}

    def content(self, repo: str, name: str) -> bytes:
        return self.contents.get((repo, name), f"stand-in for {repo}/{name}".encode())

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        if path.startswith("/api/models/"):
            repo = next((r for r in self.repos if path[len("/api/models/"):].startswith(r + "/") or
                         path[len("/api/models/"):] == r), None)
            if repo is not None and path.startswith(f"/api/models/{repo}/tree/"):
                # The tree gives the sizes of what is served (small stand-ins), so downloads check out.
                tree = [{"type": "file", "path": name, "size": len(self.content(repo, name)),
                         "oid": hashlib.sha1(self.content(repo, name)).hexdigest()}
                        for name in sorted(self.repos[repo])]
                return self._send(handler, 200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
            if repo is None:
                return self._send(handler, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"},
                                  body)
            siblings = [{"rfilename": name, "size": size} for name, size in sorted(self.repos[repo].items())]
            info = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings}
            return self._send(handler, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
        for repo, files in self.repos.items():
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                _, _, name = path[len(prefix):].partition("/")
                if name not in files:
                    return self._send(handler, 404, b"", {"X-Error-Code": "EntryNotFound"}, body)
                data = self.content(repo, name)
                if body:
                    self.downloaded.append((repo, name))
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                           "Content-Type": "application/octet-stream"}
                return self._send(handler, 200, data, headers, body, rate=self.rate)
        self._send(handler, 404, b"", {}, body)

    @staticmethod
    def _send(handler, status: int, data: bytes, headers: dict[str, str], body: bool,
              rate: float | None = None) -> None:
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body and rate:
            chunk = 16384
            for start in range(0, len(data), chunk):
                handler.wfile.write(data[start:start + chunk])
                time.sleep(chunk / rate)
        elif body:
            handler.wfile.write(data)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Test helper: a real llama-server on a free loopback port, and a forwarding stand-in that can
answer HTTP 500 (for the remote backend's fault tests)."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

VERSION = 11434


def server_binary() -> Path:
    """The llama-server that scripts/build_llama_server.sh built (R2R_LLAMA_SERVER overrides);
    the tests are skipped, saying how to build it, when there is none."""
    given = os.environ.get("R2R_LLAMA_SERVER")
    cache = os.environ.get("R2R_LLAMA_SERVER_CACHE") or str(Path.home() / f".cache/r2r-local/llama-server-b{VERSION}")
    path = Path(given) if given else Path(cache) / "llama-server"
    if not path.is_file():
        pytest.skip(f"no llama-server at {path}: build it with `bash scripts/build_llama_server.sh`")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`llama-server -m model` on 127.0.0.1, one slot, one thread; ready when /health says 200.
    `port`: a given one (a server started again where a stopped one was), else a free one."""

    def __init__(self, model: Path, *, n_ctx: int = 2048, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(server_binary()), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
               "-t", "1", "-c", str(n_ctx), "-np", "1", "--no-webui"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama-server for {model} did not start")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


class FailingProxy:
    """Forwards every request to `target`; answers HTTP 500 to the `fail_after`+1-th and later
    requests whose path is `fail_path` (stdlib http.server, in a thread)."""

    def __init__(self, target: str, fail_path: str, fail_after: int) -> None:
        port = int(target.rsplit(":", 1)[1])
        state = {"seen": 0}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == fail_path:
                    state["seen"] += 1
                    if state["seen"] > fail_after:
                        self._answer(500, json.dumps({"error": {"code": 500, "message": "stand-in failure"}}).encode())
                        return
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request(self.command, self.path, body=body or None,
                             headers={"Content-Type": "application/json"} if body else {})
                resp = conn.getresponse()
                self._answer(resp.status, resp.read())
                conn.close()

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

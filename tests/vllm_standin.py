"""Test helper: a STAND-IN for vLLM's OpenAI-compatible server (vLLM cannot run on the test
machine: it needs a GPU and torch). It is not vLLM.

A real loopback HTTP server (stdlib http.server, in a thread) that speaks the request and
response shapes vLLM documents for GET /v1/models, POST /tokenize, POST /detokenize and
POST /v1/completions (token-id prompts, `logprobs`, `return_tokens_as_token_ids`, the
--max-logprobs cap, OpenAI's error object), and computes its answers with a REAL llama.cpp
model: the log-softmax of the model's real logits after the prompt, its top K. Like vLLM's
prefix cache it keeps the last sequence evaluated and evaluates only the tokens after the prefix
a new prompt shares with it (exact to the token; vLLM caches whole blocks), and reports the
reused count as usage.prompt_tokens_details.cached_tokens. `requests` records every completion
request body, `cached` the reused count of each.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec

PREFIX = "token_id:"


class VllmStandIn:
    """A vLLM stand-in serving `model` on 127.0.0.1 (see the module docstring).

    max_logprobs: the cap a real server takes from --max-logprobs (default 20);
    fail_after: answer HTTP 500 to every completion after this many; owned_by: what /v1/models
    says owns the model ("vllm"; anything else makes it an unknown engine).
    """

    def __init__(self, model: Path, *, n_ctx: int = 2048, max_logprobs: int = 20,
                 fail_after: int | None = None, owned_by: str = "vllm") -> None:
        self.backend = LlamaCppBackend(ModelSpec(str(model), n_ctx=n_ctx, threads=1, role="stand-in"))
        self.model_id, self.n_ctx, self.max_logprobs = Path(model).stem, n_ctx, max_logprobs
        self.fail_after, self.owned_by = fail_after, owned_by
        self.stopped = False
        self.requests: list[dict[str, Any]] = []
        self.cached: list[int] = []
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop answering, as a killed server would: open connections are closed unanswered,
        new ones refused; idempotent."""
        self.stopped = True
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self) -> None:
        self.stop()
        self.backend.close()

    # --- the endpoints: (status, JSON body) -------------------------------------------------

    def models(self) -> tuple[int, Any]:
        card = {"id": self.model_id, "object": "model", "created": int(time.time()), "owned_by": self.owned_by,
                "root": self.model_id, "parent": None, "max_model_len": self.n_ctx, "permission": []}
        return 200, {"object": "list", "data": [card]}

    def tokenize(self, body: dict[str, Any]) -> tuple[int, Any]:
        tokens = self.backend.tokenize(str(body["prompt"]), add_special=bool(body.get("add_special_tokens", True)),
                                       parse_special=True)
        return 200, {"count": len(tokens), "max_model_len": self.n_ctx, "tokens": tokens, "token_strs": None}

    def detokenize(self, body: dict[str, Any]) -> tuple[int, Any]:
        tokens = [int(t) for t in body["tokens"]]
        bad = [t for t in tokens if not 0 <= t < self.backend.n_vocab]
        if bad:
            return _error(400, f"Token id {bad[0]} is out of vocabulary")
        data = b"".join(self.backend.token_bytes(t) or self.backend.token_text(t).encode() for t in tokens)
        return 200, {"prompt": data.decode("utf-8", errors="replace")}

    def complete(self, body: dict[str, Any]) -> tuple[int, Any]:
        self.requests.append(body)
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            return _error(500, "stand-in failure", "InternalServerError")
        if body.get("model") not in (None, self.model_id):
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        k, prompt = int(body.get("logprobs") or 0), [int(t) for t in body["prompt"]]
        if k > self.max_logprobs:
            return _error(400, f"Requested sample logprobs of {k}, which is greater than max allowed: {self.max_logprobs}")
        if not prompt or any(not 0 <= t < self.backend.n_vocab for t in prompt):
            return _error(400, "the prompt is empty or holds a token id out of vocabulary")
        if len(prompt) + 1 > self.n_ctx:
            return _error(400, f"This model's maximum context length is {self.n_ctx} tokens.")
        logprobs, cached = self._logprobs_after(prompt)
        self.cached.append(cached)
        top = np.argsort(-logprobs, kind="stable")[: max(k, 1)]
        chosen = int(top[0])
        name = self._token_name if body.get("return_tokens_as_token_ids") else self._token_text
        top_logprobs = {name(int(t)): float(logprobs[t]) for t in top}
        choice = {"index": 0, "text": self._token_text(chosen),
                  "logprobs": {"text_offset": [0], "token_logprobs": [float(logprobs[chosen])],
                               "tokens": [name(chosen)], "top_logprobs": [top_logprobs]} if k else None,
                  "finish_reason": "length", "stop_reason": None, "prompt_logprobs": None}
        usage = {"prompt_tokens": len(prompt), "completion_tokens": 1, "total_tokens": len(prompt) + 1,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        return 200, {"id": f"cmpl-{len(self.requests)}", "object": "text_completion", "created": int(time.time()),
                     "model": self.model_id, "choices": [choice], "usage": usage}

    def _token_name(self, token: int) -> str:
        return f"{PREFIX}{token}"

    def _token_text(self, token: int) -> str:
        return self.backend.token_bytes(token).decode("utf-8", errors="replace")

    def _logprobs_after(self, prompt: list[int]) -> tuple[np.ndarray, int]:
        """float64 [n_vocab] log-softmax of the real logits after `prompt`, and how many leading
        prompt tokens came from the cache (the last token is always evaluated: its logits)."""
        slot = self.backend.slot
        shared = 0
        for a, b in zip(slot.tokens, prompt[:-1]):
            if a != b:
                break
            shared += 1
        slot.truncate(shared)
        logits = slot.decode(prompt[shared:]).logits.astype(np.float64)
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum()), shared

    def answer(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        with self._lock:
            if method == "GET" and path == "/v1/models":
                return self.models()
            routes = {"/tokenize": self.tokenize, "/detokenize": self.detokenize, "/v1/completions": self.complete}
            if method == "POST" and path in routes and isinstance(body, dict):
                try:
                    return routes[path](body)
                except (KeyError, TypeError, ValueError) as e:
                    return _error(400, f"bad request: {e}")
            return _error(404, "Not Found", "NotFoundError")


def _error(status: int, message: str, kind: str = "BadRequestError") -> tuple[int, Any]:
    """OpenAI's error object, as vLLM's ErrorResponse writes it."""
    return status, {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _handler(standin: VllmStandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if standin.stopped:
                self.close_connection = True
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, answer = _error(400, "the body is not JSON")
            else:
                status, answer = standin.answer(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

    return Handler

"""A large model behind llama.cpp's `llama-server` as a `Model`: `--large http://HOST:PORT`.

The server gives top-K log-probabilities only (no hidden states, no dense logits), so the model
declares Capabilities(hidden=False, dense=False, top_k=K). Its slot keeps locally the tokens it
has sent (`tokens`) and evaluates new ones by sending the whole sequence to POST /completion with
`cache_prompt`: the server's prefix cache evaluates only what it has not seen (timings.prompt_n).
Only the standard library is used (http.client), so importing this module is cheap.

Once a pair is loaded and the vocabularies are checked equal, `adopt_tokenizer` lets the local
small model answer the tokenizer questions (token bytes, template text, end-of-generation), so
no request is made per token for them.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np

from r2r_local.backends import Capabilities, Dist, VocabEntry
from r2r_local.config import ModelSpec
from r2r_local.errors import DecodeError, ModelLoadError, PromptTooLongError
from r2r_local.metering import ServedCounters
from r2r_local.server_bounds import DEFAULT_RETRIES as RETRIES
from r2r_local.server_bounds import DEFAULT_TIMEOUT_S as TIMEOUT_S
from r2r_local.server_bounds import DEFAULT_TOP_K, ServerBounds

BANNED_MAX = 8  # tokens banned, one after the other, to get past the incomplete-UTF-8 quirk


def is_remote(path: str | None) -> bool:
    """Whether a model "path" names a server (http:// or https://) rather than a GGUF file."""
    return bool(path) and str(path).lower().startswith(("http://", "https://"))


class ServerError(Exception):
    """A request failed; the message is one line. `status` is the HTTP status of an error answer,
    None when no answer came (refused, closed, timed out)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class LlamaServerClient:
    """JSON over HTTP to one llama-server, with bounded retries on connection failures/timeouts."""

    def __init__(self, url: str, timeout: float = TIMEOUT_S, retries: int = RETRIES) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelLoadError(f"large model {url}: not a server address (expected http://HOST:PORT)")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self.timeout, self.retries = timeout, retries
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        """The decoded JSON answer; raises ServerError with a one-line reason."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        last = ""
        for attempt in range(self.retries + 1):
            try:
                conn = self._connection()
                conn.request(method, self._base + path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                last = _describe(e, self.timeout)
                if attempt < self.retries:
                    time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status != 200:
                raise ServerError(f"{method} {path} answered HTTP {resp.status}: {_message(raw)}", resp.status)
            try:
                return json.loads(raw)
            except ValueError:
                raise ServerError(f"{method} {path} answered something that is not JSON") from None
        raise ServerError(last)  # the callers name the server

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _describe(e: BaseException, timeout: float) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(e, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        return "the server closed the connection (stopped?)"
    return f"{type(e).__name__}: {e}"


def _message(raw: bytes) -> str:
    """The message of an error answer: OpenAI's {"error": {"message"}} or a flat {"message"}."""
    try:
        answer = json.loads(raw)
        err = answer.get("error", answer)
        text = err.get("message", "") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        text = raw[:200].decode("utf-8", errors="replace")
    return " ".join(text.split()) or "no details"


class LlamaServerSlot:
    """The server's prefix cache as a `Slot` (see `r2r_local.backends.Slot`).

    Invariant: `tokens` is what this slot has sent and the server evaluated; every request sends
    tokens + new from position 0 with `cache_prompt`, so the server evaluates only the tokens its
    cache lacks (a server serving others may have evicted them: then it reads them again, slower,
    with the same result). `last_timings` keeps the server's timings of the last request;
    `counters` the running totals of the calls that answered (r2r_local.metering.ServedCounters).
    """

    def __init__(self, client: LlamaServerClient, n_ctx: int, n_vocab: int, top_k: int) -> None:
        self._client, self.n_ctx, self.top_k = client, n_ctx, top_k
        self.n_vocab = self.n_shared = n_vocab
        self.tokens: list[int] = []
        self.last_timings: dict[str, Any] = {}
        self.counters = ServedCounters()

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def limit_vocab(self, n_shared: int) -> None:
        self.n_shared = min(n_shared, self.n_vocab)

    def set_abort(self, check) -> None:  # type: ignore[no-untyped-def]
        """A request is one short HTTP call per step here: nothing to cut short."""

    def enable_hidden(self) -> None:
        raise ValueError("a model behind a server gives no hidden states")

    def decode(self, tokens: Sequence[int], *, hidden: bool = False) -> Dist:
        if hidden:
            raise ValueError("a model behind a server gives no hidden states")
        self._check(tokens)
        dist = self._next(self.tokens + list(tokens))
        self.tokens.extend(tokens)
        return dist

    def decode_all(self, tokens: Sequence[int], *, outputs: int) -> list[Dist]:
        """One request per output position, prefixes in increasing order: each extends the
        server's cache by the tokens since the previous one."""
        self._check(tokens)
        tokens = list(tokens)
        first = len(tokens) - max(1, min(outputs, len(tokens)))
        dists = []
        for end in range(first + 1, len(tokens) + 1):
            dists.append(self._next(self.tokens + tokens[:end]))
        self.tokens.extend(tokens)
        return dists

    def truncate(self, n_past: int) -> None:
        if n_past < 0 or n_past > self.n_past:
            raise ValueError(f"cannot truncate a cache of {self.n_past} tokens to {n_past}")
        del self.tokens[n_past:]  # the server keeps its cache; the next prompt shares its prefix

    def close(self) -> None:
        self._client.close()

    def _check(self, tokens: Sequence[int]) -> None:
        if not tokens:
            raise ValueError("decode needs at least one token")
        if self.n_past + len(tokens) > self.n_ctx:
            raise PromptTooLongError(f"large model: {self.n_past + len(tokens)} tokens do not fit the "
                                     f"server's context of {self.n_ctx} (start it with a larger -c)")
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise DecodeError(f"large model: token id {bad[0]} is outside its vocabulary")

    def _next(self, prompt: list[int]) -> Dist:
        """The top-K distribution after `prompt`. When the sampled token would leave incomplete
        UTF-8 the server sends no probabilities: that token is banned and the request repeated
        (the log-probabilities are of the raw logits, so the ban does not change them)."""
        start, server_ms = time.perf_counter(), [0.0]
        dist = self._ask(prompt, server_ms)
        self.counters = self.counters.plus(time.perf_counter() - start, server_ms[0] / 1000)
        return dist

    def _ask(self, prompt: list[int], server_ms: list[float]) -> Dist:
        """`_next`'s requests; adds each answer's compute (timings, ms) to server_ms[0]."""
        banned: list[list[Any]] = []
        for _ in range(BANNED_MAX + 1):
            body = {"prompt": prompt, "n_predict": 1, "n_probs": self.top_k, "cache_prompt": True,
                    "temperature": 0, "return_tokens": True, "logit_bias": banned}
            try:
                answer = self._client.request("POST", "/completion", body)
            except ServerError as e:
                raise DecodeError(f"large model {self._client.url}: {e}") from None
            self.last_timings = timings = answer.get("timings", {})
            server_ms[0] += float(timings.get("prompt_ms", 0.0)) + float(timings.get("predicted_ms", 0.0))
            probs = answer.get("completion_probabilities")
            if probs:
                return self._dist(probs[0].get("top_logprobs", []))
            sampled = answer.get("tokens") or []
            if not sampled:
                break
            banned.append([int(sampled[0]), False])
        raise DecodeError(f"large model {self._client.url}: the server gave no log-probabilities")

    def _dist(self, top: list[dict[str, Any]]) -> Dist:
        ids = np.array([int(e["id"]) for e in top], dtype=np.int64)
        logprobs = np.array([float(e["logprob"]) for e in top], dtype=np.float32)
        keep = ids < self.n_shared
        if not keep.any():
            raise DecodeError(f"large model {self._client.url}: no log-probabilities inside the shared vocabulary")
        ids, logprobs = ids[keep], logprobs[keep]
        order = np.argsort(-logprobs, kind="stable")
        return Dist(None, None, ids[order], logprobs[order])


class LlamaServerModel:
    """A model served by llama-server; see `r2r_local.backends.Model` for the contract.

    `spec.path` is the server's address. Loading checks /health and reads /v1/models (vocabulary
    size, context, sizes) and /props (BOS/EOS, chat template); a server that is not there, not
    ready or not llama-server is refused in one line (ModelLoadError). `spec.server` bounds the
    requests (timeout, retries, top-K; the defaults when None).
    """

    cpu_threads = 0  # computes elsewhere
    engine = "llama-server"

    def __init__(self, spec: ModelSpec) -> None:
        self.path, self.role = spec.path.rstrip("/"), spec.role
        bounds = spec.server or ServerBounds()
        top_k = bounds.top_k or DEFAULT_TOP_K
        self.caps = Capabilities(hidden=False, dense=False, top_k=top_k, concurrent=True, served=True)
        self._client = LlamaServerClient(self.path, timeout=bounds.timeout_s, retries=bounds.retries)
        self._local: Any = None  # a local model with the same vocabulary (adopt_tokenizer)
        self._texts: dict[int, str] = {}
        try:
            self._client.request("GET", "/health")
            served = self._client.request("GET", "/v1/models")["data"][0]
            meta, self.model_id = served["meta"], str(served.get("id", ""))
            props = self._client.request("GET", "/props")
            self.n_vocab, self.n_embd = int(meta["n_vocab"]), int(meta["n_embd"])
            self.n_params, n_ctx = int(meta["n_params"]), int(meta["n_ctx"])
            self.chat_template = props.get("chat_template") or None
            self.bos_token = self._special_id(props.get("bos_token"))
            self.eos_token = self._special_id(props.get("eos_token"))
            with_special = self.tokenize("a", add_special=True, parse_special=False)
            self.add_bos = self.bos_token is not None and with_special[:1] == [self.bos_token]
        except ServerError as e:
            self._client.close()
            raise ModelLoadError(f"{self.role} model {self.path}: {e}") from None
        except (KeyError, IndexError, TypeError, ValueError, DecodeError) as e:
            self._client.close()
            raise ModelLoadError(f"{self.role} model {self.path}: not a llama-server answer ({type(e).__name__}: {e})") from None
        self.slot = LlamaServerSlot(self._client, n_ctx, self.n_vocab, top_k)

    def _special_id(self, text: str | None) -> int | None:
        if not text:
            return None
        ids = self.tokenize(text, add_special=False, parse_special=True)
        return ids[0] if len(ids) == 1 else None

    def adopt_tokenizer(self, local: Any) -> None:
        """Answer tokenizer questions with `local`, a model whose vocabulary was checked equal."""
        self._local = local

    # --- text ---------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        if self._local is not None:
            return self._local.tokenize(text, add_special=add_special, parse_special=parse_special)
        answer = self._call("POST", "/tokenize", {"content": text, "add_special": add_special,
                                                  "parse_special": parse_special})
        return [int(t) for t in answer["tokens"]]

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The server's text for `tokens` (control tokens rendered)."""
        return str(self._call("POST", "/detokenize", {"tokens": list(tokens)})["content"])

    def token_bytes(self, token: int) -> bytes:
        if self._local is not None:
            return self._local.token_bytes(token)
        return b"" if self.is_eog(token) or token == self.bos_token else self.token_text(token).encode()

    def token_text(self, token: int) -> str:
        if self._local is not None:
            return self._local.token_text(token)
        if token not in self._texts:
            self._texts[token] = self.detokenize([token])
        return self._texts[token]

    def is_eog(self, token: int) -> bool:
        if self._local is not None:
            return self._local.is_eog(token)
        return token == self.eos_token

    def vocab(self) -> list[VocabEntry]:
        if self._local is not None:
            return self._local.vocab()
        raise NotImplementedError("a server's vocabulary is compared by sampling (r2r_local.backends.remote.check_pairing)")

    def embedding_row(self, token: int) -> np.ndarray:
        raise NotImplementedError("a model behind a server gives no embeddings")

    def _call(self, method: str, path: str, body: dict) -> Any:
        try:
            return self._client.request(method, path, body)
        except ServerError as e:
            raise DecodeError(f"{self.role} model {self.path}: {e}") from None

    def close(self) -> None:
        self._client.close()


PAIRING_TEXT = "Hello, world! 123 + 4.5 = x\n\tdéjà vu — ∑ 東京 🙂"
PAIRING_CHUNK = 2048  # tokens compared per /detokenize request


def check_pairing(small: Any, remote: Any, small_path: str) -> int:
    """The shared vocabulary size of a local small model and a served model, after comparing the
    vocabulary sizes (when the server reports one: `remote.n_vocab` 0 means it does not; rows past
    the shorter one must be padding, as for an in-process pair), the text of every real shared
    token (not padding, whole UTF-8 on its own; in chunks of PAIRING_CHUNK, one
    `remote.detokenize` each) and the tokenization of a sample text.
    Raises VocabMismatchError naming both in one line."""
    from r2r_local.errors import VocabMismatchError
    from r2r_local.vocab import is_padding

    def mismatch(what: str) -> VocabMismatchError:
        return VocabMismatchError(f"{small_path} and {remote.path} have different vocabularies: {what}")

    n = min(small.n_vocab, remote.n_vocab) if remote.n_vocab else small.n_vocab
    if remote.n_vocab and not _only_padding_past(small, remote, n):
        raise mismatch(f"{small.n_vocab} tokens in the small model, {remote.n_vocab} in the served one, "
                       "and the extra ones are not padding")
    entries = small.vocab()
    texts = {t: small.token_text(t) for t in range(n) if not is_padding(entries[t])}
    whole = [t for t, text in texts.items() if text and "\ufffd" not in text]
    for start in range(0, len(whole), PAIRING_CHUNK):
        chunk = whole[start : start + PAIRING_CHUNK]
        if remote.detokenize(chunk) == "".join(texts[t] for t in chunk):
            continue
        for token in chunk:  # find the token to name (rare path: one request per token)
            theirs = remote.detokenize([token])
            if theirs != texts[token]:
                raise mismatch(f"token {token} is {texts[token][:40]!r} in the small model and "
                               f"{theirs[:40]!r} in the served one")
        raise mismatch(f"tokens {chunk[0]}..{chunk[-1]} read differently")
    mine_ids = small.tokenize(PAIRING_TEXT, add_special=False, parse_special=False)
    theirs_ids = remote.tokenize(PAIRING_TEXT, add_special=False, parse_special=False)
    if mine_ids != theirs_ids:
        raise mismatch("a sample text tokenizes differently")
    return n


def _only_padding_past(small: Any, remote: Any, n: int) -> bool:
    """Whether the rows of the longer vocabulary past `n` are padding: the small model's by its
    vocabulary entries, the served model's by their text (llama-server gives padding, an UNUSED
    token, no text; a real token, control tokens included, has some)."""
    from r2r_local.vocab import is_padding

    if small.n_vocab > n:
        return all(is_padding(e) for e in small.vocab()[n:])
    extra = list(range(n, remote.n_vocab))
    return all(remote.detokenize(extra[i : i + PAIRING_CHUNK]) == "" for i in range(0, len(extra), PAIRING_CHUNK))

"""A large model behind vLLM's OpenAI-compatible server as a `Model`: `--large http://HOST:PORT`.

Every large-model call is one POST /v1/completions with the whole sequence as token ids (vLLM
adds no BOS to a token-id prompt: the sequence already holds it where the model wants it),
`max_tokens: 1`, `temperature: 0`, `logprobs: K` and `return_tokens_as_token_ids` (the keys of
`top_logprobs` are then "token_id:123", never ambiguous text). vLLM's automatic prefix caching
evaluates only what its cache lacks. vLLM's log-probabilities are of the raw logits (before
temperature and penalties), so the top-K is the model's own distribution, truncated to K; K is
capped by the server's --max-logprobs (20 unless raised), hence VLLM_TOP_K.

`decode_all` (for --spec K and --verify) sends one request per output position, as the
llama-server slot does: vLLM's `prompt_logprobs` would give them in one request, but vLLM reads
the whole prompt again for it (it skips its prefix cache when prompt log-probabilities are
asked), so one request per position, each a cache hit, costs far less on a long context.

vLLM reports neither the vocabulary size nor BOS/EOS or the chat template in /v1/models: the
vocabulary is compared token by token (/detokenize, /tokenize) at connect time, and afterwards
the local small model answers the tokenizer questions (`adopt_tokenizer`). The HTTP client, its
retries and its error wording are the llama-server backend's (r2r_local.backends.remote).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from r2r_local.backends import Capabilities, Dist, VocabEntry
from r2r_local.backends.remote import LlamaServerClient, LlamaServerSlot, ServerError
from r2r_local.config import ModelSpec
from r2r_local.errors import DecodeError, ModelLoadError
from r2r_local.metering import ServedCounters
from r2r_local.server_bounds import VLLM_TOP_K, ServerBounds

TOKEN_ID_PREFIX = "token_id:"
UNKNOWN_VOCAB = 2**31 - 1  # the slot's vocabulary bound until the local tokenizer is adopted


def is_vllm(card: Any) -> bool:
    """Whether a /v1/models entry is vLLM's (its ModelCard says owned_by "vllm")."""
    return isinstance(card, dict) and card.get("owned_by") == "vllm"


def parse_top_logprobs(answer: Any) -> list[dict[str, Any]]:
    """The top log-probabilities of a /v1/completions answer's first generated token, as
    [{"id": int, "logprob": float}] (any order). Raises ValueError naming what is missing."""
    try:
        logprobs = answer["choices"][0]["logprobs"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("the answer has no choices[0].logprobs") from None
    top = (logprobs or {}).get("top_logprobs") or []
    if not top or not isinstance(top[0], dict) or not top[0]:
        raise ValueError("the answer has no top_logprobs (was logprobs asked for?)")
    entries = []
    for key, value in top[0].items():
        if not str(key).startswith(TOKEN_ID_PREFIX):
            raise ValueError(f"top_logprobs key {str(key)[:40]!r} is not a token id "
                             "(the server ignored return_tokens_as_token_ids)")
        entries.append({"id": int(str(key)[len(TOKEN_ID_PREFIX):]), "logprob": float(value)})
    return entries


def _too_many_logprobs(e: ServerError) -> bool:
    text = str(e).lower()
    return e.status == 400 and "logprobs" in text and ("max" in text or "greater" in text)


class VllmSlot(LlamaServerSlot):
    """vLLM's prefix cache as a `Slot`: the llama-server slot's bookkeeping (tokens sent,
    truncation, one request per output position), with requests in vLLM's completions shape.
    `last_usage` keeps the `usage` of the last answer (vLLM adds
    prompt_tokens_details.cached_tokens when started with --enable-prompt-tokens-details)."""

    def __init__(self, client: LlamaServerClient, n_ctx: int, n_vocab: int, top_k: int, model_id: str) -> None:
        super().__init__(client, n_ctx, n_vocab, top_k)
        self.model_id = model_id
        self.last_usage: dict[str, Any] = {}
        self.counters = ServedCounters(timed=False)  # vLLM's answers carry no compute time

    def _ask(self, prompt: list[int], server_ms: list[float]) -> Dist:
        """The top-K distribution after `prompt` (token ids, from position 0); one request
        (`_next` times it; vLLM reports no compute, so server_ms stays as it is)."""
        body = {"model": self.model_id, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                "logprobs": self.top_k, "return_tokens_as_token_ids": True}
        try:
            answer = self._client.request("POST", "/v1/completions", body)
        except ServerError as e:
            raise DecodeError(self._reason(e)) from None
        self.last_usage = (answer.get("usage") or {}) if isinstance(answer, dict) else {}
        try:
            top = parse_top_logprobs(answer)
        except ValueError as e:
            raise DecodeError(f"large model {self._client.url}: {e}") from None
        return self._dist(top)

    def _reason(self, e: ServerError) -> str:
        if _too_many_logprobs(e):
            return (f"large model {self._client.url}: vLLM gives fewer than {self.top_k} log-probabilities "
                    f"per token ({e}): start it with --max-logprobs {self.top_k} or lower the top-K")
        return f"large model {self._client.url}: {e}"


class VllmModel:
    """A model served by vLLM; see `r2r_local.backends.Model` for the contract.

    `card` is the server's /v1/models entry (read here when not given). Loading reads the served
    model's id and max_model_len, finds out whether the tokenizer adds BOS (/tokenize with and
    without special tokens) and asks for one completion, so a server whose --max-logprobs is
    below the top-K is refused at start in one line (ModelLoadError). n_vocab is 0 until
    `adopt_tokenizer` (vLLM does not report it); n_embd and n_params are 0 (not reported).
    """

    cpu_threads = 0  # computes elsewhere
    n_embd = 0
    n_params = 0
    engine = "vLLM"
    chat_template: str | None = None
    eos_token: int | None = None

    def __init__(self, spec: ModelSpec, *, card: dict[str, Any] | None = None) -> None:
        """`spec.server` bounds the requests (timeout, retries, top-K: VLLM_TOP_K when not given);
        `card`: the server's /v1/models entry when the caller has read it already."""
        self.path, self.role = spec.path.rstrip("/"), spec.role
        bounds = spec.server or ServerBounds()
        top_k = bounds.top_k or VLLM_TOP_K
        self.caps = Capabilities(hidden=False, dense=False, top_k=top_k, concurrent=True, served=True)
        self._client = LlamaServerClient(self.path, timeout=bounds.timeout_s, retries=bounds.retries)
        self._local: Any = None  # a local model with the same vocabulary (adopt_tokenizer)
        self.n_vocab = 0
        try:
            card = card if card is not None else self._client.request("GET", "/v1/models")["data"][0]
            self.model_id, max_len = str(card["id"]), int(card["max_model_len"])
            self.n_ctx = min(max_len, spec.n_ctx)
            plain = self._tokenize("a", add_special=False)
            with_special = self._tokenize("a", add_special=True)
            self.add_bos = len(with_special) == len(plain) + 1 and with_special[1:] == plain
            self.bos_token = with_special[0] if self.add_bos else None
            self.slot = VllmSlot(self._client, self.n_ctx, UNKNOWN_VOCAB, top_k, self.model_id)
            self.slot._next(with_special)  # a first completion: the server takes K log-probabilities
        except ServerError as e:
            self._client.close()
            raise ModelLoadError(f"{self.role} model {self.path}: {e}") from None
        except DecodeError as e:
            self._client.close()
            raise ModelLoadError(str(e)) from None
        except (KeyError, IndexError, TypeError, ValueError) as e:
            self._client.close()
            raise ModelLoadError(f"{self.role} model {self.path}: not a vLLM answer ({type(e).__name__}: {e})") from None

    def adopt_tokenizer(self, local: Any) -> None:
        """Answer tokenizer questions with `local`, a model whose vocabulary was checked equal;
        its vocabulary size becomes this model's (token ids are checked against it)."""
        self._local = local
        self.n_vocab = self.slot.n_vocab = self.slot.n_shared = int(local.n_vocab)
        self.bos_token, self.eos_token = local.bos_token, local.eos_token
        self.chat_template = local.chat_template

    # --- text ---------------------------------------------------------------------------------

    def _tokenize(self, text: str, *, add_special: bool) -> list[int]:
        answer = self._client.request("POST", "/tokenize", {"model": self.model_id, "prompt": text,
                                                            "add_special_tokens": add_special})
        return [int(t) for t in answer["tokens"]]

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """vLLM's tokenizer always reads special-token text as special tokens (parse_special is
        honoured once the local tokenizer is adopted)."""
        if self._local is not None:
            return self._local.tokenize(text, add_special=add_special, parse_special=parse_special)
        try:
            return self._tokenize(text, add_special=add_special)
        except ServerError as e:
            raise DecodeError(f"{self.role} model {self.path}: {e}") from None

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The server's text for `tokens` (POST /detokenize)."""
        try:
            answer = self._client.request("POST", "/detokenize", {"model": self.model_id, "tokens": list(tokens)})
        except ServerError as e:
            raise DecodeError(f"{self.role} model {self.path}: {e}") from None
        return str(answer["prompt"])

    def _adopted(self) -> Any:
        if self._local is None:
            raise NotImplementedError("vLLM's tokenizer is compared by sampling (r2r_local.backends.remote.check_pairing)")
        return self._local

    def token_bytes(self, token: int) -> bytes:
        return self._adopted().token_bytes(token)

    def token_text(self, token: int) -> str:
        return self._adopted().token_text(token)

    def is_eog(self, token: int) -> bool:
        return self._adopted().is_eog(token)

    def vocab(self) -> list[VocabEntry]:
        return self._adopted().vocab()

    def embedding_row(self, token: int) -> np.ndarray:
        raise NotImplementedError("a model behind a server gives no embeddings")

    def close(self) -> None:
        self._client.close()

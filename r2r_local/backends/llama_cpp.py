"""llama.cpp through llama-cpp-python's low-level bindings: the only module that imports llama_cpp.

One `LlamaCppBackend` owns a model, a context (one sequence) and a reusable batch. Context
creation with `embeddings=True` makes every token of a batch an output (llama.cpp ignores the
per-token flags then), so multi-token batches run with embeddings switched off and only the
final single-token evaluation switches them on when a hidden state is wanted.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

import llama_cpp as C

from r2r_local.backends import N_BATCH, Output, VocabEntry
from r2r_local.backends.gguf_file import EmbeddingTable, check_gguf_path
from r2r_local.config import ModelSpec
from r2r_local.errors import DecodeError, ModelLoadError, PromptTooLongError

log = logging.getLogger("r2r_local.llama")

# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continue the previous line
_LEVEL_NAMES = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_init_lock = threading.Lock()
_initialised = False
_recent_errors: deque[str] = deque(maxlen=8)
_log_partial: list[str] = []
_log_level = [logging.DEBUG]


_interrupt_pending = [False]


@C.llama_log_callback
def _log_callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    """Forward llama.cpp's log to `logging`; remember recent errors for load messages.

    An exception cannot travel through llama.cpp's C frames (ctypes prints and drops it), so a
    Ctrl-C that lands in here is kept and raised again once the C call returns
    (`_raise_if_interrupted`); any other failure to log is dropped quietly."""
    try:
        _log(level, text)
    except KeyboardInterrupt:
        _interrupt_pending[0] = True
    except Exception:
        pass


def _raise_if_interrupted() -> None:
    if _interrupt_pending[0]:
        _interrupt_pending[0] = False
        raise KeyboardInterrupt


def _log(level: int, text: bytes) -> None:
    piece = (text or b"").decode("utf-8", errors="replace")
    if level != 5:
        _log_level[0] = _LEVEL_NAMES.get(level, logging.DEBUG)
    _log_partial.append(piece)
    if not piece.endswith("\n"):
        return
    line = "".join(_log_partial).rstrip()
    _log_partial.clear()
    if _log_level[0] >= logging.ERROR:
        _recent_errors.append(line)
    log.log(_log_level[0], "%s", line)


def _ensure_backend() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            if C.llama_supports_gpu_offload() and os.environ.get("R2R_LLAMA_LOG") != "1":
                # Measured on an H200 with a CUDA build: loading a model with GPU layers crashed
                # (SIGSEGV inside llama_model_load_from_file) whenever this Python log callback was
                # installed, and loaded fine without it. Until that is understood, GPU builds keep
                # llama-cpp-python's own callback, silenced; load errors then carry a generic reason.
                logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
            else:
                C.llama_log_set(_log_callback, ctypes.c_void_p(0))
            C.llama_backend_init()
            _initialised = True
    _raise_if_interrupted()


def _threads(spec: ModelSpec) -> int:
    return spec.threads or max(1, os.cpu_count() or 1)


def supports_gpu_offload() -> bool:
    """Whether this llama-cpp-python build can put layers on a GPU."""
    return bool(C.llama_supports_gpu_offload())


def _last_error(default: str) -> str:
    """The first error llama.cpp logged since the last clear (the later ones only repeat it)."""
    if not _recent_errors:
        return default
    reason = _recent_errors[0].split(": ", 1)[-1]
    if reason.startswith("failed to read"):
        reason += " (the file is truncated or corrupt)"
    return reason


@dataclass(frozen=True)
class PositionOutputs:
    """Outputs at every evaluated position: argmax int64 [n], topk float32 [n,k] (descending),
    hidden float32 [n,d]."""

    argmax: np.ndarray
    topk: np.ndarray
    hidden: np.ndarray


class LlamaCppBackend:
    """A GGUF model with one KV cache; see `r2r_local.backends.Backend` for the contract."""

    def __init__(self, spec: ModelSpec, *, want_hidden: bool = False) -> None:
        path = check_gguf_path(spec.path, spec.role)
        _ensure_backend()
        self.path = str(path)
        self.role = spec.role
        self._model = self._ctx = None
        self._batch = None
        _recent_errors.clear()
        mparams = C.llama_model_default_params()
        mparams.n_gpu_layers = spec.n_gpu_layers if spec.n_gpu_layers >= 0 else 1_000_000
        model = C.llama_model_load_from_file(self.path.encode(), mparams)
        if model and _interrupt_pending[0]:
            C.llama_model_free(model)
        _raise_if_interrupted()
        if not model:
            reason = _last_error("llama.cpp could not load it (truncated or corrupt GGUF?)")
            raise ModelLoadError(f"{spec.role} model {self.path}: {reason}")
        self._model = model
        self._vocab = C.llama_model_get_vocab(model)
        self.n_vocab = int(C.llama_vocab_n_tokens(self._vocab))
        self.n_embd = int(C.llama_model_n_embd(model))
        self.n_layer = int(C.llama_model_n_layer(model))
        self.n_params = int(C.llama_model_n_params(model))
        self.size_bytes = int(C.llama_model_size(model))
        self._want_hidden = want_hidden
        self._spec = spec
        self._ctx = self._new_context(spec, embeddings=want_hidden)
        self.n_ctx = int(C.llama_n_ctx(self._ctx))
        self._mem = C.llama_get_memory(self._ctx)
        self._n_batch = int(C.llama_n_batch(self._ctx))
        self._batch = C.llama_batch_init(self._n_batch, 0, 1)
        self._embeddings_on = want_hidden
        self.tokens: list[int] = []  # what the cache holds, position by position
        self._pieces: dict[int, bytes] = {}
        self._table = EmbeddingTable(self.path)
        self.chat_template = self._read_chat_template()
        self.add_bos = bool(C.llama_vocab_get_add_bos(self._vocab))
        bos = int(C.llama_vocab_bos(self._vocab))
        self.bos_token = bos if bos >= 0 else None
        eos = int(C.llama_vocab_eos(self._vocab))
        self.eos_token = eos if eos >= 0 else None

    def enable_hidden(self) -> None:
        """Make hidden states available (a context with embeddings output). Loading without them
        keeps plain contexts for routers that never read hidden states; switching recreates the
        context, so the cache starts empty."""
        if self._want_hidden:
            return
        batch, ctx, self._batch, self._ctx = self._batch, self._ctx, None, None
        self.tokens = []
        if batch is not None:
            C.llama_batch_free(batch)
        if ctx:
            C.llama_free(ctx)
        self._ctx = self._new_context(self._spec, embeddings=True)  # on failure: no context, asked again
        self._want_hidden = self._embeddings_on = True
        self._mem = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(self._n_batch, 0, 1)

    def _new_context(self, spec: ModelSpec, *, embeddings: bool):
        cparams = C.llama_context_default_params()
        cparams.n_ctx = spec.n_ctx
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = N_BATCH
        threads = _threads(spec)
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.embeddings = embeddings
        cparams.pooling_type = C.LLAMA_POOLING_TYPE_NONE
        cparams.no_perf = True
        ctx = C.llama_init_from_model(self._model, cparams)
        if ctx and _interrupt_pending[0]:
            C.llama_free(ctx)
        _raise_if_interrupted()
        if not ctx:
            reason = _last_error("llama.cpp could not create a context (out of memory?)")
            raise ModelLoadError(f"{spec.role} model {self.path}: {reason} (n_ctx={spec.n_ctx})")
        return ctx

    def _read_chat_template(self) -> str | None:
        raw = C.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    # --- text ---------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (C.llama_token * cap)()
            n = C.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            raise DecodeError(f"{self.role} model {self.path}: tokenization failed")
        return list(buf[:n])

    def _piece(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def token_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._piece(token, special=False)
        return piece

    def token_text(self, token: int) -> str:
        return self._piece(token, special=True).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self._vocab, token))

    def vocab(self) -> list[VocabEntry]:
        unused = C.LLAMA_TOKEN_ATTR_UNUSED
        entries = []
        for i in range(self.n_vocab):
            text = C.llama_vocab_get_text(self._vocab, i) or b""
            attr = int(C.llama_vocab_get_attr(self._vocab, i))
            entries.append(VocabEntry(text, bool(attr & unused)))
        return entries

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None."""
        buf = ctypes.create_string_buffer(512)
        n = C.llama_model_meta_val_str(self._model, key.encode(), buf, 512)
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    # --- evaluation -----------------------------------------------------------------------------

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def decode(self, tokens: Sequence[int], *, hidden: bool = False) -> Output:
        if not self._ctx or self._batch is None:
            raise DecodeError(f"{self.role} model {self.path}: no context (closed, or its creation failed)")
        if not tokens:
            raise ValueError("decode needs at least one token")
        if hidden and not self._want_hidden:
            raise ValueError("this backend was loaded without hidden-state output")
        if self.n_past + len(tokens) > self.n_ctx:
            raise PromptTooLongError(
                f"{self.role} model: {self.n_past + len(tokens)} tokens do not fit the context "
                f"of {self.n_ctx} (raise --n-ctx)"
            )
        tokens = list(tokens)
        bulk, last = tokens[:-1] if hidden else tokens, tokens[-1:] if hidden else []
        if bulk:
            self._set_embeddings(False)
        step = self._n_batch
        for start in range(0, len(bulk), step):
            chunk = bulk[start : start + step]
            final = not last and start + step >= len(bulk)
            self._run(chunk, output_last=final)
        if last:
            self._set_embeddings(True)
            self._run(last, output_last=True)
        return self._read_output(hidden)

    def decode_positions(self, tokens: Sequence[int], topk: int = 100) -> "PositionOutputs":
        """Evaluate `tokens` (appended at n_past) with an output at *every* position, as the
        labelling pipeline needs: per position the argmax, the top-k raw logits (descending) and
        the final hidden state. Runs in chunks of n_batch so only one chunk's logits are ever held.
        """
        if not self._want_hidden:
            raise ValueError("this backend was loaded without hidden-state output")
        if self.n_past + len(tokens) > self.n_ctx:
            raise PromptTooLongError(f"{self.role} model: {self.n_past + len(tokens)} tokens do not fit the context of {self.n_ctx}")
        from r2r_local.router.features import topk_logits

        n = len(tokens)
        argmax = np.empty(n, dtype=np.int64)
        top = np.empty((n, topk), dtype=np.float32)
        hidden = np.empty((n, self.n_embd), dtype=np.float32)
        self._set_embeddings(True)  # embeddings on: llama.cpp outputs every token of the batch
        for start in range(0, n, self._n_batch):
            chunk = list(tokens[start : start + self._n_batch])
            self._run(chunk, output_last=True)
            for j in range(len(chunk)):
                logits = np.ctypeslib.as_array(C.llama_get_logits_ith(self._ctx, j), shape=(self.n_vocab,))
                argmax[start + j] = int(np.argmax(logits))
                top[start + j] = topk_logits(logits, topk)
                hidden[start + j] = np.ctypeslib.as_array(C.llama_get_embeddings_ith(self._ctx, j), shape=(self.n_embd,))
        return PositionOutputs(argmax, top, hidden)

    def _set_embeddings(self, on: bool) -> None:
        if self._want_hidden and self._embeddings_on != on:
            C.llama_set_embeddings(self._ctx, on)
            self._embeddings_on = on

    def _run(self, chunk: Sequence[int], *, output_last: bool) -> None:
        b = self._batch
        n = len(chunk)
        for i, tok in enumerate(chunk):
            if not 0 <= tok < self.n_vocab:
                raise DecodeError(f"{self.role} model: token id {tok} is outside its vocabulary")
            b.token[i] = tok
            b.pos[i] = self.n_past + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 0
        if output_last:
            b.logits[n - 1] = 1
        b.n_tokens = n
        _recent_errors.clear()
        rc = C.llama_decode(self._ctx, b)
        if rc == 0:
            self.tokens.extend(chunk)  # before a Ctrl-C from the log is raised: the cache holds them
        _raise_if_interrupted()
        if rc != 0:
            self.truncate(self.n_past)
            reason = "the context is full" if rc == 1 else _last_error(f"llama_decode returned {rc}")
            raise DecodeError(f"{self.role} model {self.path}: decoding failed: {reason}")

    def _read_output(self, hidden: bool) -> Output:
        ptr = C.llama_get_logits_ith(self._ctx, -1)
        if not ptr:
            raise DecodeError(f"{self.role} model: llama.cpp returned no logits")
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
        h = None
        if hidden:
            hptr = C.llama_get_embeddings_ith(self._ctx, -1)
            if not hptr:
                raise DecodeError(f"{self.role} model: llama.cpp returned no hidden state")
            h = np.ctypeslib.as_array(hptr, shape=(self.n_embd,)).copy()
        return Output(logits, h)

    def truncate(self, n_past: int) -> None:
        if n_past < 0 or n_past > self.n_past:
            raise ValueError(f"cannot truncate a cache of {self.n_past} tokens to {n_past}")
        C.llama_memory_seq_rm(self._mem, 0, n_past, -1)
        del self.tokens[n_past:]

    def embedding_row(self, token: int) -> np.ndarray:
        return self._table.row(token)

    @property
    def cpu_threads(self) -> int:
        """llama.cpp threads this model computes with on the CPU (0 when every layer is on a GPU)."""
        if self._spec.n_gpu_layers == -1 and supports_gpu_offload():
            return 0
        return _threads(self._spec)

    # --- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        # Each handle is taken before it is freed: an interrupt (Ctrl-C) between the two leaks it
        # instead of leaving it for __del__ to free a second time.
        batch, self._batch = self._batch, None
        if batch is not None:
            C.llama_batch_free(batch)
        ctx, self._ctx = self._ctx, None
        if ctx:
            C.llama_free(ctx)
        model, self._model = self._model, None
        if model:
            C.llama_model_free(model)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the bindings may already be gone
            pass

    def __enter__(self) -> "LlamaCppBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- quantization ---------------------------------------------------------------------------------

def quantize_types() -> list[str]:
    """Names accepted by `quantize_gguf` (llama.cpp's file types, e.g. 'Q8_0', 'Q4_K_M')."""
    prefix = "LLAMA_FTYPE_MOSTLY_"
    names = [n[len(prefix):] for n in dir(C) if n.startswith(prefix)]
    return sorted(names + ["F32"])


def quantize_gguf(src: str, dst: str, ftype_name: str, *, threads: int | None = None) -> None:
    """Write `src` quantized to `ftype_name` at `dst` with llama.cpp's own quantizer.

    Raises ConfigError for an unknown type and ModelLoadError when llama.cpp refuses `src`.
    """
    from r2r_local.errors import ConfigError

    name = ftype_name.upper()
    ftype = C.LLAMA_FTYPE_ALL_F32 if name == "F32" else getattr(C, f"LLAMA_FTYPE_MOSTLY_{name}", None)
    if ftype is None:
        raise ConfigError(f"unknown quantization type {ftype_name!r} (known: {', '.join(quantize_types())})")
    check_gguf_path(src, "input")
    _ensure_backend()
    _recent_errors.clear()
    params = C.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or 0
    params.allow_requantize = True
    rc = C.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    _raise_if_interrupted()
    if rc != 0:
        raise ModelLoadError(f"input {src}: {_last_error(f'llama.cpp could not quantize it (code {rc})')}")

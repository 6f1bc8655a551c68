"""llama.cpp through llama-cpp-python's low-level bindings: the `Model` (its slot: llama_slot.py).

With llama_slot.py and llama_runtime.py (process-wide init, log, errors, quantization), the only
modules that import llama_cpp. `LlamaCppBackend` owns a model and its tokenizer; its `slot` owns
one context (one sequence).
"""

from __future__ import annotations

import ctypes
import numpy as np

import llama_cpp as C

from r2r_local.backends import Capabilities, VocabEntry
from r2r_local.backends.gguf_file import EmbeddingTable, check_gguf_path
from r2r_local.backends.llama_runtime import (  # noqa: F401  (re-exported for callers of this module)
    _interrupt_pending, clear_errors, ensure_backend, last_error, quantize_gguf, quantize_types,
    raise_if_interrupted, supports_gpu_offload)
from r2r_local.backends.llama_slot import LlamaCppSlot, PositionOutputs, threads_of  # noqa: F401
from r2r_local.config import ModelSpec
from r2r_local.errors import DecodeError, ModelLoadError


class LlamaCppBackend:
    """A GGUF model and its slot; see `r2r_local.backends.Model` for the contract."""

    caps = Capabilities(hidden=True, dense=True, concurrent=True)

    def __init__(self, spec: ModelSpec, *, want_hidden: bool = False) -> None:
        path = check_gguf_path(spec.path, spec.role)
        ensure_backend()
        self.path = str(path)
        self.role = spec.role
        self._model = None
        self.slot: LlamaCppSlot | None = None
        clear_errors()
        mparams = C.llama_model_default_params()
        mparams.n_gpu_layers = spec.n_gpu_layers if spec.n_gpu_layers >= 0 else 1_000_000
        model = C.llama_model_load_from_file(self.path.encode(), mparams)
        if model and _interrupt_pending[0]:
            C.llama_model_free(model)
        raise_if_interrupted()
        if not model:
            reason = last_error("llama.cpp could not load it (truncated or corrupt GGUF?)")
            raise ModelLoadError(f"{spec.role} model {self.path}: {reason}")
        self._model = model
        self._vocab = C.llama_model_get_vocab(model)
        self.n_vocab = int(C.llama_vocab_n_tokens(self._vocab))
        self.n_embd = int(C.llama_model_n_embd(model))
        self.n_layer = int(C.llama_model_n_layer(model))
        self.n_params = int(C.llama_model_n_params(model))
        self.size_bytes = int(C.llama_model_size(model))
        self._spec = spec
        self.slot = LlamaCppSlot(self, spec, want_hidden)
        self.n_ctx = self.slot.n_ctx
        self._pieces: dict[int, bytes] = {}
        self._table = EmbeddingTable(self.path)
        self.chat_template = self._read_chat_template()
        self.add_bos = bool(C.llama_vocab_get_add_bos(self._vocab))
        bos = int(C.llama_vocab_bos(self._vocab))
        self.bos_token = bos if bos >= 0 else None
        eos = int(C.llama_vocab_eos(self._vocab))
        self.eos_token = eos if eos >= 0 else None

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

    def embedding_row(self, token: int) -> np.ndarray:
        return self._table.row(token)

    @property
    def cpu_threads(self) -> int:
        """llama.cpp threads this model computes with on the CPU (0 when every layer is on a GPU)."""
        if self._spec.n_gpu_layers == -1 and supports_gpu_offload():
            return 0
        return threads_of(self._spec)

    # --- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        # Each handle is taken before it is freed: an interrupt (Ctrl-C) between the two leaks it
        # instead of leaving it for __del__ to free a second time.
        if self.slot is not None:
            self.slot.close()
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

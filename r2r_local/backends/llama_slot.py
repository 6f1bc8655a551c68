"""A llama.cpp context as a `Slot`: one sequence's KV cache, evaluated in batches.

Context creation with `embeddings=True` makes every token of a batch an output (llama.cpp ignores
the per-token flags then), so multi-token batches run with embeddings switched off and only the
final single-token evaluation switches them on when a hidden state is wanted.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

import llama_cpp as C

from r2r_local.backends import N_BATCH, Dist
from r2r_local.backends.llama_runtime import _interrupt_pending, clear_errors, last_error, raise_if_interrupted
from r2r_local.config import ModelSpec
from r2r_local.errors import DecodeCancelled, DecodeError, ModelLoadError, PromptTooLongError

if TYPE_CHECKING:
    from r2r_local.backends.llama_cpp import LlamaCppBackend


def threads_of(spec: ModelSpec) -> int:
    return spec.threads or max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PositionOutputs:
    """Outputs at every evaluated position: argmax int64 [n], topk float32 [n,k] (descending),
    hidden float32 [n,d]."""

    argmax: np.ndarray
    topk: np.ndarray
    hidden: np.ndarray


class LlamaCppSlot:
    """One llama.cpp context (sequence 0) of a model; see `r2r_local.backends.Slot`."""

    def __init__(self, model: "LlamaCppBackend", spec: ModelSpec, want_hidden: bool) -> None:
        self._owner, self._spec, self.role, self.path = model, spec, spec.role, model.path
        self._ctx = self._batch = None
        self.n_vocab = self.n_shared = model.n_vocab
        self.n_embd = model.n_embd
        self._want_hidden = self._embeddings_on = want_hidden
        self._ctx = self._new_context(embeddings=want_hidden)
        self.n_ctx = int(C.llama_n_ctx(self._ctx))
        self._mem = C.llama_get_memory(self._ctx)
        self._n_batch = int(C.llama_n_batch(self._ctx))
        self._batch = C.llama_batch_init(self._n_batch, 0, 1)
        self.tokens: list[int] = []  # what the cache holds, position by position
        self._abort = None  # the installed ctypes abort callback (kept referenced while installed)

    def set_abort(self, check: Callable[[], bool] | None) -> None:
        if not self._ctx:
            return
        if check is None:
            C.llama_set_abort_callback(self._ctx, C.ggml_abort_callback(), None)
            self._abort = None
            return

        def aborted(_data: ctypes.c_void_p) -> bool:
            try:
                return bool(check())
            except BaseException:  # nothing may cross llama.cpp's C frames
                return False

        self._abort = C.ggml_abort_callback(aborted)
        C.llama_set_abort_callback(self._ctx, self._abort, None)

    def limit_vocab(self, n_shared: int) -> None:
        self.n_shared = min(n_shared, self.n_vocab)

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
        self._ctx = self._new_context(embeddings=True)  # on failure: no context, asked again
        self._want_hidden = self._embeddings_on = True
        self._mem = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(self._n_batch, 0, 1)

    def _new_context(self, *, embeddings: bool):
        spec = self._spec
        cparams = C.llama_context_default_params()
        cparams.n_ctx = spec.n_ctx
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = N_BATCH
        threads = threads_of(spec)
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.embeddings = embeddings
        cparams.pooling_type = C.LLAMA_POOLING_TYPE_NONE
        cparams.no_perf = True
        clear_errors()
        ctx = C.llama_init_from_model(self._owner._model, cparams)
        if ctx and _interrupt_pending[0]:
            C.llama_free(ctx)
        raise_if_interrupted()
        if not ctx:
            reason = last_error("llama.cpp could not create a context (out of memory?)")
            raise ModelLoadError(f"{spec.role} model {self.path}: {reason} (n_ctx={spec.n_ctx})")
        return ctx

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def decode(self, tokens: Sequence[int], *, hidden: bool = False) -> Dist:
        self._check(tokens, hidden)
        tokens = list(tokens)
        bulk, last = (tokens[:-1], tokens[-1:]) if hidden else (tokens, [])
        if bulk:
            self._set_embeddings(False)
        for start in range(0, len(bulk), self._n_batch):
            chunk = bulk[start : start + self._n_batch]
            self._run(chunk, first_output=len(chunk) - 1 if not last and start + self._n_batch >= len(bulk) else len(chunk))
        if last:
            self._set_embeddings(True)
            self._run(last, first_output=0)
        return self._read(-1, hidden)

    def decode_all(self, tokens: Sequence[int], *, outputs: int) -> list[Dist]:
        self._check(tokens, False)
        tokens, dists = list(tokens), []
        first = len(tokens) - max(1, min(outputs, len(tokens)))
        self._set_embeddings(False)
        for start in range(0, len(tokens), self._n_batch):
            chunk = tokens[start : start + self._n_batch]
            begin = max(0, first - start)
            self._run(chunk, first_output=begin)
            dists += [self._read(j, False) for j in range(begin, len(chunk))]
        return dists

    def decode_positions(self, tokens: Sequence[int], topk: int = 100) -> PositionOutputs:
        """Evaluate `tokens` (appended at n_past) with an output at *every* position, as the
        labelling pipeline needs: per position the argmax, the top-k raw logits (descending) and
        the final hidden state. Runs in chunks of n_batch so only one chunk's logits are ever held.
        """
        if not self._want_hidden:
            raise ValueError("this backend was loaded without hidden-state output")
        self._check(tokens, False)
        from r2r_local.router.features import topk_logits

        n = len(tokens)
        argmax = np.empty(n, dtype=np.int64)
        top = np.empty((n, topk), dtype=np.float32)
        hidden = np.empty((n, self.n_embd), dtype=np.float32)
        self._set_embeddings(True)  # embeddings on: llama.cpp outputs every token of the batch
        for start in range(0, n, self._n_batch):
            chunk = list(tokens[start : start + self._n_batch])
            self._run(chunk, first_output=len(chunk) - 1)
            for j in range(len(chunk)):
                logits = np.ctypeslib.as_array(C.llama_get_logits_ith(self._ctx, j), shape=(self.n_vocab,))
                argmax[start + j] = int(np.argmax(logits))
                top[start + j] = topk_logits(logits, topk)
                hidden[start + j] = np.ctypeslib.as_array(C.llama_get_embeddings_ith(self._ctx, j), shape=(self.n_embd,))
        return PositionOutputs(argmax, top, hidden)

    def _check(self, tokens: Sequence[int], hidden: bool) -> None:
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

    def _set_embeddings(self, on: bool) -> None:
        if self._want_hidden and self._embeddings_on != on:
            C.llama_set_embeddings(self._ctx, on)
            self._embeddings_on = on

    def _run(self, chunk: Sequence[int], *, first_output: int) -> None:
        """Evaluate one chunk; positions from `first_output` on produce outputs."""
        b = self._batch
        n = len(chunk)
        for i, tok in enumerate(chunk):
            if not 0 <= tok < self.n_vocab:
                raise DecodeError(f"{self.role} model: token id {tok} is outside its vocabulary")
            b.token[i] = tok
            b.pos[i] = self.n_past + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = i >= first_output
        b.n_tokens = n
        clear_errors()
        rc = C.llama_decode(self._ctx, b)
        if rc == 0:
            self.tokens.extend(chunk)  # before a Ctrl-C from the log is raised: the cache holds them
        raise_if_interrupted()
        if rc != 0:
            self.truncate(self.n_past)
            if rc == 2 and self._abort is not None:
                raise DecodeCancelled(f"{self.role} model: evaluation stopped by a cancel")
            reason = "the context is full" if rc == 1 else last_error(f"llama_decode returned {rc}")
            raise DecodeError(f"{self.role} model {self.path}: decoding failed: {reason}")

    def _read(self, j: int, hidden: bool) -> Dist:
        ptr = C.llama_get_logits_ith(self._ctx, j)
        if not ptr:
            raise DecodeError(f"{self.role} model: llama.cpp returned no logits")
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))[: self.n_shared].copy()
        h = None
        if hidden:
            hptr = C.llama_get_embeddings_ith(self._ctx, j)
            if not hptr:
                raise DecodeError(f"{self.role} model: llama.cpp returned no hidden state")
            h = np.ctypeslib.as_array(hptr, shape=(self.n_embd,)).copy()
        return Dist(logits, h)

    def truncate(self, n_past: int) -> None:
        if n_past < 0 or n_past > self.n_past:
            raise ValueError(f"cannot truncate a cache of {self.n_past} tokens to {n_past}")
        C.llama_memory_seq_rm(self._mem, 0, n_past, -1)
        del self.tokens[n_past:]

    def close(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            C.llama_batch_free(batch)
        ctx, self._ctx = self._ctx, None
        if ctx:
            C.llama_free(ctx)

"""Greedy decoding of demo problems with any backend, and the accuracy of the answers.

Works on the `Model` protocol only (tokenize, is_eog, token_bytes and its slot), so the
benchmark can reuse it for small-only and large-only runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from r2r_local.demo import task

DEFAULT_MAX_TOKENS = 160


@dataclass
class EvalResult:
    """Outcome of one evaluation run."""

    n: int = 0
    correct: int = 0
    n_tokens: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def to_json(self, keep_failures: int = 5) -> dict:
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "n_tokens": self.n_tokens,
            "seconds": round(self.seconds, 2),
            "failures": self.failures[:keep_failures],
        }


def greedy(backend, message: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[str, int]:
    """The backend's greedy answer to one user message: (text, number of generated tokens).

    The decoding core's own loop with the model alone (one model, one decoding path), the message
    rendered through the GGUF's chat template; stops at an end-of-generation token.
    """
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import GenerationSettings
    from r2r_local.decode import SMALL, Decoder, Request

    prompt = chat_tokens(backend, [Message("user", message)])
    decoder = Decoder(backend, backend)
    gen = decoder.generate(Request(prompt, policy=SMALL, settings=GenerationSettings(max_tokens))).run()
    return gen.text, len(gen.events) + (gen.stop_reason == "eos")


def evaluate(backend, problems: Iterable[task.Problem], max_tokens: int = DEFAULT_MAX_TOKENS) -> EvalResult:
    """Greedy answers to `problems`, checked against the true sums."""
    result = EvalResult()
    t0 = time.perf_counter()
    for p in problems:
        text, n = greedy(backend, p.message, max_tokens)
        result.n += 1
        result.n_tokens += n
        if task.is_correct(p, text):
            result.correct += 1
        else:
            result.failures.append({"message": p.message, "answer": p.answer, "output": text})
    result.seconds = time.perf_counter() - t0
    return result


def decode_times(backend, tokens: Sequence[int], n_steps: int = 200) -> np.ndarray:
    """float64 [n_steps] seconds of single-token decodes after `tokens` (the cost per token)."""
    backend.truncate(0)
    backend.decode(list(tokens))
    times = np.empty(n_steps)
    token = int(tokens[-1])
    for i in range(n_steps):
        if backend.n_past + 1 > backend.n_ctx:
            backend.truncate(len(tokens))
        t0 = time.perf_counter()
        backend.decode([token])
        times[i] = time.perf_counter() - t0
    return times

"""The labelling loop over one loaded pair (see the package docstring for the steps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from r2r_local.chat import Message, Utf8Stream, chat_tokens
from r2r_local.config import GenerationSettings
from r2r_local.decode import LARGE, Generation, Request
from r2r_local.labeling.verifiers import Continuations, Verifier
from r2r_local.pair import LoadedPair

if TYPE_CHECKING:
    from r2r_local.backends.llama_cpp import LlamaCppSlot, PositionOutputs

SENTENCE_ENDS = ("\n", ". ", "? ", "! ")


@dataclass
class LabelSummary:
    prompts: int = 0
    tokens: int = 0
    mismatches: int = 0
    divergent: int = 0

    def add(self, other: "LabelSummary") -> None:
        self.prompts += other.prompts
        self.tokens += other.tokens
        self.mismatches += other.mismatches
        self.divergent += other.divergent

    def as_dict(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "tokens": self.tokens, "mismatches": self.mismatches,
                "divergent": self.divergent,
                "mismatch_share": self.mismatches / self.tokens if self.tokens else 0.0,
                "divergent_share": self.divergent / self.tokens if self.tokens else 0.0}


@dataclass
class Labelled:
    arrays: dict[str, np.ndarray]
    records: list[dict[str, Any]] = field(default_factory=list)
    summary: LabelSummary = field(default_factory=LabelSummary)


def teacher_forced(small: LlamaCppSlot, prompt: list[int], answer: list[int]) -> PositionOutputs:
    """The small model's outputs at each answer position, the true answer fed in as context:
    position i sees prompt + answer[:i] (arrays of len(answer) rows). Empties the cache first."""
    small.enable_hidden()
    small.truncate(0)
    if len(prompt) > 1:
        small.decode(prompt[:-1])
    return small.decode_positions([prompt[-1], *answer[:-1]])


class Labeller:
    """Labels prompts with one pair. The large model runs alone (the LARGE policy), so the KV
    prefix of the answer is reused by every continuation."""

    def __init__(self, pair: LoadedPair, verifier: Verifier, *, max_answer_tokens: int = 512,
                 continuation_tokens: int = 32) -> None:
        self.pair, self.verifier = pair, verifier
        self.max_answer_tokens = max_answer_tokens
        self.continuation_tokens = continuation_tokens

    def _large_alone(self, prompt: list[int], settings: GenerationSettings) -> Generation:
        """The large model's own greedy continuation of `prompt`."""
        return self.pair.generate(Request(prompt, policy=LARGE, settings=settings)).run()

    def _text(self, tokens: Any) -> str:
        stream = Utf8Stream()
        return "".join(stream.feed(self.pair.large.token_bytes(int(t))) for t in tokens) + stream.flush()

    def label(self, prompt: str, expected: str | None = None) -> Labelled:
        """Labels of one prompt; `expected` is its known answer (for verifiers that need one)."""
        small = self.pair.small
        prompt_tokens = chat_tokens(small, [Message("user", prompt)])
        answer_gen = self._large_alone(prompt_tokens, GenerationSettings(self.max_answer_tokens))
        answer = np.array([e.id for e in answer_gen.events], dtype=np.int64)
        summary = LabelSummary(prompts=1, tokens=len(answer))
        d = small.n_embd
        if len(answer) == 0:
            empty = {"small_token": answer, "large_token": answer, "mismatch": answer.astype(bool),
                     "label": answer.astype(np.int8), "hidden": np.zeros((0, d), np.float16),
                     "topk": np.zeros((0, 100), np.float32)}
            return Labelled(empty, [], summary)
        outs = teacher_forced(small.slot, prompt_tokens, answer.tolist())
        mismatch = outs.argmax != answer
        labels = np.zeros(len(answer), dtype=np.int8)
        records = []
        for i in np.flatnonzero(mismatch):
            verdict, record = self._judge(prompt_tokens, answer, int(i), int(outs.argmax[i]), expected)
            labels[i] = verdict
            records.append(record)
        summary.mismatches, summary.divergent = int(mismatch.sum()), int(labels.sum())
        arrays = {"small_token": outs.argmax, "large_token": answer, "mismatch": mismatch, "label": labels,
                  "hidden": outs.hidden.astype(np.float16), "topk": outs.topk}
        return Labelled(arrays, records, summary)

    def _judge(self, prompt_tokens: list[int], answer: np.ndarray, i: int, alt: int,
               expected: str | None) -> tuple[int, dict[str, Any]]:
        full = self.verifier.needs_full_answer
        budget = self.max_answer_tokens - i + 16 if full else self.continuation_tokens
        stops = () if full else SENTENCE_ENDS
        prefix = [*prompt_tokens, *answer[:i].tolist()]
        cont = self._large_alone([*prefix, alt], GenerationSettings(max(1, budget), stops))
        alternative = self._text([alt]) + cont.text
        own = self._text(answer[i:] if full else answer[i : i + 1 + self.continuation_tokens])
        if not full:
            own = _first_sentence(own)
        c = Continuations(self._text(answer[:i]), own, alternative, expected)
        verdict = int(self.verifier.diverges(c))
        return verdict, {"position": i, "large_token": int(answer[i]), "small_token": alt,
                         "prefix_tail": c.prefix[-80:], "own": c.own[:200], "alternative": c.alternative[:200],
                         "label": verdict}


def _first_sentence(text: str) -> str:
    cuts = [text.find(s, 1) for s in SENTENCE_ENDS]
    cuts = [c for c in cuts if c > 0]
    return text[: min(cuts)] if cuts else text

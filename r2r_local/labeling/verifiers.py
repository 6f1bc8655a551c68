"""Verifiers: do two continuations of the same prefix diverge (1) or differ only in wording (0)?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from r2r_local.backends import Model
from r2r_local.chat import Message, chat_tokens


@dataclass(frozen=True)
class Continuations:
    """The text before the mismatch, and the text that follows after each model's token."""

    prefix: str
    own: str  # after the large model's own token: the rest of its answer
    alternative: str  # after the small model's token
    expected: str | None = None  # the prompt's known answer, where the task has one


class Verifier(Protocol):
    name: str
    #: the alternative continuation must run to the end of the answer (to compare final answers)
    needs_full_answer: bool

    def diverges(self, c: Continuations) -> bool: ...


class ExactAnswerVerifier:
    """For tasks with a checkable answer: divergent iff the final answers differ."""

    name = "exact"
    needs_full_answer = True

    def __init__(self, extract: Callable[[str], str | None]) -> None:
        self.extract = extract

    def diverges(self, c: Continuations) -> bool:
        return self.extract(c.prefix + c.own) != self.extract(c.prefix + c.alternative)


class CorrectAnswerVerifier:
    """For prompts with a known answer: divergent iff the large model's own continuation
    reaches the expected answer and the one after the small model's token does not.

    Unlike `exact`, a mismatch where the large model is the one that goes wrong (or where
    both go wrong) is labelled 0: escalating there cannot help, so the router should not
    learn to do it.
    """

    name = "correct"
    needs_full_answer = True

    def __init__(self, extract: Callable[[str], str | None]) -> None:
        self.extract = extract

    def diverges(self, c: Continuations) -> bool:
        if c.expected is None:
            raise ValueError("the 'correct' verifier needs the prompt's expected answer")
        want = c.expected.strip()
        return self.extract(c.prefix + c.own) == want and self.extract(c.prefix + c.alternative) != want


JUDGE_PROMPT = (
    "Two continuations of the same partial answer are shown. Decide whether they diverge in "
    "meaning, reasoning or conclusion (answer 1), or differ only in wording while saying the "
    "same thing (answer 0). Reply with a single digit.\n\n"
    "Partial answer:\n{prefix}\n\nContinuation A:\n{own}\n\nContinuation B:\n{alternative}\n\n"
    "Do A and B diverge? Reply 0 or 1."
)


class LlmJudgeVerifier:
    """An LLM judge (any GGUF; the large model by default) asked for 0 or 1; the answer is read
    from its next-token logits for '0' and '1', so it cannot ramble."""

    name = "llm-judge"
    needs_full_answer = False

    def __init__(self, judge: Model, max_prefix_chars: int = 2000) -> None:
        self.judge = judge
        self.max_prefix_chars = max_prefix_chars
        self._zero = self._digit("0")
        self._one = self._digit("1")

    def _digit(self, digit: str) -> int:
        ids = self.judge.tokenize(digit, add_special=False, parse_special=False)
        if len(ids) != 1:
            raise ValueError(f"the judge's tokenizer splits '{digit}' into {len(ids)} tokens")
        return ids[0]

    def diverges(self, c: Continuations) -> bool:
        text = JUDGE_PROMPT.format(prefix=c.prefix[-self.max_prefix_chars:], own=c.own, alternative=c.alternative)
        tokens = chat_tokens(self.judge, [Message("user", text)])
        keep = 0
        slot = self.judge.slot
        for a, b in zip(slot.tokens, tokens[:-1]):
            if a != b:
                break
            keep += 1
        slot.truncate(keep)
        logits = slot.decode(tokens[keep:]).logits
        return bool(np.float32(logits[self._one]) > np.float32(logits[self._zero]))

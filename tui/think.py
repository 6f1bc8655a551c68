"""Splitting a streamed answer into its <think> section and the answer proper."""

from __future__ import annotations

from r2r_local.chat import THINK_CLOSE, THINK_OPEN

THINK, ANSWER = "think", "answer"


class ThinkSplitter:
    """Routes streamed text to the think section or the answer, hiding the tags themselves.

    Text that could still be the start of a tag is held back until it is decided, so a tag split
    across tokens never shows. `in_think` starts True when the prompt already opened the
    section (R1's template ends its generation prompt with "<think>\\n").
    """

    def __init__(self, in_think: bool = False) -> None:
        self.in_think = in_think
        self._seen_open = in_think
        self._held = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        """[(part, text)] segments, part being "think" or "answer", in stream order."""
        out: list[tuple[str, str]] = []
        held = self._held + text
        while held:
            tag = THINK_CLOSE if self.in_think else (THINK_OPEN if not self._seen_open else None)
            if tag is None:
                out.append((ANSWER, held))
                held = ""
                break
            cut = held.find(tag)
            if cut >= 0:
                self._emit(out, held[:cut])
                held = held[cut + len(tag):]
                self.in_think = not self.in_think
                self._seen_open = True
                continue
            keep = _partial_tag(held, tag)
            self._emit(out, held[: len(held) - keep])
            held = held[len(held) - keep:]
            break
        self._held = held
        return out

    def flush(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[tuple[str, str]], text: str) -> None:
        if text:
            out.append((THINK if self.in_think else ANSWER, text))


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for k in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


def split_text(text: str, in_think: bool = False) -> tuple[str, str]:
    """(think, answer) of a whole text."""
    splitter = ThinkSplitter(in_think)
    parts = splitter.feed(text) + splitter.flush()
    think = "".join(t for p, t in parts if p == THINK)
    answer = "".join(t for p, t in parts if p == ANSWER)
    return think.strip(), answer

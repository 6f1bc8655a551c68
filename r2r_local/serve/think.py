"""Splitting generated text into its think section (`reasoning_content`) and the answer (`content`).

Text based (<think> ... </think>), so it works for every model that writes the tags as text or
as special tokens. One think section is recognised: the one the prompt opened (R1's template
ends its generation prompt with "<think>\\n"), or the first <think> the model writes; after its
</think> everything is answer. The tags never appear in either part; whitespace right after a tag
is dropped (R1 writes "</think>\\n\\n" before its answer). Streamed and whole text split alike:
`split` is the streaming splitter fed the whole text at once.
"""

from __future__ import annotations

from r2r_local.chat import THINK_CLOSE, THINK_OPEN

REASONING, CONTENT = "reasoning", "content"
_BEFORE, _INSIDE, _AFTER = "before", "inside", "after"


class ThinkSplit:
    """feed(text) -> [(part, text)], part REASONING or CONTENT, in stream order. Text that could
    still be the start of the awaited tag is held back until the next feed (or flush)."""

    def __init__(self, opened: bool = False) -> None:
        self.state = _INSIDE if opened else _BEFORE
        self.trim = opened  # drop whitespace until the part's first other character
        self.held = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        rest = self.held + text
        self.held = ""
        while rest:
            if self.state == _AFTER:
                self._emit(out, rest)
                break
            tag = THINK_CLOSE if self.state == _INSIDE else THINK_OPEN
            at = rest.find(tag)
            if at < 0:
                keep = _tag_start_at_end(rest, tag)
                self._emit(out, rest[: len(rest) - keep])
                self.held = rest[len(rest) - keep:]
                break
            self._emit(out, rest[:at])
            rest = rest[at + len(tag):]
            self.state = _INSIDE if self.state == _BEFORE else _AFTER
            self.trim = True
        return out

    def flush(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._emit(out, self.held)
        self.held = ""
        return out

    def _emit(self, out: list[tuple[str, str]], text: str) -> None:
        if self.trim:
            text = text.lstrip()
            self.trim = not text
        if text:
            out.append((REASONING if self.state == _INSIDE else CONTENT, text))


def _tag_start_at_end(text: str, tag: str) -> int:
    """Length of the longest end of `text` that begins `tag` (without being all of it)."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


def split(text: str, opened: bool = False) -> tuple[str, str]:
    """(reasoning, content) of a whole text, exactly as streaming it would give them."""
    splitter = ThinkSplit(opened)
    parts = splitter.feed(text) + splitter.flush()
    return "".join(t for p, t in parts if p == REASONING), "".join(t for p, t in parts if p == CONTENT)

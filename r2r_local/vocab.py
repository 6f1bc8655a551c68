"""Checking that two models share one tokenizer, tolerating padding rows.

R1-1.5B has 151936 vocabulary rows and R1-32B 152064: the real tokens agree, the rows past the
real tokens are padding (`[PAD...]`, token type UNUSED). Routing is token-level, so anything
beyond padding differences makes a pair unusable.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from r2r_local.backends import VocabEntry
from r2r_local.errors import VocabMismatchError


def is_padding(entry: VocabEntry) -> bool:
    return entry.padding or entry.text.startswith(b"[PAD")


def shared_vocab_size(
    small: Sequence[VocabEntry], large: Sequence[VocabEntry], small_path: str, large_path: str
) -> int:
    """The number of leading rows both models share; logits past it are never sampled.

    Raises VocabMismatchError naming both files if a real token differs or an extra row of the
    longer vocabulary is not padding.
    """
    n = min(len(small), len(large))
    for i in range(n):
        a, b = small[i], large[i]
        if a.text != b.text and not (is_padding(a) and is_padding(b)):
            raise VocabMismatchError(
                f"{small_path} and {large_path} have different vocabularies: token {i} is "
                f"{_show(a)} in the small model and {_show(b)} in the large one"
            )
    longer = small if len(small) > len(large) else large
    for i in range(n, len(longer)):
        if not is_padding(longer[i]):
            raise VocabMismatchError(
                f"{small_path} ({len(small)} tokens) and {large_path} ({len(large)} tokens) have "
                f"different vocabularies: token {i} ({_show(longer[i])}) exists in only one"
            )
    return n


def _show(entry: VocabEntry) -> str:
    return repr(entry.text[:40].decode("utf-8", errors="replace"))


def vocab_hash(entries: Sequence[VocabEntry]) -> str:
    """sha256 over the real (non-padding) tokens' texts and ids: a model family's identity."""
    h = hashlib.sha256()
    for i, e in enumerate(entries):
        if not is_padding(e):
            h.update(i.to_bytes(4, "little") + len(e.text).to_bytes(4, "little") + e.text)
    return h.hexdigest()

"""A synthetic byte-level BPE vocabulary, one per family, identical for every member.

Layout: ids [0, 256) the 256 byte tokens (GPT-2's printable-unicode spelling of bytes), then
generated merges up to `n_regular` tokens (each merge "a b" adds the token "ab"), then the
special tokens of the family's tokenizer kind (r2r_local/shapes/tokenizers.py), then `[PADi]` rows (token type UNUSED) up to the model's vocabulary rows, as
llama.cpp's converter pads a Qwen vocabulary. Everything depends only on the family, never on
the model or the weight seed, so two members differ in padding rows only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from r2r_local.shapes import Family
from r2r_local.shapes.tokenizers import KINDS

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5
_MAX_TOKEN_CHARS = 10


@dataclass(frozen=True)
class Vocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int
    eos_id: int


def byte_alphabet() -> list[str]:
    """The printable character that stands for each byte 0..255 in byte-level BPE.

    Printable Latin-1 bytes stand for themselves; the other 68 are mapped, in byte order, to
    the code points from 256 upwards (so a space is 'Ġ' and a newline 'Ċ').
    """
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _merges(n_merges: int, seed: int, specials: set[str]) -> tuple[list[str], list[str]]:
    """`n_merges` new tokens, each the concatenation of two earlier ones (merges in rank order).

    Earlier (shorter) tokens are picked more often; a right part never starts with the space
    mark, because the pre-tokenizer keeps a space at the start of a word.
    """
    rng = random.Random(seed)
    alphabet = byte_alphabet()
    space = alphabet[ord(" ")]
    # Bias the first merges toward letters, the space mark and digits, like natural text.
    common = [alphabet[b] for b in b"etaoinshrdlucmfwypvbgkqjxz0123456789 "] + [space] * 6
    tokens: list[str] = []
    seen = set(alphabet) | specials
    merges: list[str] = []
    pool = list(alphabet)
    while len(merges) < n_merges:
        if rng.random() < 0.3:
            a, b = rng.choice(common), rng.choice(common)
        else:
            a = pool[int(len(pool) * rng.random() ** 3)]
            b = pool[int(len(pool) * rng.random() ** 3)]
        if b.startswith(space):
            continue
        new = a + b
        if new in seen or len(new) > _MAX_TOKEN_CHARS or new.startswith("[PAD"):
            continue
        seen.add(new)
        tokens.append(new)
        pool.append(new)
        merges.append(f"{a} {b}")
    return tokens, merges


def build_vocab(family: Family, vocab_rows: int) -> Vocab:
    """The family's vocabulary padded to `vocab_rows` rows."""
    alphabet = byte_alphabet()
    kind = family.kind
    extra, merges = _merges(family.n_regular - len(alphabet), family.seed, {t for t, _ in kind.specials})
    tokens = alphabet + extra
    types = [NORMAL] * len(tokens)
    for text, control in kind.specials:
        tokens.append(text)
        types.append(CONTROL if control else USER_DEFINED)
    if vocab_rows < len(tokens):
        raise ValueError(f"vocab_rows {vocab_rows} < {len(tokens)} tokens of family {family.name}")
    for i in range(len(tokens), vocab_rows):
        tokens.append(f"[PAD{i}]")
        types.append(UNUSED)
    ids = {text: family.n_regular + k for k, (text, _) in enumerate(kind.specials)}
    return Vocab(tokens, types, merges, bos_id=ids[kind.bos], eos_id=ids[kind.eos])


# The R1 kind's template, under its older name.
CHAT_TEMPLATE = KINDS["r1"].chat_template

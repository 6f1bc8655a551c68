"""The demo task: addition of 2- to 4-digit numbers, reasoned column by column.

A problem is two integers. The user writes it in one of several phrasings; the assistant
answers with a trace inside `<think>`...`</think>` (one step per column, least significant
first, each naming its place and stating its carry) and then one plain line with the result:

    <think>347+589: units 7+9=16 write 6 carry 1; tens 4+8+1=13 write 3 carry 1;
    hundreds 3+5+1=9 write 9 carry 0.</think>
    So 347+589 = 936.

Wording varies harmlessly ("units"/"ones", "write"/"put", "So"/"Thus") with uneven odds, so
that a mismatch between two models is not always a divergence. Everything here is a pure
function of its arguments and an explicit `np.random.Generator`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np

MIN_DIGITS = 2
MAX_DIGITS = 4
PLACES = ("units", "tens", "hundreds", "thousands")
# Odds of the less frequent wording; uneven on purpose (see the module docstring).
P_ONES = 0.25
P_PUT = 0.3
P_THUS = 0.2
P_ALL_CARRY = 0.15

PHRASINGS = (
    "{a}+{b}",
    "{a} + {b}",
    "What is {a} + {b}?",
    "What is {a}+{b}?",
    "what is {a} plus {b}?",
    "Add {a} and {b}.",
    "{a} plus {b}",
    "Compute {a} + {b}.",
    "Calculate {a}+{b}",
    "What's the sum of {a} and {b}?",
    "Please add {a} and {b}",
    "{a}+{b}=?",
)

# Streams of problems: the two splits never share a random stream, and a pair of operands
# belongs to exactly one split, so held-out problems are never seen in training.
TRAIN, HELDOUT = "train", "heldout"
# The seed of the held-out problems in the manifest's accuracies (scripts/build_demo.py --eval-seed).
EVAL_SEED = 12345
_SPLIT_KEY = {TRAIN: 11, HELDOUT: 29}


@dataclass(frozen=True)
class Problem:
    """One addition problem and the user message that asks it."""

    a: int
    b: int
    message: str

    @property
    def answer(self) -> int:
        return self.a + self.b


def split_of(a: int, b: int) -> str:
    """Which split the operand pair belongs to (about one pair in eight is held out)."""
    return HELDOUT if (a * 7919 + b * 104729) % 8 == 0 else TRAIN


def _number(rng: np.random.Generator, n_digits: int) -> int:
    return int(rng.integers(10 ** (n_digits - 1), 10**n_digits))


def _all_carry_pair(rng: np.random.Generator, da: int, db: int) -> tuple[int, int]:
    """Operands whose every column produces a carry (missing digits count as 0)."""
    while True:
        a, b = _number(rng, da), _number(rng, db)
        if all(c for _, _, _, _, c in columns(a, b)):
            return a, b


def _pair(rng: np.random.Generator) -> tuple[int, int]:
    da, db = (int(x) for x in rng.integers(MIN_DIGITS, MAX_DIGITS + 1, size=2))
    if rng.random() < P_ALL_CARRY:
        return _all_carry_pair(rng, da, db)
    return _number(rng, da), _number(rng, db)


def problems(seed: int, n: int, split: str = HELDOUT) -> list[Problem]:
    """`n` problems of `split`, the same for the same seed on every machine."""
    return list(iter_problems(seed, split, n))


def iter_problems(seed: int, split: str, n: int | None = None) -> Iterator[Problem]:
    if split not in _SPLIT_KEY:
        raise ValueError(f"split must be {TRAIN!r} or {HELDOUT!r}, got {split!r}")
    rng = np.random.default_rng([seed, _SPLIT_KEY[split]])
    made = 0
    while n is None or made < n:
        a, b = _pair(rng)
        if split_of(a, b) != split:
            continue
        phrasing = PHRASINGS[int(rng.integers(len(PHRASINGS)))]
        yield Problem(a, b, phrasing.format(a=a, b=b))
        made += 1


def columns(a: int, b: int) -> list[tuple[int, int, int, int, int]]:
    """Per column, least significant first: (digit of a, digit of b, carry in, sum, carry out).

    A number shorter than the other contributes 0 in its missing columns.
    """
    n = max(len(str(a)), len(str(b)))
    out, carry = [], 0
    for i in range(n):
        x, y = a // 10**i % 10, b // 10**i % 10
        s = x + y + carry
        out.append((x, y, carry, s, s // 10))
        carry = s // 10
    return out


@dataclass(frozen=True)
class Wording:
    """The harmless choices of one answer."""

    ones: bool = False
    put: bool = False
    thus: bool = False

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Wording":
        u = rng.random(3)
        return cls(ones=bool(u[0] < P_ONES), put=bool(u[1] < P_PUT), thus=bool(u[2] < P_THUS))


def trace(a: int, b: int, wording: Wording = Wording()) -> str:
    """The column-by-column reasoning (the text inside <think>)."""
    steps = []
    for i, (x, y, cin, s, cout) in enumerate(columns(a, b)):
        place = "ones" if i == 0 and wording.ones else PLACES[i]
        terms = f"{x}+{y}+{cin}" if cin else f"{x}+{y}"
        verb = "put" if wording.put else "write"
        steps.append(f"{place} {terms}={s} {verb} {s % 10} carry {cout}")
    return f"{a}+{b}: " + "; ".join(steps) + "."


def final_line(a: int, b: int, wording: Wording = Wording()) -> str:
    return f"{'Thus' if wording.thus else 'So'} {a}+{b} = {a + b}."


def answer_text(a: int, b: int, wording: Wording = Wording()) -> str:
    """The whole assistant message: think section, then the plain result line."""
    return f"<think>{trace(a, b, wording)}</think>\n{final_line(a, b, wording)}"


_EQUALS_NUMBER = re.compile(r"=\s*(\d+)")


def extract_answer(text: str) -> int | None:
    """The stated result: the last `= N` after the think section (None if there is none).

    Text without a closed think section has no answer: a trace cut off by the token limit
    does not count as answering.
    """
    if "</think>" not in text:
        return None
    found = _EQUALS_NUMBER.findall(text.rsplit("</think>", 1)[1])
    return int(found[-1]) if found else None


def is_correct(problem: Problem, text: str) -> bool:
    return extract_answer(text) == problem.answer


_STEP = re.compile(
    r"(units|ones|tens|hundreds|thousands) (\d)\+(\d)(?:\+(\d))?=(\d+) (?:write|put) (\d) carry (\d)"
)


def check_trace(problem: Problem, text: str) -> bool:
    """Whether the think section holds exactly the right steps for `problem`."""
    think = text.split("<think>", 1)[-1].split("</think>", 1)[0]
    steps = _STEP.findall(think)
    got = [(int(x), int(y), int(c or 0), int(s), int(co)) for _, x, y, c, s, _, co in steps]
    written_ok = all(int(w) == int(s) % 10 for _, _, _, _, s, w, _ in steps)
    return written_ok and got == columns(problem.a, problem.b)


def answer_matches(expected: str | int, text: str) -> bool:
    """Whether `text` states `expected` as its final result (for problems read from a file)."""
    got = extract_answer(text)
    return got is not None and str(got) == str(expected).strip()


def to_record(problem: Problem) -> dict[str, str]:
    """The benchmark's JSONL line for a problem: {"prompt": ..., "answer": ...}."""
    return {"prompt": problem.message, "answer": str(problem.answer)}

"""Side-by-side measurement of small-only, large-only and routed decoding (docs/design.md, "Measuring").

All modes run on the same prompts, greedy, with the same max tokens, interleaved prompt by
prompt so machine noise falls on all of them alike. The routed mode also gets its ideal speed,
1 / (t_small_step + t_router + share x t_large_call), with each term measured on its own in the
same run (the large call at the run's mean catch-up length): the gap is our system overhead.
The optional `overlap` mode is the routed mode with the small model's next step run while the
router decides; its ideal is 1 / (max(t_small_step, t_router) + share x t_large_call). The
optional `ahead` mode lets the small model write ahead during the large model's calls; it is held
to the plain ideal, which it can beat; `overlap+ahead` does both. Every mode is a policy of the
same decoding loop (r2r_local/decode/policies.py), built the same way.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Callable, Sequence

from r2r_local.chat import Message, chat_tokens, strip_think
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import Request, policy_for_mode
from r2r_local.errors import ConfigError
from r2r_local.metering import ServedCounters, served_figures
from r2r_local.pair import LoadedPair
from r2r_local.router import Router, Step

MODES = ("small", "large", "r2r", "overlap", "ahead", "overlap+ahead")
ROUTED = ("r2r", "overlap", "ahead", "overlap+ahead")
DEFAULT_PROMPTS = [
    "Explain why the sky is blue in a few sentences.",
    "Write a short story about a robot who learns to paint.",
    "List five uses of a paper clip and explain each one.",
    "What are the main differences between a list and a tuple in Python?",
    "Describe how a bicycle works.",
]


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str | None = None
    line: int | None = field(default=None, compare=False)  # where it stands in its file (1-based)


def load_prompts(path: str | Path) -> list[Problem]:
    """One prompt per non-empty line."""
    text = _read(path)
    problems = [Problem(line.strip(), line=n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not problems:
        raise ConfigError(f"prompts file {path}: has no prompts (one per line)")
    return problems


def load_problems(path: str | Path, *, integer_answers: bool = True) -> list[Problem]:
    """JSON lines of {"prompt": str, "answer": str} (a number is accepted as the answer); the
    prompt must not be blank. With `integer_answers` (bench, and labelling with the `correct`
    verifier, which compare the last integer of a generation) the answer must be an integer (see
    `_integer_answer`); otherwise any non-blank answer is kept as written."""
    problems = []
    for n, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"problems file {path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("prompt"), str) or "answer" not in doc:
            raise ConfigError(f'problems file {path}:{n}: expected {{"prompt": str, "answer": str}}')
        if not doc["prompt"].strip():
            raise ConfigError(f"problems file {path}:{n}: the prompt is empty")
        answer = doc["answer"]
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or answer != answer:
            raise ConfigError(f"problems file {path}:{n}: the answer must be a string or a number, "
                              f"got {json.dumps(answer)}")
        where = f"problems file {path}:{n}"
        problems.append(Problem(doc["prompt"], _integer_answer(answer, where) if integer_answers
                                else _plain_answer(answer, where), line=n))
    if not problems:
        raise ConfigError(f"problems file {path}: has no problems")
    return problems


def _plain_answer(answer: str | int | float, where: str) -> str:
    text = str(answer).strip()
    if not text:
        raise ConfigError(f"{where}: the answer is empty")
    return text


def _integer_answer(answer: str | int | float, where: str) -> str:
    """The answer as the checker compares it: an integer without sign noise, spaces or thousands
    commas ("5", 5, 5.0, " 1,000 " -> "5", "5", "5", "1000"). Anything else could never match the
    last integer of a generation and would read as a wrong answer, so it is refused."""
    text = str(int(answer)) if isinstance(answer, float) and answer.is_integer() else str(answer)
    text = text.strip().replace(",", "")
    if not text:
        raise ConfigError(f"{where}: the answer is empty")
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ConfigError(f"{where}: the answer must be an integer (it is checked against the last integer "
                          f"of the generated answer), got {json.dumps(answer)}")
    return str(int(text))


def _read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of the first prompt
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read it as UTF-8 text ({e})") from None


def last_number(text: str) -> str | None:
    """The final answer of a checkable problem: the last integer after the think section."""
    found = re.findall(r"-?\d+", strip_think(text).replace(",", ""))
    return str(int(found[-1])) if found else None  # "007" and "-0" read as the answers 7 and 0


@dataclass
class ModeTotals:
    """Sums over a mode's generations; `summary()` gives the reported fields."""

    n: int = 0
    correct: int = 0
    checked: int = 0
    n_tokens: int = 0
    large_tokens: int = 0
    large_calls: int = 0
    caught_up: float = 0.0
    t_small: float = 0.0
    t_router: float = 0.0
    t_large: float = 0.0
    t_decode: float = 0.0
    tps: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    gpu_mb: float | None = None
    draft_kept: int = 0
    draft_dropped: int = 0
    redone_steps: int = 0
    rewinds: int = 0
    missed: int = 0
    served: ServedCounters | None = None  # a served large model's calls (None in-process)

    def add(self, stats: Any, ok: bool | None) -> None:
        """Add one generation."""
        self.n += 1
        if ok is not None:
            self.checked += 1
            self.correct += ok
        self.n_tokens += stats.n_tokens
        self.t_router += stats.time_router_s
        self.t_decode += stats.time_decode_s
        self.tps.append(stats.tokens_per_s)
        self.draft_kept += stats.draft_kept
        self.draft_dropped += stats.draft_dropped
        self.redone_steps += stats.redone_steps
        self.rewinds += stats.rewinds
        self.missed += stats.missed_divergences
        self.large_tokens += stats.large_tokens
        self.large_calls += stats.large_calls
        self.caught_up += stats.mean_catch_up * stats.large_calls
        self.t_small += stats.time_small_s
        self.t_large += stats.time_large_s
        if stats.large_server_calls is not None:
            n, timed = stats.large_server_calls, stats.ms_server_per_call is not None
            self.served = (self.served or ServedCounters(timed=timed)).plus(
                n * stats.ms_round_trip_per_call / 1000, n * (stats.ms_server_per_call or 0.0) / 1000, n)

    def summary(self) -> dict[str, Any]:
        n = max(1, self.n_tokens)
        return {
            "accuracy": self.correct / self.checked if self.checked else None,
            "n_problems": self.n,
            "n_tokens": self.n_tokens,
            "tokens_per_s": self.n_tokens / self.t_decode if self.t_decode else 0.0,
            "median_tokens_per_s": statistics.median(self.tps) if self.tps else 0.0,
            "large_share": self.large_tokens / n,
            "large_calls": self.large_calls,
            "mean_catch_up": self.caught_up / self.large_calls if self.large_calls else 0.0,
            "ms_small_per_token": 1000 * self.t_small / n,
            "ms_router_per_token": 1000 * self.t_router / n,
            "ms_large_per_token": 1000 * self.t_large / n,
            "ms_other_per_token": 1000 * max(0.0, self.t_decode - self.t_small - self.t_router - self.t_large) / n,
            "peak_rss_mb": self.rss_mb,
            "gpu_mem_mb": self.gpu_mb,
            "draft_kept": self.draft_kept,
            "draft_dropped": self.draft_dropped,
            "redone_small_steps": self.redone_steps,
            "rewinds": self.rewinds,
            "missed_divergences": self.missed,
            "large_calls_per_token": self.large_calls / n,
            "mean_kept_per_call": self.draft_kept / self.large_calls if self.large_calls else 0.0,
        } | (served_figures(self.served) if self.served is not None else {})


@dataclass
class TokenRecord:
    mode: str
    problem: int
    index: int
    id: int
    source: str
    p: float | None
    t_small: float
    t_router: float
    t_large: float
    caught_up: int


def _record(mode: str, problem: int, e: Any) -> TokenRecord:
    return TokenRecord(mode, problem, e.index, e.id, e.source, e.p, e.t_small, e.t_router, e.t_large, e.caught_up)


class Bench:
    """Runs the modes over problems with one loaded pair; backends are shared between modes."""

    def __init__(self, pair: LoadedPair, router: Router, *, max_tokens: int,
                 checker: Callable[[str, str], bool] | None = None,
                 mode_routers: dict[str, Router] | None = None) -> None:
        """mode_routers: a routed mode's own router (for a random router, another instance with
        the same seed, so its stream is its own); default `router`."""
        self.pair, self.router, self.mode_routers = pair, router, mode_routers or {}
        self.settings = GenerationSettings(max_tokens=max_tokens)
        self.checker = checker or (lambda text, answer: last_number(text) == answer)
        self.records: list[TokenRecord] = []

    def request(self, mode: str, prompt: list[int]) -> Request:
        """Every mode the same way: a policy, the mode's router, greedy, the bench's limits."""
        return Request(prompt, self.mode_routers.get(mode, self.router), policy_for_mode(mode),
                       sampling=SamplingParams(), settings=self.settings)

    def run(self, problems: Sequence[Problem], modes: Sequence[str] = MODES,
            progress: Callable[[int, int], None] | None = None,
            totals: dict[str, ModeTotals] | None = None) -> dict[str, ModeTotals]:
        """Each problem in every mode, mode after mode; `totals`: add to these (a run in parts,
        interleaved with other work) instead of new ones."""
        totals = totals if totals is not None else {}
        for m in modes:
            totals.setdefault(m, ModeTotals())
        for i, problem in enumerate(problems):
            prompt = chat_tokens(self.pair.small, [Message("user", problem.prompt)])
            for mode in modes:
                gen = self.pair.generate(self.request(mode, prompt)).run()
                ok = self.checker(gen.text, problem.answer) if problem.answer is not None else None
                totals[mode].add(gen.stats, ok)
                totals[mode].rss_mb, totals[mode].gpu_mb = peak_rss_mb(), gpu_memory_mb()
                self.records += [_record(mode, i, e) for e in gen.events]
            if progress:
                progress(i + 1, len(problems))
        return totals

    def ideal_parts(self, problem: Problem, catch_up: float, repeats: int = 20) -> dict[str, float]:
        """Median seconds of one small step, one router decision and one large call of
        round(catch_up) tokens, each measured alone after `problem`'s prompt."""
        small, large = self.pair.small.slot, self.pair.large.slot
        prompt = chat_tokens(self.pair.small, [Message("user", problem.prompt)])
        k = max(1, round(catch_up))
        need_hidden = self.router.needs_hidden
        if need_hidden:
            small.enable_hidden()
        small.truncate(0)
        out = small.decode(prompt, hidden=need_hidden)
        token = int(out.logits.argmax())
        t_small = _median_time(lambda: (small.decode([token], hidden=need_hidden), small.truncate(len(prompt))), repeats)
        step = Step(out.logits, out.hidden, token, self.pair.small.embedding_row)
        t_router = _median_time(lambda: self.router.decide(step), repeats * 5)
        large.truncate(0)
        large.decode(prompt[:-1])
        extra = (prompt[-1:] + [token] * k)[:k]
        t_large = _median_time(lambda: (large.decode(extra), large.truncate(len(prompt) - 1)), repeats)
        return {"t_small_step_s": t_small, "t_router_s": t_router, "t_large_call_s": t_large, "catch_up_k": k}


def ideal_tokens_per_s(parts: dict[str, float], share: float, *, overlap: bool = False) -> float:
    small, router = parts["t_small_step_s"], parts["t_router_s"]
    per_token = max(small, router) if overlap else small + router  # overlap: the step runs beside the router
    return 1.0 / (per_token + share * parts["t_large_call_s"])


def call_times(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of `repeats` calls of `fn`, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = perf_counter()
        fn()
        times.append(perf_counter() - t)
    return times


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(call_times(fn, repeats))


def peak_rss_mb() -> float | None:
    """The process's peak resident memory (VmHWM) in MB, where /proc exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def gpu_memory_mb() -> float | None:
    """Used GPU memory summed over GPUs (nvidia-smi), or None without an NVIDIA GPU."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return float(sum(float(x) for x in out.split()))
    except (subprocess.SubprocessError, ValueError, OSError):
        return None

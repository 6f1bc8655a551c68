"""`r2r label`: divergence labels for training a router (resumable, sharded)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from typing import TYPE_CHECKING

from r2r_local.commands import add_model_flags, model_specs, versions
from r2r_local.errors import ConfigError

if TYPE_CHECKING:
    from r2r_local.bench import Problem


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label where the small model's tokens change the large model's path",
                       description="Let the large model answer the prompts, teacher-force the small model over "
                                   "the answers, continue the large model after every mismatch and let a verifier "
                                   "decide whether the path diverges. Writes one shard per prompt into --out; "
                                   "a rerun with the same settings continues where it stopped.")
    add_model_flags(p, router=False)
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help='prompts, one per line, or JSON lines {"prompt": ..., "answer": ...} (.jsonl)')
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (shards, manifest, summary)")
    p.add_argument("--verifier", default="judge", metavar="V",
                   help="exact (the two continuations' final answers differ) | correct (the large model's "
                        "continuation reaches the prompt's answer and the small token's does not; needs .jsonl "
                        "answers) | judge (the large model as LLM judge) | judge:PATH.gguf")
    p.add_argument("--max-tokens", type=int, default=512, metavar="N", help="longest answer (default %(default)s)")
    p.add_argument("--continuation-tokens", type=int, default=32, metavar="N",
                   help="judge mode: continue until a sentence ends or N tokens (default %(default)s)")
    p.add_argument("--n", type=int, default=None, metavar="N", help="label only the first N prompts")
    p.set_defaults(func=run)


def _prompts(path: str, verifier: str) -> list[Problem]:
    """The prompts; a .jsonl file's answers must be integers only for the `correct` verifier, the
    one that compares them (with the last integer of a continuation)."""
    from r2r_local.bench import load_problems, load_prompts

    if path.endswith(".jsonl"):
        return load_problems(path, integer_answers=verifier == "correct")
    return load_prompts(path)


def make_verifier(spec: str, pair, extract=None):  # type: ignore[no-untyped-def]
    from r2r_local.bench import last_number
    from r2r_local.labeling import CorrectAnswerVerifier, ExactAnswerVerifier, LlmJudgeVerifier

    if spec == "exact":
        return ExactAnswerVerifier(extract or last_number)
    if spec == "correct":
        return CorrectAnswerVerifier(extract or last_number)
    if spec == "judge":
        return LlmJudgeVerifier(pair.large)
    if spec.startswith("judge:"):
        from r2r_local.backends.llama_cpp import LlamaCppBackend
        from r2r_local.config import ModelSpec

        return LlmJudgeVerifier(LlamaCppBackend(ModelSpec(spec[6:], n_ctx=pair.large.n_ctx, role="judge")))
    raise ConfigError(f"unknown verifier '{spec}': expected exact, correct, judge or judge:PATH.gguf")


def run(args: argparse.Namespace) -> int:
    from r2r_local.labeling import Labeller, LabelSummary, ShardStore
    from r2r_local.labeling.shards import atomic_write
    from r2r_local.pair import load_pair

    if args.max_tokens < 1 or args.continuation_tokens < 1:
        raise ConfigError("--max-tokens and --continuation-tokens must be >= 1")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if not args.out.strip():
        raise ConfigError("--out: empty path; give the output directory")
    store = ShardStore(args.out)
    store.check_output()
    every_prompt = _prompts(args.prompts, args.verifier)
    prompts = every_prompt[:args.n]
    if args.verifier == "correct" and any(p.answer is None for p in prompts):
        raise ConfigError(f"prompts {args.prompts}: the 'correct' verifier needs .jsonl lines with an \"answer\"")
    small_spec, large_spec = model_specs(args)
    pair = load_pair(small_spec, large_spec)
    try:
        verifier = make_verifier(args.verifier, pair, getattr(args, "extract", None))
        config = {"small": _where(small_spec.path), "large": _where(large_spec.path),
                  "small_vocab_hash": pair.small_vocab_hash, "n_embd": pair.small.n_embd, "topk": 100,
                  "prompts": str(Path(args.prompts).resolve()), "verifier": args.verifier,
                  "max_tokens": args.max_tokens, "continuation_tokens": args.continuation_tokens}
        done = _open_store(store, config, every_prompt, args.prompts)
        labeller = Labeller(pair, verifier, max_answer_tokens=args.max_tokens,
                            continuation_tokens=args.continuation_tokens)
        total, start = LabelSummary(), time.perf_counter()
        todo = [i for i in range(len(prompts)) if i not in done]
        if done:
            print(f"label: {len(done)} of {len(prompts)} prompts already labelled in {args.out}, continuing",
                  file=sys.stderr)
        tty = sys.stderr.isatty()
        every = 1 if tty else max(1, len(todo) // 20)  # a log file gets about 20 lines, not one per prompt
        start_of_line, end_of_line = ("\r", "") if tty else ("", "\n")
        for k, i in enumerate(todo, 1):
            result = labeller.label(prompts[i].prompt, prompts[i].answer)
            store.write(i, result.arrays, result.records)
            total.add(result.summary)
            if k % every == 0 or k == len(todo):
                print(f"{start_of_line}label: {len(done) + k}/{len(prompts)} prompts, {total.tokens} tokens, "
                      f"{total.mismatches} mismatches, {total.divergent} divergent", end=end_of_line,
                      file=sys.stderr, flush=True)
        if tty:
            print(file=sys.stderr)
        summary = _summarise(store, pair.small.n_embd) | {"seconds_this_run": time.perf_counter() - start,
                                                          "versions": versions()}
        atomic_write(Path(args.out) / "summary.json", json.dumps(summary, indent=2).encode())
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    finally:
        pair.close()
    return 0


def _open_store(store, config: dict, problems: list[Problem], path: str) -> set[int]:  # type: ignore[no-untyped-def]
    """Open the output, checking that the prompts already labelled are still the file's first ones."""
    from r2r_local.labeling.shards import PromptChanged, prompt_fingerprint

    try:
        done, unchecked = store.open(config, [prompt_fingerprint(p.prompt, p.answer) for p in problems])
    except PromptChanged as e:
        if e.missing:
            where = f"prompt {e.index + 1} is gone from {path} (it now has {len(problems)} prompts)"
        else:
            line = problems[e.index].line
            where = f"{f'line {line}' if line else f'prompt {e.index + 1}'} of {path} changed"
        raise ConfigError(f"label output {store.root}: {where} since it was labelled; labels of old and new "
                          "prompts would mix. Restore the file, or start over with another --out") from None
    if unchecked:
        print(f"label: warning: {store.root} was labelled by an older version that kept no prompt fingerprints; "
              f"cannot check that its {unchecked} labelled prompts are still the first ones of {path}",
              file=sys.stderr)
    return done


def _summarise(store, n_embd: int) -> dict:  # type: ignore[no-untyped-def]
    from r2r_local.labeling import LabelSummary

    s = LabelSummary()
    for _, shard in store.shards(n_embd):
        s.add(LabelSummary(1, len(shard["label"]), int(shard["mismatch"].sum()), int(shard["label"].sum())))
    return s.as_dict()


def _where(path: str) -> str:
    """A model's place as the labelled data records it: a file's absolute path, a server's URL."""
    from r2r_local.backends.remote import is_remote

    return path if is_remote(path) else str(Path(path).resolve())

"""`r2r generate`: one routed generation, streamed or as one JSON document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from r2r_local.commands import (AHEAD_HELP, OVERLAP_HELP, add_model_flags, add_sampling_flags, check_flags, load_pair_for,
                                router_spec, sampling_params, versions)
from r2r_local.config import DEFAULT_MAX_TOKENS, GenerationSettings, as_dict
from r2r_local.errors import ConfigError

PROG = "r2r"


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="generate text with routed decoding",
                         description="Generate with the small model, escalating the router's picks to the large one.")
    add_model_flags(gen)
    gen.add_argument("--router", default=None, metavar="ROUTER",
                     help="slm | llm | random:P | entropy:T | path/to/router.onnx[@T] "
                          "(default: the configured router, else slm; the demo router with --demo)")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT", help="the prompt")
    src.add_argument("--prompt-file", metavar="F", help="read the prompt from a file ('-' = stdin)")
    gen.add_argument("--raw", action="store_true", help="use the prompt as is, without the chat template")
    gen.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                     help="turn thinking on or off through the chat template's switch (Qwen3's "
                          "enable_thinking); default: the model's own (R1 and Qwen3 think)")
    gen.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N", help="default %(default)s")
    gen.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    add_sampling_flags(gen)
    gen.add_argument("--overlap", action="store_true", help=OVERLAP_HELP)
    gen.add_argument("--ahead", action="store_true", help=AHEAD_HELP)
    gen.add_argument("--verify", action="store_true",
                     help="keep the small model's tokens as drafts until the large model's next call checks them, "
                          "correcting a divergence the router missed (prints only checked text)")
    gen.add_argument("--verify-margin", type=float, default=0.0, metavar="NATS",
                     help="with --verify: correct a token the router let through only where the large model "
                          "prefers its own token by more than NATS (log-probability difference; default 0: "
                          "wherever it would choose otherwise)")
    gen.add_argument("--audit", action="store_true",
                     help="count, without changing anything, the small model's tokens the large model would have "
                          "chosen otherwise at its next call (missed_divergences; each caught-up position then "
                          "costs an output of the large model)")
    gen.add_argument("--spec", type=int, default=None, metavar="K",
                     help="speculative decoding instead of routing: the small model drafts K tokens (1-64), the "
                          "large model verifies them in one call; the output is the large model's own")
    gen.add_argument("--json", action="store_true", help="print one JSON document instead of streaming")
    gen.set_defaults(func=run)


MAX_PROMPT_BYTES = 10 * 2**20  # 10 MiB: far beyond any context window, small enough to read at once


def read_prompt(args: argparse.Namespace) -> str:
    """The prompt text: valid UTF-8, at most MAX_PROMPT_BYTES, not empty or only whitespace.
    Files, stdin and devices are read up to one byte past the cap, never without bound."""
    if args.prompt is not None:
        what, text = "--prompt", args.prompt
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as lone surrogates
            raise ConfigError("--prompt: not valid UTF-8 text") from None
    else:
        what = "stdin (--prompt-file -)" if args.prompt_file == "-" else f"prompt file {args.prompt_file}"
        data = _read_capped(args.prompt_file, what)
        size = len(data)
        if size > MAX_PROMPT_BYTES:
            raise ConfigError(f"{what}: the prompt is larger than {MAX_PROMPT_BYTES // 2**20} MiB")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{what}: cannot read it as UTF-8 text ({e})") from None
    if size > MAX_PROMPT_BYTES:
        raise ConfigError(f"{what}: the prompt is larger than {MAX_PROMPT_BYTES // 2**20} MiB")
    if not text.strip():
        raise ConfigError(f"{what}: the prompt is empty (or only whitespace)")
    return text


def _read_capped(name: str, what: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read(MAX_PROMPT_BYTES + 1)
    path = Path(name)
    try:
        with path.open("rb") as f:
            return f.read(MAX_PROMPT_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{what}: is a directory") from None
    except OSError as e:
        raise ConfigError(f"{what}: cannot read it ({e.strerror or e})") from None


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    sampling = sampling_params(args)
    settings = GenerationSettings(args.max_tokens, tuple(args.stop))
    if args.raw and args.think is not None:
        raise ConfigError("--think/--no-think set the chat template's switch: they do nothing with --raw")
    prompt_text = read_prompt(args)
    for stop in args.stop:
        try:
            stop.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("--stop: not valid UTF-8 text") from None

    from r2r_local.chat import Message, StopBuffer, chat_tokens, raw_tokens, think_tokens
    from r2r_local.decode import Request

    small_spec, large_spec, pair = load_pair_for(args)
    try:
        router = pair.router(router_spec(args, "slm"), seed=args.seed)
        policy = _policy(args)
        pair.warn_threads(policy)
        if args.raw:
            prompt = raw_tokens(pair.small, prompt_text)
        else:
            prompt = chat_tokens(pair.small, [Message("user", prompt_text)], thinking=args.think)
        gen = pair.generate(Request(prompt, router, policy, sampling=sampling, settings=settings))
        if args.json:
            gen.run()
        else:
            shown = StopBuffer(settings.stop)
            for event in gen:
                sys.stdout.write(shown.feed(event.text))
                sys.stdout.flush()
            sys.stdout.write(shown.flush() + "\n")
            sys.stdout.flush()
        config = {
            "small": as_dict(small_spec), "large": as_dict(large_spec), "router": router.name,
            "threshold": router.threshold, "overlap": args.overlap and pair.decoder.concurrent,
            "ahead": args.ahead, "verify": args.verify, "audit": args.audit, "spec": args.spec, "policy": policy.name, "raw": args.raw,
            "thinking": args.think, "think_tokens": _think_ids(think_tokens(pair.small)),
            "sampling": as_dict(sampling),
            "generation": as_dict(settings), "prompt_tokens": len(prompt), "n_shared_vocab": pair.n_shared,
            "params_small": pair.small.n_params, "params_large": pair.large.n_params,
            "stop_reason": gen.stop_reason, "versions": versions(),
        }
        if args.json:
            _print_json(gen, config)
        else:
            _print_summary(gen, policy)
        if gen.message:
            print(f"{PROG}: {'error: ' if gen.stop_reason == 'error' else ''}{gen.message}", file=sys.stderr)
        if gen.stop_reason == "error":
            return 1
    finally:
        pair.close()
    return 0


def _think_ids(tags: Any) -> list[int] | None:
    """[<think> id, </think> id] of the small model (R1: 151648/151649, Qwen3: 151667/151668)."""
    return None if tags is None else [tags.open, tags.close]


def _policy(args: argparse.Namespace):
    from r2r_local.decode import policy_for_mode, routed

    if args.spec is not None:
        if args.overlap or args.ahead or args.verify or args.audit:
            raise ConfigError("--spec is its own mode: it cannot be combined with --overlap, --ahead, --verify or --audit")
        if not 1 <= args.spec <= 64:
            raise ConfigError(f"--spec K needs 1 <= K <= 64, got {args.spec}")
        return policy_for_mode(f"spec:{args.spec}")
    return routed(overlap=args.overlap, ahead=args.ahead, verify=args.verify, audit=args.audit,
                  margin=args.verify_margin)


def _print_json(gen: Any, config: dict[str, Any]) -> None:
    doc = {
        "text": gen.text,
        "tokens": [{"id": e.id, "text": e.text, "source": e.source, "p": e.p} for e in gen.events],
        "stats": gen.stats.as_dict(),
        "config": config,
    }
    json.dump(doc, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def _print_summary(gen: Any, policy: Any) -> None:
    """One line on stderr; activated params (billions in the stats) in a unit that fits: 278K, 1.5B."""
    from r2r_local.units import format_params

    s = gen.stats
    print(
        f"[{s.n_tokens} tokens, {s.large_tokens} by the large model ({100 * s.large_share:.1f}%) "
        f"in {s.large_calls} calls, {s.tokens_per_s:.1f} tok/s, {format_params(round(s.activated_params_b * 1e9))} "
        f"activated params{_drafts(gen.stats, policy)}, stop: {gen.stop_reason}]",
        file=sys.stderr,
    )


def _drafts(s: Any, policy: Any) -> str:
    """The summary's words on checked drafts and divergences, for the modes that have them."""
    if not (policy.spec or policy.verify or policy.audit):
        return ""
    missed = f", {s.missed_divergences} missed divergences" if policy.verify or policy.audit else ""
    kept = f", {s.draft_kept} drafted tokens kept, {s.rewinds} rewinds" if policy.spec or policy.verify else ""
    return kept + missed

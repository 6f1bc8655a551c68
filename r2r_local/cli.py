"""`r2r`: the command line. Parses flags, builds objects, calls the library.

stdout carries generated text (or the one JSON document of --json) only; progress, stats and
errors go to stderr. Every user error is one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from r2r_local import __version__
from r2r_local.config import DEFAULT_MAX_TOKENS, DEFAULT_N_CTX, GenerationSettings, ModelSpec, SamplingParams, as_dict
from r2r_local.errors import ConfigError, R2RError

PROG = "r2r"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--small", metavar="PATH", help="small model GGUF (default: the built-in pair)")
    g.add_argument("--large", metavar="PATH", help="large model GGUF (default: the built-in pair)")
    g.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX, metavar="N", help="context length (default %(default)s)")
    g.add_argument("--small-gpu-layers", type=int, default=0, metavar="N", help="small model layers on the GPU (-1 = all)")
    g.add_argument("--large-gpu-layers", type=int, default=0, metavar="N", help="large model layers on the GPU (-1 = all)")
    g.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (one implementation for both models)")
    g.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")
    g.add_argument("--top-k", type=int, default=0, metavar="K", help="keep the K most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass (1 = off)")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="seed for sampling and random routers")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="R2R token routing on one workstation.")
    parser.add_argument("--version", action="version", version=f"r2r-local {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log llama.cpp and library details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    gen = sub.add_parser("generate", help="generate text with routed decoding",
                         description="Generate with the small model, escalating the router's picks to the large one.")
    _add_model_flags(gen)
    gen.add_argument("--router", default="slm", metavar="ROUTER",
                     help="slm | llm | random:P | entropy:T | path/to/router.onnx (default %(default)s)")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT", help="the prompt")
    src.add_argument("--prompt-file", metavar="F", help="read the prompt from a file ('-' = stdin)")
    gen.add_argument("--raw", action="store_true", help="use the prompt as is, without the chat template")
    gen.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N", help="default %(default)s")
    gen.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    _add_sampling_flags(gen)
    gen.add_argument("--json", action="store_true", help="print one JSON document instead of streaming")
    gen.set_defaults(func=cmd_generate)
    return parser


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        return args.prompt
    if args.prompt_file == "-":
        return sys.stdin.read()
    path = Path(args.prompt_file)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prompt file {path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"prompt file {path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"prompt file {path}: cannot read it as UTF-8 text ({e})") from None


def _model_specs(args: argparse.Namespace) -> tuple[ModelSpec, ModelSpec]:
    small, large = args.small, args.large
    if small is None or large is None:
        from r2r_local.defaults import smollm2_path

        default = str(smollm2_path())
        small, large = small or default, large or default
    common = dict(n_ctx=args.n_ctx, threads=args.threads)
    return (ModelSpec(small, n_gpu_layers=args.small_gpu_layers, role="small", **common),
            ModelSpec(large, n_gpu_layers=args.large_gpu_layers, role="large", **common))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"r2r-local": __version__, "python": sys.version.split()[0]}
    for dist in ("llama-cpp-python", "onnxruntime-gpu", "onnxruntime", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    sampling = SamplingParams(args.temperature, args.top_k, args.top_p, args.seed)
    settings = GenerationSettings(args.max_tokens, tuple(args.stop))
    prompt_text = _read_prompt(args)
    small_spec, large_spec = _model_specs(args)

    from r2r_local.chat import Message, StopBuffer, chat_tokens, raw_tokens
    from r2r_local.pair import load_pair

    pair = load_pair(small_spec, large_spec)
    try:
        router = pair.router(args.router, seed=args.seed)
        engine = pair.engine(router)
        if args.raw:
            prompt = raw_tokens(pair.small, prompt_text)
        else:
            prompt = chat_tokens(pair.small, [Message("user", prompt_text)])
        gen = engine.generate(prompt, sampling, settings)
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
            "threshold": router.threshold, "raw": args.raw, "sampling": as_dict(sampling),
            "generation": as_dict(settings), "prompt_tokens": len(prompt), "n_shared_vocab": pair.n_shared,
            "params_small": pair.small.n_params, "params_large": pair.large.n_params,
            "stop_reason": gen.stop_reason, "versions": _versions(),
        }
        if args.json:
            _print_json(gen, config)
        else:
            _print_summary(gen)
        if gen.message:
            print(f"{PROG}: {gen.message}", file=sys.stderr)
    finally:
        pair.close()
    return 0


def _print_json(gen: Any, config: dict[str, Any]) -> None:
    s = gen.stats.as_dict()
    doc = {
        "text": gen.text,
        "tokens": [{"id": e.id, "text": e.text, "source": e.source, "p": e.p} for e in gen.events],
        "stats": s,
        "config": config,
    }
    json.dump(doc, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def _print_summary(gen: Any) -> None:
    s = gen.stats
    print(
        f"[{s.n_tokens} tokens, {s.large_tokens} by the large model ({100 * s.large_share:.1f}%) "
        f"in {s.large_calls} calls, {s.tokens_per_s:.1f} tok/s, {s.activated_params_b:.3f}B "
        f"activated params, stop: {gen.stop_reason}]",
        file=sys.stderr,
    )


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    if not verbose:
        logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except R2RError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: still one line, the traceback on request
        if os.environ.get("R2R_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(e).__name__}: {e} (set R2R_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())

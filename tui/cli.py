"""The r2r-chat command line: flags -> ChatOptions (models) and the app's own settings; the
console script that runs the app."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from r2r_local.commands import AHEAD_HELP, OVERLAP_HELP, add_server_flags, check_model_flags
from r2r_local.config import DEFAULT_MAX_TOKENS, DEFAULT_N_CTX, N_CTX_STEP, GenerationSettings, SamplingParams
from r2r_local.errors import ConfigError, R2RError
from r2r_local.router.baselines import SPEC_HELP

from r2r_tui.loader import ChatOptions

MAX_SPEC = 64  # the longest draft of speculative decoding (as `r2r generate --spec`)
DEFAULT_SPEC = 4  # F7's draft length when --spec does not give one

if TYPE_CHECKING:
    from r2r_tui.app import ChatApp


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="r2r-chat", description="Chat in the terminal with R2R routed decoding.")
    g = p.add_argument_group("models (flags win over the config file; with neither, r2r-chat opens on a welcome "
                             "view: the demo pair, or a known pair to download)")
    g.add_argument("--small", metavar="PATH", help="small model GGUF")
    g.add_argument("--large", metavar="PATH", help="large model GGUF, or http://HOST:PORT for one behind llama-server")
    g.add_argument("--router", metavar="ROUTER", help=SPEC_HELP)
    g.add_argument("--demo", action="store_true", help="use the built-in demo pair")
    g.add_argument("--config", type=Path, metavar="FILE", help="config file (default: config.toml in the user config dir)")
    g.add_argument("--n-ctx", type=int, metavar="N",
                   help=f"context length, a multiple of {N_CTX_STEP} (default: configured, else {DEFAULT_N_CTX})")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads per model")
    g.add_argument("--small-gpu-layers", type=int, metavar="N", help="small model layers on the GPU (-1 = all)")
    g.add_argument("--large-gpu-layers", type=int, metavar="N", help="large model layers on the GPU (-1 = all)")
    add_server_flags(g)
    g.add_argument("--overlap", action="store_true", help=OVERLAP_HELP)
    g.add_argument("--ahead", action="store_true", help=AHEAD_HELP)
    g.add_argument("--verify", action="store_true",
                   help="start in routed+verify mode (F5): the small model's tokens stay provisional until the "
                        "large model's next call checks them")
    g.add_argument("--spec", type=int, default=None, metavar="K",
                   help=f"start in speculative decoding mode (F7) with drafts of K tokens (1-{MAX_SPEC}; F7 uses "
                        f"{DEFAULT_SPEC} without this flag)")
    c = p.add_argument_group("chat")
    c.add_argument("--system", default="", metavar="TEXT", help="system prompt of new conversations")
    c.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N", help="per answer (default %(default)s)")
    c.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")
    c.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (each regenerate adds 1)")
    c.add_argument("--history", type=Path, metavar="FILE", help="history database (default: history.sqlite3 in the user data dir)")
    c.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                   help="start with thinking on or off where the model's chat template has the switch "
                        "(Qwen3; F6 toggles it); default: the model's own")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[ChatOptions, dict[str, Any]]:
    """(model options for the loader, keyword arguments of ChatApp); raises ConfigError on bad values."""
    args = build_parser().parse_args(argv)
    check_chat_flags(args)
    options = ChatOptions(small=args.small, large=args.large, router=args.router, n_ctx=args.n_ctx,
                          threads=args.threads, small_gpu_layers=args.small_gpu_layers,
                          large_gpu_layers=args.large_gpu_layers, demo=args.demo, config_file=args.config,
                          overlap=args.overlap, ahead=args.ahead, large_timeout=args.large_timeout,
                          large_retries=args.large_retries, large_top_k=args.large_top_k)
    app_kwargs = dict(history=args.history, system=args.system,
                      sampling=SamplingParams(temperature=args.temperature, seed=args.seed),
                      settings=GenerationSettings(max_tokens=args.max_tokens), thinking=args.think,
                      mode="spec" if args.spec is not None else "verify" if args.verify else "router",
                      spec_k=args.spec if args.spec is not None else DEFAULT_SPEC)
    return options, app_kwargs


def check_chat_flags(args: argparse.Namespace) -> None:
    """Refuse what would otherwise be silently ignored: --demo with model paths, a config file
    that is not there, and model values out of the bounds r2r's own flags have (the core's checks)."""
    from r2r_local.backends.remote import is_remote

    if args.demo and (args.small or (args.large and not is_remote(args.large))):
        raise ConfigError("--demo uses the built-in pair: leave out --small and --large "
                          "(--large http://HOST:PORT, a server of the demo's large model, is allowed)")
    if args.config is not None and not args.config.is_file():
        raise ConfigError(f"config file {args.config} does not exist")
    if args.spec is not None and args.verify:
        raise ConfigError("--spec and --verify each pick the mode to start in: give one of them")
    if args.spec is not None and not 1 <= args.spec <= MAX_SPEC:
        raise ConfigError(f"--spec K needs 1 <= K <= {MAX_SPEC}, got {args.spec}")
    check_model_flags(args)


def main(argv: Sequence[str] | None = None) -> int:
    """The r2r-chat console script."""
    import logging
    import sys

    from textual.logging import TextualHandler

    from r2r_tui.app import ChatApp
    from r2r_tui.loader import core_loader, first_run_for

    try:
        options, kwargs = parse_args(argv)
    except R2RError as e:
        print(f"r2r-chat: error: {e}", file=sys.stderr)
        return 2
    # Nothing may write to the terminal behind Textual's back: logs go to Textual's devtools log.
    logging.basicConfig(level=logging.WARNING, handlers=[TextualHandler()])
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    return run_chat(ChatApp(core_loader(options), first_run=first_run_for(options), **kwargs))


def run_chat(app: "ChatApp", **run_options: object) -> int:
    """Run the app; once it has exited, end the process without waiting for a worker still inside
    llama.cpp (a model loading, an answer that did not stop): Python would join those threads
    at exit, and a load cannot be interrupted. For main() only, never for an app in a test."""
    import asyncio
    import os
    import sys

    loop = asyncio.new_event_loop()
    try:
        app.run(loop=loop, **run_options)  # type: ignore[arg-type]
        if not app.workers_in_flight:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    except KeyboardInterrupt:  # Ctrl+C after the terminal was given back: no traceback
        pass
    if app.workers_in_flight:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(app.return_code or 0)
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`r2r`: the command line. Parses flags, builds objects, calls the library.

stdout carries generated text (or the one JSON document of --json) only; progress, stats and
errors go to stderr. Every user error is one line and a non-zero exit, never a traceback.
Each subcommand lives in `r2r_local/commands/<name>.py` and registers itself here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any, Sequence

from r2r_local import __version__
from r2r_local.errors import R2RError

PROG = "r2r"
# Imported when the parser is built, inside main's error handling: a Ctrl-C while numpy or
# onnxruntime load is then one line like any other.
COMMANDS = ["generate", "serve", "bench", "label", "train_router", "threshold", "doctor", "models"]


_MISSING = ("the following arguments are required", "one of the arguments")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line, takes no abbreviated flags (a prefix that
    is unique today may not be tomorrow), and names an unknown flag (with the nearest known one)
    before a required one it may have been meant as: `--promt x` is an unknown --promt, not a
    missing --prompt."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._arg_strings: list[str] = []

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._arg_strings = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:  # no r2r command takes arguments it does not know: say so where they are known
            self.error(self._unrecognized(extras))
        return namespace, extras

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith(_MISSING) and self._unknown_flags(self._arg_strings):
            message = self._unrecognized(self._arg_strings)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def _unknown_flags(self, strings: Sequence[str]) -> list[str]:
        """The --flags among `strings` that this parser does not know (up to a lone '--')."""
        out = []
        for s in strings:
            if s == "--":
                break
            flag = s.split("=", 1)[0]
            if flag.startswith("--") and flag not in self._option_string_actions:
                out.append(flag)
        return out

    def _unrecognized(self, strings: Sequence[str]) -> str:
        import difflib

        unknown = self._unknown_flags(strings)
        if not unknown:
            return f"unrecognized arguments: {' '.join(strings)}"
        near = difflib.get_close_matches(unknown[0], [o for o in self._option_string_actions if o.startswith("--")], n=1)
        return f"unrecognized arguments: {' '.join(unknown)}" + (f" (did you mean {near[0]}?)" if near else "")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="R2R token routing on one workstation.")
    parser.add_argument("--version", action="version", version=f"r2r-local {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log llama.cpp and library details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"r2r_local.commands.{name}").register(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    if not verbose:
        logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        _setup_logging(args.verbose)
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
        if _caused_by_interrupt(e):  # e.g. a C extension's import cut short by Ctrl-C
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        if os.environ.get("R2R_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(e).__name__}: {e} (set R2R_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 70


def _caused_by_interrupt(e: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())

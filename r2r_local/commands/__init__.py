"""`r2r` subcommands: one module each, with `register(subparsers)`; shared flags live here."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from r2r_local import __version__
from r2r_local.config import (DEFAULT_N_CTX, MAX_N_CTX, MAX_THREADS, N_CTX_STEP, ModelSpec, SamplingParams,
                              check_free_gb, check_gpu_layers, check_n_ctx, check_seed, check_threads)

if TYPE_CHECKING:
    from r2r_local.choice import PairChoice


OVERLAP_HELP = ("run the small model's next step while the router decides (same output; faster when the "
                "router's cost is a real share of a small step and has a core or the GPU to itself)")
AHEAD_HELP = ("let the small model write ahead while the large model catches up, keeping what the large "
              "model's choice confirms (same output for trained, entropy, slm and llm routers; "
              "combines with --overlap)")


def add_model_flags(p: argparse.ArgumentParser, *, router: bool = True) -> None:
    """--demo, --small, --large, --n-ctx, GPU layers, --threads; `router`: the command runs a router
    (--demo then brings the demo's own)."""
    g = p.add_argument_group("models")
    g.add_argument("--demo", action="store_true",
                   help="the built-in demo pair (models/demo: an addition task)"
                        + (" and its router when shipped" if router else ""))
    g.add_argument("--small", metavar="PATH", help="small model GGUF (default: the configured pair, see "
                   "r2r models pull / add)")
    g.add_argument("--large", metavar="PATH", help="large model GGUF, or http://HOST:PORT for one behind "
                   "llama-server (default: the configured pair)")
    g.add_argument("--n-ctx", type=int, default=None, metavar="N",
                   help=f"context length, a multiple of {N_CTX_STEP} up to {MAX_N_CTX} (default: configured, "
                        f"else {DEFAULT_N_CTX})")
    g.add_argument("--small-gpu-layers", type=int, default=None, metavar="N",
                   help="small model layers on the GPU (-1 = all; default: configured, else the fit plan)")
    g.add_argument("--large-gpu-layers", type=int, default=None, metavar="N",
                   help="large model layers on the GPU (-1 = all; default: configured, else as many as fit)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"CPU threads (1..{MAX_THREADS}; default: configured, else all cores)")
    add_server_flags(g)


def add_server_flags(g: "argparse._ArgumentGroup | argparse.ArgumentParser") -> None:
    """--large-timeout, --large-retries, --large-top-k: the requests to a served large model
    (r2r_local.server_bounds); None = not given (the config file, else the default, decides)."""
    from r2r_local.server_bounds import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, DEFAULT_TOP_K, VLLM_TOP_K

    served = "; only with --large http://HOST:PORT"
    g.add_argument("--large-timeout", type=float, default=None, metavar="S",
                   help=f"seconds a request to the large model's server may wait for an answer (default: "
                        f"configured, else {DEFAULT_TIMEOUT_S:g}){served}")
    g.add_argument("--large-retries", type=int, default=None, metavar="N",
                   help=f"extra tries of a request that could not connect or timed out (default: configured, "
                        f"else {DEFAULT_RETRIES}){served}")
    g.add_argument("--large-top-k", type=int, default=None, metavar="K",
                   help=f"log-probabilities asked per call; sampling is truncated to them (default: configured, "
                        f"else {DEFAULT_TOP_K} for llama-server, {VLLM_TOP_K} for vLLM){served}")


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (one implementation for both models)")
    g.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")
    g.add_argument("--top-k", type=int, default=0, metavar="K", help="keep the K most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass (1 = off)")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="seed for sampling and random routers")


def check_model_flags(args: argparse.Namespace) -> None:
    """The bounds of the model flags a command has (n-ctx, threads, GPU layers, --assume-free-gb),
    checked before any file is read or model loaded; r2r's commands and r2r-chat share it."""
    if getattr(args, "n_ctx", None) is not None:
        check_n_ctx(args.n_ctx)
    check_threads(getattr(args, "threads", None))
    check_gpu_layers(getattr(args, "small_gpu_layers", None), "--small-gpu-layers")
    check_gpu_layers(getattr(args, "large_gpu_layers", None), "--large-gpu-layers")
    check_free_gb(getattr(args, "assume_free_gb", None))
    from r2r_local.server_bounds import SERVER_KEYS, check_server_value

    for key in SERVER_KEYS:
        check_server_value(key, getattr(args, key, None))


def check_flags(args: argparse.Namespace) -> None:
    """Everything a run's flags can be checked for before loading: model flags, seed, router spec."""
    from r2r_local.router.baselines import check_router_spec

    check_model_flags(args)
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed)
    if getattr(args, "router", None) is not None:
        check_router_spec(args.router)


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(args.temperature, args.top_k, args.top_p, args.seed)


def choice_for(args: argparse.Namespace) -> "PairChoice":
    """The pair a command's flags choose, the configured pair filling what they leave out (the same
    resolution as r2r-chat: r2r_local.choice.resolve_pair)."""
    from r2r_local.choice import KEYS, resolve_pair

    check_model_flags(args)
    return resolve_pair({k: getattr(args, k, None) for k in KEYS}, demo=getattr(args, "demo", False))


def model_specs(args: argparse.Namespace) -> tuple[ModelSpec, ModelSpec]:
    """The small and large ModelSpec: flags, then the config file (NoModelsError when neither names one).

    GPU layers nobody set come from the fit plan (r2r_local.fit): small model and router first,
    then as many large-model layers as fit. Where a GPU is used the plan is said on stderr before
    loading, as is a configured value that is not used; without one both models run on the CPU.
    """
    from r2r_local.choice import specs_for

    choice = choice_for(args)
    runs_router = hasattr(args, "router")  # label has no router: its notes and memory do not apply
    for note in choice.notes if runs_router else ():
        print(f"r2r: {note}", file=sys.stderr)
    small, large, plan = specs_for(choice, choice.router if runs_router else None)
    if plan is not None and plan.free_bytes is not None:
        for line in plan.lines():
            print(f"plan: {line}", file=sys.stderr)
    return small, large


def router_spec(args: argparse.Namespace, fallback: str) -> str:
    """--router; else with --demo the shipped demo router (or the demo's fallback); else the
    configured router (when it belongs to the small model in use); else `fallback`."""
    return choice_for(args).router or fallback


def load_pair_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Specs from the flags (with the fit plan) and the loaded pair; loading that runs out of GPU
    memory is retried with fewer large-model layers."""
    from r2r_local.fit import load_pair_fitted

    small_spec, large_spec = model_specs(args)
    pair, used, tried = load_pair_fitted(small_spec, large_spec)
    if used != tried:
        print(f"plan: out of GPU memory, loaded the large model with {used} GPU layers", file=sys.stderr)
    return small_spec, large_spec, pair


def versions() -> dict[str, str]:
    """Versions recorded next to every result."""
    import importlib.metadata as md

    out = {"r2r-local": __version__, "python": sys.version.split()[0]}
    for dist in ("llama-cpp-python", "onnxruntime-gpu", "onnxruntime", "numpy", "gguf"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out

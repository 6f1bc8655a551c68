"""`r2r serve`: the loaded pair behind an OpenAI-compatible HTTP server (docs/serve.md)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from r2r_local.commands import (AHEAD_HELP, OVERLAP_HELP, add_model_flags, add_sampling_flags, check_flags,
                                load_pair_for, router_spec, sampling_params)
from r2r_local.errors import ConfigError

if TYPE_CHECKING:
    from r2r_local.serve.metrics import Metrics
    from r2r_local.serve.prompts import Served
    from r2r_local.serve.scheduler import Scheduler

PROG = "r2r serve"
KEY_ENV = "R2R_API_KEY"
DEFAULT_MAX_QUEUE = 32
_EXTRA = ("starlette", "uvicorn", "pydantic", "prometheus_client")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve routed decoding over an OpenAI-compatible HTTP API",
                       description="Serve the pair over an OpenAI-compatible API (/v1/chat/completions, "
                                   "/v1/completions, /v1/models, /health, /metrics). The sampling flags are "
                                   "the defaults of requests that leave those fields out. See docs/serve.md.")
    add_model_flags(p)
    p.add_argument("--router", default=None, metavar="ROUTER",
                   help="slm | llm | random:P | entropy:T | path/to/router.onnx[@T] "
                        "(default: the configured router, else slm; the demo router with --demo)")
    p.add_argument("--overlap", action="store_true", help=OVERLAP_HELP)
    p.add_argument("--ahead", action="store_true", help=AHEAD_HELP)
    add_sampling_flags(p)  # the defaults of requests that leave them out
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    g.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0: a free one)")
    g.add_argument("--api-key", metavar="KEY", default=None,
                   help=f"require 'Authorization: Bearer KEY' (default: ${KEY_ENV}; the variable keeps the key "
                        "out of the process list)")
    g.add_argument("--insecure-no-api-key", action="store_true",
                   help="accept listening on a non-loopback address without an API key (anyone who reaches "
                        "the port can use the models)")
    g.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
                   help="requests that may wait while one runs; more get 429 (default %(default)s)")
    p.set_defaults(func=run)


def check_server_flags(args: argparse.Namespace) -> str | None:
    """The API key to require (None: none), after the checks that need no models: port, queue
    bound, and the rule that a non-loopback address needs a key or an explicit opt-out."""
    from r2r_local.serve.server import is_loopback

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    if not 0 <= args.max_queue <= 100_000:
        raise ConfigError(f"--max-queue must be between 0 and 100000, got {args.max_queue}")
    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV)
    if key is not None and not key.strip():
        raise ConfigError(f"the API key ({'--api-key' if args.api_key is not None else KEY_ENV}) is empty")
    if key is None and not is_loopback(args.host) and not args.insecure_no_api_key:
        raise ConfigError(f"--host {args.host} is reachable from other machines: set an API key (--api-key or "
                          f"{KEY_ENV}), or pass --insecure-no-api-key to run without one")
    return key


def _require_extra() -> None:
    import importlib

    missing = []
    for module in _EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"r2r serve needs the serve extra ({', '.join(missing)} missing): "
                          "pip install 'r2r-local[serve]'")


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    _require_extra()
    key = check_server_flags(args)

    from r2r_local.serve import server
    from r2r_local.serve.routes import create_app

    sock = server.bind(args.host, args.port)  # before loading: a taken port fails fast
    try:
        scheduler, served, metrics = _start_engine(args)
    except BaseException:
        sock.close()
        raise
    try:
        app = create_app(scheduler, served, metrics, key)
        threshold = "" if served.router.threshold is None else f"@{served.router.threshold:.3g}"
        print(f"{PROG}: listening on {server.url_of(sock)}/v1 (model {served.model_id}: small {served.small_file}, "
              f"large {served.large_file}, router {served.router_name}{threshold}, {served.policy.name}, context "
              f"{served.n_ctx}{', API key required' if key else ''})", file=sys.stderr, flush=True)
        server.run(app, sock, scheduler.cancel_all, args.verbose)
        print(f"{PROG}: stopped", file=sys.stderr)
    finally:
        sock.close()
        scheduler.close()
    return 0


def _start_engine(args: argparse.Namespace) -> "tuple[Scheduler, Served, Metrics]":
    """(scheduler, served, metrics): the pair loaded and its worker running; on failure nothing stays loaded."""
    from r2r_local.decode import routed
    from r2r_local.serve.metrics import Metrics
    from r2r_local.serve.prompts import Served
    from r2r_local.serve.scheduler import Scheduler

    small_spec, large_spec, pair = load_pair_for(args)
    try:
        router = pair.router(router_spec(args, "slm"), seed=args.seed)
        policy = routed(overlap=args.overlap, ahead=args.ahead)
        pair.warn_threads(policy)
        served = Served.of(pair, router, policy, sampling_params(args), small_spec.path, large_spec.path)
        metrics = Metrics()
        scheduler = Scheduler(pair, router, args.max_queue, metrics)
    except BaseException:
        pair.close()
        raise
    metrics.watch(scheduler, {"model": served.model_id, "small": served.small_file, "large": served.large_file,
                              "router": served.router_name, "policy": policy.name})
    return scheduler, served, metrics

"""`r2r models list|pull|add`: set up the model pair that `r2r-chat` uses.

`pull` downloads a known pair (models/known_models.toml) with sha256 checks, converts the
published router to ONNX when the converter is available, plans the GPU fit and writes the
[models] table of the config file. `add` does the same for files already on disk.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from r2r_local.commands import add_server_flags, check_model_flags
from r2r_local.config import DEFAULT_N_CTX, load_user_config, write_user_config
from r2r_local.errors import ConfigError
from r2r_local.units import format_bytes

GB = 1e9


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, download or register the model pair used by r2r-chat",
                       description="Set up the small/large pair (and router) that r2r-chat reads from the "
                                   "[models] table of the config file (r2r doctor shows where it is).")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", parser_class=type(p))
    ls = msub.add_parser("list", help="known pairs, their files and whether they are downloaded")
    ls.add_argument("--json", action="store_true", help="print one JSON document")
    ls.set_defaults(func=run_list)

    pull = msub.add_parser("pull", help="download a known pair (huggingface_hub, sha256-checked) and configure it")
    pull.add_argument("name", help="a pair from `r2r models list`, e.g. r1-q4")
    pull.add_argument("--dry-run", action="store_true", help="say what would be downloaded, download nothing")
    pull.add_argument("--no-router", action="store_true", help="skip the published router")
    pull.add_argument("--int8-router", action="store_true",
                      help="also store the converted router with int8 weights and configure that one "
                           "(~3x faster on a CPU; see docs/export.md for what it changes)")
    _add_setup_flags(pull)
    pull.set_defaults(func=run_pull)

    add = msub.add_parser("add", help="register GGUF files already on disk and configure them")
    add.add_argument("--small", required=True, metavar="PATH", help="small model GGUF")
    add.add_argument("--large", required=True, metavar="PATH", help="large model GGUF, or http://HOST:PORT for one "
                     "behind llama-server (checked now: reachable, same tokenizer as the small model)")
    add.add_argument("--router", metavar="ROUTER", help="router .onnx (with its .json sidecar) or slm | llm | "
                     "random:P | entropy:T")
    _add_setup_flags(add)
    add_server_flags(add)
    add.set_defaults(func=run_add)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _add_setup_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-ctx", type=int, default=None, metavar="N",
                   help=f"context length to write, a multiple of 256 (default: keep the configured one, else "
                        f"{DEFAULT_N_CTX} at load)")
    p.add_argument("--small-gpu-layers", type=int, default=None, metavar="N",
                   help="write this count instead of leaving it to the fit plan made at each load (-1 = all)")
    p.add_argument("--large-gpu-layers", type=int, default=None, metavar="N",
                   help="write this count instead of leaving it to the fit plan made at each load (-1 = all)")
    p.add_argument("--assume-free-gb", type=float, default=None, metavar="GB",
                   help="plan for a GPU with this much free memory instead of the one found, and write "
                        "that plan's layer counts")
    p.add_argument("--no-config", action="store_true", help="do not write the config file")
    p.add_argument("--json", action="store_true", help="print one JSON document")


# --- list --------------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    from r2r_local.catalog import load_catalog, local_path

    rows = []
    for pair in load_catalog().values():
        files = [f for f in (pair.small, pair.large, pair.router) if f is not None]
        rows.append({
            "name": pair.name, "description": pair.description,
            "files": [{"role": role, "repo": f.repo, "file": f.file, "revision": f.revision,
                       "size": f.size, "approx_gb": f.approx_gb, "sha256": f.sha256 or None,
                       "downloaded": local_path(f).is_file(), "path": str(local_path(f))}
                      for role, f in zip(("small", "large", "router"), files)],
            "total_gb": round(sum(f.size / GB if f.size else f.approx_gb for f in files), 2),
        })
    if args.json:
        json.dump({"pairs": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in rows:
        print(f"{r['name']}: {r['description']} (~{r['total_gb']} GB)")
        for f in r["files"]:
            size = format_bytes(f["size"]) if f["size"] else (f"~{f['approx_gb']} GB" if f["approx_gb"] else "size unknown")
            sha = "sha256 published" if f["sha256"] else "sha256 unknown (recorded on first download)"
            got = "downloaded" if f["downloaded"] else "not downloaded"
            print(f"  {f['role']:6} {f['repo']}/{f['file']}  {size}, {sha}, {got}")
    return 0


# --- set-up shared by pull and add -------------------------------------------------------------

def _configure(args: argparse.Namespace, small: Path, large: Path | str, router: str | None) -> dict[str, Any]:
    """Plan the fit and (unless --no-config) set the [models] keys; returns what was done.

    The config gets what the user chose: the pair, the router, and --n-ctx and GPU layers when
    given; the fit plan shown is made again each time the models load (on that machine, with
    the memory free then), so its layer counts are written only for --assume-free-gb, a plan
    for memory the load cannot see. Every other key and table of the config file is kept; so is
    a configured router when none is given, unless it does not fit the new small model, and so
    are configured GPU layers unless the pair changes."""
    from r2r_local.fit import config_layers, plan_for_machine

    cfg = load_user_config()
    n_ctx = args.n_ctx or cfg.get("n_ctx") or DEFAULT_N_CTX
    free = None if args.assume_free_gb is None else int(args.assume_free_gb * GB)
    if isinstance(large, str):  # a served large model: no GPU plan for it
        from r2r_local.served import config_changes

        fit, more = config_changes(large, vars(args))
    else:
        plan = plan_for_machine(str(small), str(large), n_ctx=n_ctx, router=router, assume_free_bytes=free,
                                small_gpu_layers=args.small_gpu_layers, large_gpu_layers=args.large_gpu_layers)
        fit, more = plan.as_dict(), {"large": str(large.resolve())}
        planned = {"small_gpu_layers": config_layers(plan.small), "large_gpu_layers": config_layers(plan.large)}
        for key, planned_layers in planned.items():
            if getattr(args, key) is not None or free is not None:
                more[key] = planned_layers  # the flag's value, or the plan for the assumed memory
    changes: dict[str, Any] = {"small": str(small.resolve())} | more
    if args.n_ctx is not None:
        changes["n_ctx"] = args.n_ctx
    from r2r_local.served import stale_server_keys

    drop = _stale_layers(cfg, changes) + stale_server_keys(cfg, changes["large"])
    if router is not None:
        changes["router"] = str(Path(router).resolve()) if router.endswith(".onnx") else router
    elif cfg.get("router") and (why := _router_misfit(cfg["router"], small)):
        drop += ("router",)
        print(f"r2r: the configured router {cfg['router']} is left out of the new config: {why}", file=sys.stderr)
    models = {k: v for k, v in cfg.items() if k not in drop} | changes
    written = backup = None
    if not args.no_config:
        written, backup = write_user_config(changes, drop=drop)
    return {"models": models, "fit": fit, "config": written and str(written), "backup": backup and str(backup)}


def _stale_layers(cfg: dict[str, Any], changes: dict[str, Any]) -> tuple[str, ...]:
    """Configured GPU layer counts made for another pair (and not set again now): left out, so
    that the fit plan decides for the new pair at load."""
    if (cfg.get("small"), cfg.get("large")) == (changes["small"], changes["large"]):
        return ()
    stale = tuple(k for k in ("small_gpu_layers", "large_gpu_layers") if k in cfg and k not in changes)
    for key in stale:
        print(f"r2r: the configured {key} = {cfg[key]} (set for the previous pair) is left out of the new "
              f"config: the fit plan decides at load (--{key.replace('_', '-')} N sets it)", file=sys.stderr)
    return stale


def _router_misfit(spec: str, small: Path) -> str | None:
    """Why a configured router cannot serve `small` (None when it can)."""
    from r2r_local.catalog import check_router_for
    from r2r_local.errors import R2RError

    try:
        check_router_for(spec, small)
    except R2RError as e:
        return str(e)
    return None


def _report(args: argparse.Namespace, done: dict[str, Any]) -> None:
    if args.json:
        json.dump(done, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for line in done["fit"]["lines"]:
        print(f"fit: {line}")
    if served := done.get("served"):
        print(f"large: {served['engine']} serving {served['model']} (context {served['n_ctx']}, vocabulary "
              f"{served['n_vocab']}; {done['vocab_check']}: same tokenizer)")
    unset = [k for k in ("small_gpu_layers", "large_gpu_layers") if k not in done["models"] and not served]
    if unset:
        print(f"fit: made again at each load for {' and '.join(unset)} (not written: the GPU's free memory "
              "then decides)")
    if done["config"]:
        print(f"config written: {done['config']}")
        if done["backup"]:
            print(f"previous config kept as {done['backup']} (some of its comments are not in the new file)")
    else:
        print("config not written (--no-config)")
    for key, value in done["models"].items():
        print(f"  {key} = {value}")


_CHECK_WORDS = {"cached": ": verified earlier, unchanged since", "verified": ": sha256 matches the published hash",
                "recorded": ": no published sha256, this download's hash is recorded and later ones must match"}


# --- pull --------------------------------------------------------------------------------------

def run_pull(args: argparse.Namespace) -> int:
    from r2r_local.catalog import (check_pairing, convert_router, fetch, find_pair, int8_router, local_path,
                                   stderr_progress)

    check_model_flags(args)
    pair = find_pair(args.name)
    files = [("small", pair.small), ("large", pair.large)]
    if pair.router is not None and not args.no_router:
        files.append(("router", pair.router))
    if args.dry_run:
        _dry_run(args, pair.name, files)
        return 0
    got: dict[str, Path] = {}
    checks: dict[str, str] = {}
    for role, f in files:
        got[role], checks[role] = fetch(f, stderr_progress)
        stderr_progress(f"{role}: {got[role]} ({checks[role]}{_CHECK_WORDS[checks[role]]})")
    from r2r_local.backends.gguf_file import check_gguf_file

    check_gguf_file(got["small"], "small")
    check_gguf_file(got["large"], "large")
    n_shared = check_pairing(got["small"], got["large"])
    router = None
    if "router" in got:
        onnx = convert_router(got["router"], got["small"], stderr_progress)
        if onnx and args.int8_router:
            onnx = int8_router(onnx, stderr_progress)
        router = str(onnx) if onnx else None
        if router is None:
            stderr_progress("router: the config gets no router; add one later with r2r models add --router PATH")
    threshold = _router_threshold(router, stderr_progress)
    done = _configure(args, got["small"], got["large"], router)
    done |= {"pair": pair.name, "checksums": checks, "n_shared_vocab": n_shared, "router_threshold": threshold}
    _report(args, done)
    return 0


def _router_threshold(router: str | None, say: Callable[[str], None]) -> float | None:
    """The converted router's threshold (its sidecar's), said through `say`: the published
    checkpoints carry the one their authors chose (common_args.threshold), which the reference
    R2R uses when its config names none, as its Qwen3 configs do."""
    if router is None:
        return None
    from r2r_local.router.onnx import read_sidecar

    threshold = float(read_sidecar(router)["threshold"])
    say(f"router: threshold {threshold:g}, the one saved in the checkpoint "
        f"(change it with r2r threshold or ROUTER.onnx@T)")
    return threshold


def _dry_run(args: argparse.Namespace, name: str, files: list[tuple[str, Any]]) -> None:
    """What pull would do, step by step, without doing any of it (one JSON document with --json)."""
    from r2r_local.catalog import download_problem, local_path

    plan = []
    for role, f in files:
        path = local_path(f)
        plan.append({"role": role, "repo": f.repo, "file": f.file, "revision": f.revision, "size": f.size or None,
                     "approx_gb": f.approx_gb or None, "sha256": f.sha256 or None, "path": str(path),
                     "present": path.is_file()})
    steps = []
    if not all(f["present"] for f in plan) and (missing := download_problem()):
        steps.append(f"{missing} (not installed now)")
    if any(f["role"] == "router" for f in plan):
        onnx = Path(next(f["path"] for f in plan if f["role"] == "router")).with_suffix(".onnx")
        int8 = onnx.with_name(onnx.stem + "-int8.onnx")
        if _converted(onnx):  # what catalog.convert_router / int8_router skip
            steps.append(f"keep the router already converted at {onnx}")
        else:
            steps.append(f"convert the router checkpoint to {onnx} (needs the 'pipeline' extra), for the "
                         f"small model's hidden size and vocabulary, keeping the threshold saved in the checkpoint")
        if args.int8_router:
            steps.append(f"keep its int8 copy {int8}" if _converted(int8)
                         else f"store it with int8 weights as {int8}")
    steps.append("plan the GPU fit and " + ("leave the config file alone (--no-config)" if args.no_config
                                            else "write the [models] table of the config file"))
    if args.json:
        json.dump({"pair": name, "dry_run": True, "files": plan, "then": steps}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for f in plan:
        size = (format_bytes(f["size"]) if f["size"] else f"~{f['approx_gb']} GB" if f["approx_gb"]
                else "size unknown")
        sha = f"sha256 {f['sha256']}" if f["sha256"] else "no published sha256 (the first download's is recorded)"
        state = "present" if f["present"] else "to download"
        print(f"{f['role']}: {f['repo']}/{f['file']}@{f['revision']}, {size}, {sha}\n  -> {f['path']} ({state})")
    for step in steps:
        print(f"then: {step}")


def _converted(onnx: Path) -> bool:
    """Whether a router conversion is already there (an .onnx with its sidecar): pull keeps it."""
    return onnx.is_file() and onnx.with_suffix(".json").is_file()


# --- add ---------------------------------------------------------------------------------------

def run_add(args: argparse.Namespace) -> int:
    from r2r_local.backends.gguf_file import check_gguf_file
    from r2r_local.backends.remote import is_remote
    from r2r_local.catalog import check_pairing, check_router_for
    from r2r_local.choice import bounds_for
    from r2r_local.server_bounds import SERVER_KEYS

    check_model_flags(args)
    load_user_config()  # a broken config file is reported before the models are read
    bounds, _ = bounds_for(args.large, {k: getattr(args, k) for k in SERVER_KEYS}, {})  # refused with a file
    check_gguf_file(args.small, "small")  # the checks llama.cpp makes when it loads them
    small, large = Path(args.small), Path(args.large)
    if is_remote(args.large):
        if args.large_gpu_layers is not None:
            raise ConfigError("--large-gpu-layers: a large model behind a server is placed by its server; leave it out")
        from r2r_local.served import check_served_pair

        served = check_served_pair(args.small, args.large, bounds)
        n_shared, large_ref = served.pop("n_shared_vocab"), args.large.rstrip("/")
        vocab_check = "every token's text and a sample text compared with the server's (/detokenize, /tokenize)"
    else:
        check_gguf_file(args.large, "large")
        n_shared, served, large_ref = check_pairing(small, large), None, large
        vocab_check = "tokenizer token lists compared in the GGUF headers"
    if args.router is not None:
        check_router_for(args.router, small)
    done = _configure(args, small, large_ref, args.router)
    done |= {"n_shared_vocab": n_shared, "vocab_check": vocab_check} | ({"served": served} if served else {})
    _report(args, done)
    return 0

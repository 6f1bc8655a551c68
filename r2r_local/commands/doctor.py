"""`r2r doctor`: is this machine set up to run the pair on its GPU, and if not, what fixes it."""

from __future__ import annotations

import argparse
import json
import sys

from r2r_local.commands import add_server_flags, check_model_flags

GB = 1e9


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor", help="check the GPU set-up: llama.cpp build, GPUs, onnxruntime CUDA, models, fit plan",
        description="Check what llama-cpp-python was built with, the GPUs and their free memory, whether "
                    "onnxruntime can open a CUDA session, the configured models and the GPU fit plan. "
                    "Every problem comes with the command that fixes it. Exits 0 whenever the checks "
                    "ran (use --strict to exit 1 when a problem was found).")
    p.add_argument("--demo", action="store_true", help="check the built-in demo pair (models/demo) and its router")
    p.add_argument("--small", metavar="PATH", help="small model GGUF (default: the configured one)")
    p.add_argument("--large", metavar="PATH", help="large model GGUF, or http://HOST:PORT for one behind llama-server "
                   "(default: the configured one)")
    p.add_argument("--router", metavar="ROUTER", help="router .onnx or built-in spec (default: configured)")
    p.add_argument("--n-ctx", type=int, default=None, metavar="N", help="context length for the plan "
                   "(default: configured, else 4096)")
    p.add_argument("--small-gpu-layers", type=int, default=None, metavar="N",
                   help="check these small-model GPU layers instead of the automatic plan (-1 = all)")
    p.add_argument("--large-gpu-layers", type=int, default=None, metavar="N",
                   help="check these large-model GPU layers instead of the automatic plan (-1 = all)")
    p.add_argument("--assume-free-gb", type=float, default=None, metavar="GB",
                   help="plan for a GPU with this much free memory (GB = 1e9 bytes) instead of the one found")
    add_server_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--strict", action="store_true", help="exit 1 when a problem was found")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from r2r_local.doctor import diagnose
    from r2r_local.server_bounds import SERVER_KEYS

    check_model_flags(args)
    free = None if args.assume_free_gb is None else int(args.assume_free_gb * GB)
    server_flags = {k: getattr(args, k) for k in SERVER_KEYS}
    small, large, router = args.small, args.large, args.router
    if args.demo:
        from r2r_local.choice import resolve_pair

        pair = resolve_pair({"small": small, "large": large, "router": router, **server_flags}, demo=True)
        small, large, router = pair.small, pair.large, pair.router
    report = diagnose(small=small, large=large, router=router, n_ctx=args.n_ctx, assume_free_bytes=free,
                      small_gpu_layers=args.small_gpu_layers, large_gpu_layers=args.large_gpu_layers,
                      demo=args.demo, server_flags=server_flags)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 1 if args.strict and report.problems else 0


def _size(n: int | None) -> str:
    from r2r_local.units import format_bytes

    return "?" if n is None else format_bytes(n)


def _flag(model_plan: dict) -> int:
    """llama.cpp's n_layer + 1 (every layer and the head) is written -1 (= all) on flags."""
    k = model_plan["gpu_layers"]
    return -1 if k > model_plan["n_layer"] else k


def _served_lines(role: str, e: dict) -> list[str]:
    """A reachable served model: what it serves, and the pairing check with the small model."""
    from r2r_local.units import format_params

    return [f"  {role}: {e['path']}: reachable, {e['engine']} serving {e['model']} (context {e['n_ctx']}, "
            f"vocabulary {e['n_vocab']}, {format_params(e['n_params'])} params)",
            f"    pairing with the small model: {e['pairing']}"]


def render(r) -> str:  # r: r2r_local.doctor.Report
    out = [f"r2r doctor: r2r-local {r.versions.get('r2r-local')}, Python {r.versions.get('python')}", ""]
    ll = r.llama
    out.append(f"llama-cpp-python {ll['version']}: {ll['build']}")
    out.append(f"  system info: {ll['system_info']}")
    out.append("GPUs:")
    if r.gpus["devices"]:
        for g in r.gpus["devices"]:
            out.append(f"  {g['index']}: {g['name']}, {_size(g['free_bytes'])} free of {_size(g['total_bytes'])} "
                       f"({g['source']})")
        if r.gpus["driver"]:
            out.append(f"  driver {r.gpus['driver']}")
    else:
        out.append(f"  {r.gpus['detail']}")
    o = r.onnxruntime
    out.append(f"onnxruntime: {o['package'] or 'not installed'} {o['version'] or ''}".rstrip())
    out.append(f"  providers listed: {', '.join(o['available']) or '-'}")
    out.append(f"  CUDA session: {'yes' if o['cuda_ok'] else 'no'} ({o['detail']})")
    m = r.models
    out.append(f"models ({m['source']}):")
    for role in ("small", "large"):
        e = m.get(role)
        if not e:
            out.append(f"  {role}: not set")
        elif e.get("served") and "error" in e:
            out.append(f"  {role}: not reachable: {e['error']}")
        elif "error" in e:
            out.append(f"  {role}: {e['path']}: {e['error']}")
        elif e.get("served"):
            out += _served_lines(role, e)
        else:
            out.append(f"  {role}: {e['path']} (weights {_size(e['weights_bytes'])}, file {_size(e['size_bytes'])}, "
                       f"{e['arch']}, {e['n_layer']} layers)")
    rt = m.get("router") or {}
    out.append(f"  router: {rt.get('spec') or 'not set'}"
               + (f" ({_size(rt['size_bytes'])})" if rt.get("size_bytes") else ""))
    if r.fit is not None:
        assumed = ", assumed free memory" if r.fit.get("assumed_free") else ""
        out.append(f"fit plan (n_ctx {r.fit['n_ctx']}{assumed}):")
        for line in r.fit.get("lines", [r.fit.get("error", "")]):
            out.append(f"  {line}")
        if "lines" in r.fit:
            out.append(f"  flags: --small-gpu-layers {_flag(r.fit['small'])} --large-gpu-layers {_flag(r.fit['large'])}")
    out.append("")
    if not r.findings:
        out.append("no problems found")
    else:
        out.append("problems and fixes:")
        for f in r.findings:
            out.append(f"  [{f.severity}] {f.what}")
            out.append(f"      fix: {f.fix}")
        n_p = len(r.problems)
        out.append(f"{n_p} problem(s), {len(r.findings) - n_p} warning(s)")
    return "\n".join(out) + "\n"

#!/usr/bin/env python3
"""The large model in-process and behind llama-server, side by side in one run.

Starts llama-server itself on a loopback port (one slot, the same --threads and context as the
in-process side) and runs `r2r bench` as its own process on each side in turns, the order
flipping every round so the machine's drift in load falls on both. Two comparisons:

- accuracy: the demo pair with its shipped router on N held-out problems (`r2r bench --demo`):
  accuracy, large-model share and calls, in-process against served;
- speed: a shape pair (--small/--large GGUFs, e.g. 0.5B/7B from scripts/make_shape_model.py),
  router random:0.12, built-in prompts: tokens/s of each side (median over rounds), the
  served/in-process ratio of those medians and the served side's overhead per call.

    PYTHONPATH=. python scripts/remote_compare.py --small q05.gguf --large r7b.gguf --rounds 3 \\
        --out docs/results/2026-12-06-cpu-remote-vs-inprocess.json

Needs llama-server: --binary, else $R2R_LLAMA_SERVER, else scripts/build_llama_server.sh's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("accuracy", "tokens_per_s", "median_tokens_per_s", "large_share", "large_calls", "n_tokens",
        "mean_catch_up", "ms_large_per_token", "large_server_calls", "ms_round_trip_per_call",
        "ms_server_per_call", "ms_overhead_per_call", "ms_large_call_alone")


def fail(message: str) -> SystemExit:
    return SystemExit(f"remote_compare: {message}")


def server_binary(given: str | None) -> str:
    path = given or os.environ.get("R2R_LLAMA_SERVER")
    if not path:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_llama_server.sh")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise fail("no llama-server: build it with `bash scripts/build_llama_server.sh` or pass --binary")
        path = proc.stdout.strip().splitlines()[-1]
    if not Path(path).is_file():
        raise fail(f"llama-server {path}: no such file")
    return path


class Server:
    """llama-server -m model on 127.0.0.1 (a free port), one slot; `cmd` is its command line."""

    def __init__(self, binary: str, model: str, threads: int, n_ctx: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.cmd = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
                    "-tb", str(threads), "-c", str(n_ctx), "-np", "1", "-b", "512", "-ub", "512", "--no-webui"]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise fail(f"llama-server for {model} did not start ({shlex.join(self.cmd)})")
            time.sleep(0.3)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


def bench(argv: list[str]) -> dict[str, Any]:
    """The r2r mode's figures of one `r2r bench ... --json` run (its own process, this checkout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", *argv, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise fail(f"r2r {shlex.join(argv)} failed: {last}")
    out = {}
    for mode, row in json.loads(proc.stdout)["modes"].items():
        alone = row.get("ideal_parts", {}).get("t_large_call_s")  # one call of the mean catch-up, timed alone
        out[mode] = {k: row.get(k) for k in KEYS} | {"ms_large_call_alone": alone and 1000 * alone}
    return out


def sides(args: argparse.Namespace, servers: dict[str, Server]) -> dict[str, dict[str, list[str]]]:
    """The bench command of each comparison's in-process and served side."""
    common = ["--threads", str(args.threads), "--n-ctx", str(args.n_ctx)]
    out = {}
    if "accuracy" in servers:
        demo = ["bench", "--demo", "--n", str(args.n), "--modes", "r2r", *common]
        out["accuracy"] = {"in_process": demo, "served": demo + ["--large", servers["accuracy"].url]}
    if "speed" in servers:
        shape = ["bench", "--small", args.small, "--router", "random:0.12", "--n", str(args.prompts),
                 "--max-tokens", str(args.max_tokens), "--modes", args.modes, *common]
        out["speed"] = {"in_process": shape + ["--large", args.large], "served": shape + ["--large", servers["speed"].url]}
    return out


def medians(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per mode and key: the median of each side over the rounds and served/in-process."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for mode in runs["in_process"][0]:
        out[mode] = {}
        for key in KEYS:
            vals = {s: [r[mode][key] for r in runs[s] if r[mode].get(key) is not None] for s in runs}
            row = {s: statistics.median(v) if v else None for s, v in vals.items()}
            a, b = row["in_process"], row["served"]
            row["served/in_process"] = b / a if a and b is not None else None
            out[mode][key] = row
    return out


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    """The acceptance checks: accuracy within 1 point and the same share (demo); served keeps
    >= 90% of the in-process tokens/s (speed, r2r mode)."""
    out: dict[str, Any] = {}
    if "accuracy" in result:
        r = result["accuracy"]["medians"]["r2r"]
        gap = abs(r["accuracy"]["served"] - r["accuracy"]["in_process"])
        out["accuracy_within_1_point"] = {"gap_points": 100 * gap, "ok": 100 * gap <= 1.0}
        out["same_large_share"] = {"ok": r["large_share"]["served"] == r["large_share"]["in_process"]}
    if "speed" in result and "r2r" in result["speed"]["medians"]:
        ratio = result["speed"]["medians"]["r2r"]["tokens_per_s"]["served/in_process"]
        out["speed_ratio_at_least_0.90"] = {"ratio": ratio, "ok": ratio is not None and ratio >= 0.90}
    return out


def report(result: dict[str, Any]) -> None:
    for what in ("accuracy", "speed"):
        if what not in result:
            continue
        print(f"\n{what}: median over {len(result[what]['runs']['served'])} rounds, in-process -> served (ratio)")
        for mode, keys in result[what]["medians"].items():
            print(f"  {mode}")
            for key, v in keys.items():
                if v["served"] is None and v["in_process"] is None:
                    continue
                ratio = "" if v["served/in_process"] is None else f"  ({v['served/in_process']:.3f})"
                print(f"    {key:<24} {_num(v['in_process'])} -> {_num(v['served'])}{ratio}")
    for name, v in result["acceptance"].items():
        print(f"{name}: {'ok' if v['ok'] else 'NOT MET'} {json.dumps({k: x for k, x in v.items() if k != 'ok'})}")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", default="accuracy,speed", help="accuracy, speed or both (comma-separated)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads, the same on both sides")
    ap.add_argument("--n-ctx", type=int, default=2048, help="context of both sides (the server's -c)")
    ap.add_argument("--n", type=int, default=200, help="accuracy: held-out demo problems")
    ap.add_argument("--small", help="speed: the small GGUF")
    ap.add_argument("--large", help="speed: the large GGUF (in-process, and served by llama-server)")
    ap.add_argument("--prompts", type=int, default=3, help="speed: built-in prompts")
    ap.add_argument("--max-tokens", type=int, default=48, help="speed: tokens per generation")
    ap.add_argument("--modes", default="r2r", help="speed: bench modes (the check is on r2r; large adds large-only)")
    ap.add_argument("--binary", help="llama-server (default $R2R_LLAMA_SERVER or the build script's)")
    ap.add_argument("--out", type=Path, help="write the runs, medians, checks, commands and versions as JSON")
    args = ap.parse_args()
    what = [w.strip() for w in args.what.split(",") if w.strip()]
    if not what or set(what) - {"accuracy", "speed"}:
        raise fail(f"--what must name accuracy and/or speed, got '{args.what}'")
    if "speed" in what and not (args.small and args.large):
        raise fail("speed needs --small and --large (GGUF files)")
    if args.rounds < 1:
        raise fail(f"--rounds must be >= 1, got {args.rounds}")
    binary = server_binary(args.binary)
    return run(args, what, binary)


def run(args: argparse.Namespace, what: list[str], binary: str) -> int:
    sys.path.insert(0, str(ROOT))
    from r2r_local.commands import versions
    from r2r_local.demo.paths import demo_pair

    models = {"accuracy": str(demo_pair().large), "speed": args.large}
    servers: dict[str, Server] = {}
    try:
        for w in what:
            servers[w] = Server(binary, models[w], args.threads, args.n_ctx)
        commands = sides(args, servers)
        runs = {w: {"in_process": [], "served": []} for w in what}
        for r in range(args.rounds):
            order = ["in_process", "served"] if r % 2 == 0 else ["served", "in_process"]
            for w in what:
                for side in order:
                    runs[w][side].append(bench(commands[w][side]))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        servers_cmd = {w: shlex.join(s.cmd) for w, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()
    result: dict[str, Any] = {w: {"runs": runs[w], "medians": medians(runs[w]), "server": servers_cmd[w],
                                  "commands": {s: "r2r " + shlex.join(c + ["--json"]) for s, c in commands[w].items()}}
                              for w in what}
    result["acceptance"] = verdicts(result)
    report(result)
    if args.out:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stderr.strip()
        result["config"] = {"command": shlex.join(["python", "scripts/remote_compare.py", *sys.argv[1:]]),
                            "rounds": args.rounds, "threads": args.threads, "n_ctx": args.n_ctx,
                            "order": "in-process first in odd rounds, served first in even ones",
                            "versions": versions() | {"llama-server": version}}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

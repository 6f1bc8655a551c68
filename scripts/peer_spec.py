#!/usr/bin/env python3
"""The peer: llama.cpp's own speculative decoding (llama-server -md) on the demo problems.

Starts llama-server on a loopback port twice — the large model alone, then with the small model
as its draft (`--spec-type draft-simple --spec-draft-n-max N` for each N asked) — sends the same
held-out demo problems to each (the prompt as token ids through the small model's own chat
template, greedy, at most --max-tokens tokens), and prints accuracy, the server's own decoding
speed (its timings: predicted tokens / predicted ms) and the wall-clock speed, with the draft
acceptance the server reports. Writes everything with the config as JSON with --out.

    python scripts/peer_spec.py [--n 100] [--draft-max 4,16] [--threads 1] [--out FILE]

Needs the llama-server binary: `bash scripts/build_llama_server.sh` (cached after the first build).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r2r_local.chat import Message, chat_tokens  # noqa: E402
from r2r_local.demo import task  # noqa: E402
from r2r_local.demo.paths import demo_pair  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, path: str, body: dict, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _start(binary: str, args: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([binary, *args, "--host", "127.0.0.1", "--port", str(port), "--no-webui"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"peer_spec: llama-server exited with {proc.returncode} ({' '.join(args)})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("peer_spec: llama-server did not become healthy in 120 s")


def run_server(binary: str, args: list[str], prompts: list[list[int]], problems, max_tokens: int) -> dict:
    port = _free_port()
    proc = _start(binary, args, port)
    try:
        _post(port, "/completion", {"prompt": prompts[0], "n_predict": 8, "temperature": 0})  # warm-up
        correct, n_tok, ms, wall, accepted, drafted = 0, 0, 0.0, 0.0, 0, 0
        for tokens, p in zip(prompts, problems):
            t0 = time.perf_counter()
            doc = _post(port, "/completion", {"prompt": tokens, "n_predict": max_tokens, "temperature": 0,
                                              "cache_prompt": False})
            wall += time.perf_counter() - t0
            correct += task.is_correct(p, doc["content"])
            timings = doc.get("timings", {})
            n_tok += timings.get("predicted_n", 0)
            ms += timings.get("predicted_ms", 0.0)
            accepted += timings.get("draft_n_accepted", 0)
            drafted += timings.get("draft_n", 0)
        return {"accuracy": correct / len(problems), "n_tokens": n_tok,
                "server_tokens_per_s": 1000 * n_tok / ms if ms else None, "wall_tokens_per_s": n_tok / wall,
                "draft_acceptance": accepted / drafted if drafted else None, "args": args}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="held-out demo problems")
    ap.add_argument("--draft-max", default="4,16", help="draft lengths to run (comma-separated)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--binary", default=None, help="llama-server (default: scripts/build_llama_server.sh's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binary = args.binary or subprocess.run(["bash", str(Path(__file__).parent / "build_llama_server.sh")],
                                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.config import ModelSpec

    pair = demo_pair()
    problems = task.problems(task.EVAL_SEED, args.n, task.HELDOUT)
    with LlamaCppBackend(ModelSpec(str(pair.small), n_ctx=512, threads=1, role="small")) as small:
        prompts = [chat_tokens(small, [Message("user", p.message)]) for p in problems]
    base = ["-m", str(pair.large), "-t", str(args.threads), "-c", "1024", "-np", "1"]
    rows = {"large": run_server(binary, base, prompts, problems, args.max_tokens)}
    for n in (int(x) for x in args.draft_max.split(",")):
        spec = ["-md", str(pair.small), "--spec-type", "draft-simple", "--spec-draft-n-max", str(n),
                "-td", str(args.threads)]
        rows[f"llama.cpp spec:{n}"] = run_server(binary, base + spec, prompts, problems, args.max_tokens)
    for name, r in rows.items():
        acc = "-" if r["draft_acceptance"] is None else f"{r['draft_acceptance']:.2f}"
        print(f"{name:<18} accuracy {r['accuracy']:.3f}  server {r['server_tokens_per_s']:.0f} tok/s  "
              f"wall {r['wall_tokens_per_s']:.0f} tok/s  acceptance {acc}")
    if args.out:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stderr.strip()
        Path(args.out).write_text(json.dumps({"rows": rows, "config": {
            "n": args.n, "threads": args.threads, "max_tokens": args.max_tokens, "sampling": "greedy",
            "small": str(pair.small), "large": str(pair.large), "llama_server": version}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

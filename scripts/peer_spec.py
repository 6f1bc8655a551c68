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


class Peer:
    """One llama-server started with `args`; `run` adds problems to its totals (so runs can be
    interleaved with other work), `result` reports them."""

    def __init__(self, binary: str, args: list[str], warm_prompt: list[int]) -> None:
        self.args, self.port = args, _free_port()
        self.proc = _start(binary, args, self.port)
        self.correct = self.n = self.n_tok = self.accepted = self.drafted = 0
        self.ms = self.wall = 0.0
        _post(self.port, "/completion", {"prompt": warm_prompt, "n_predict": 8, "temperature": 0})  # warm-up

    def run(self, prompts: list[list[int]], problems: list, max_tokens: int) -> None:
        for tokens, p in zip(prompts, problems):
            t0 = time.perf_counter()
            doc = _post(self.port, "/completion", {"prompt": tokens, "n_predict": max_tokens, "temperature": 0,
                                                   "cache_prompt": False})
            self.wall += time.perf_counter() - t0
            self.n += 1
            self.correct += task.is_correct(p, doc["content"])
            timings = doc.get("timings", {})
            self.n_tok += timings.get("predicted_n", 0)
            self.ms += timings.get("predicted_ms", 0.0)
            self.accepted += timings.get("draft_n_accepted", 0)
            self.drafted += timings.get("draft_n", 0)

    def result(self) -> dict:
        return {"accuracy": self.correct / self.n, "n_problems": self.n, "n_tokens": self.n_tok,
                "server_tokens_per_s": 1000 * self.n_tok / self.ms if self.ms else None,
                "wall_tokens_per_s": self.n_tok / self.wall,
                "draft_acceptance": self.accepted / self.drafted if self.drafted else None, "args": self.args}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def peer_args(small: str, large: str, threads: int, draft_max: int | None) -> list[str]:
    """llama-server's arguments: the large model alone, or with the small one as its draft."""
    args = ["-m", large, "-t", str(threads), "-c", "1024", "-np", "1"]
    if draft_max:
        args += ["-md", small, "--spec-type", "draft-simple", "--spec-draft-n-max", str(draft_max),
                 "-td", str(threads)]
    return args


def server_binary() -> str:
    """The llama-server of scripts/build_llama_server.sh (built once, then cached)."""
    return subprocess.run(["bash", str(Path(__file__).parent / "build_llama_server.sh")],
                          capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]


def run_server(binary: str, args: list[str], prompts: list[list[int]], problems, max_tokens: int) -> dict:
    peer = Peer(binary, args, prompts[0])
    try:
        peer.run(prompts, problems, max_tokens)
        return peer.result()
    finally:
        peer.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="held-out demo problems")
    ap.add_argument("--draft-max", default="4,16", help="draft lengths to run (comma-separated)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--binary", default=None, help="llama-server (default: scripts/build_llama_server.sh's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binary = args.binary or server_binary()
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.config import ModelSpec

    pair = demo_pair()
    problems = task.problems(task.EVAL_SEED, args.n, task.HELDOUT)
    with LlamaCppBackend(ModelSpec(str(pair.small), n_ctx=512, threads=1, role="small")) as small:
        prompts = [chat_tokens(small, [Message("user", p.message)]) for p in problems]
    small, large = str(pair.small), str(pair.large)
    rows = {"large": run_server(binary, peer_args(small, large, args.threads, None), prompts, problems,
                                args.max_tokens)}
    for n in (int(x) for x in args.draft_max.split(",")):
        rows[f"llama.cpp spec:{n}"] = run_server(binary, peer_args(small, large, args.threads, n), prompts,
                                                 problems, args.max_tokens)
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

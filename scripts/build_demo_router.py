"""Build the demo router with the product's own pipeline: training problems -> `r2r label`
-> `r2r train-router` (with ONNX export) -> models/demo/router.onnx + router.json, and the
timings and validation figures in the demo manifest's "router" section.

    python scripts/build_demo_router.py                  # 2,000 training problems, 2 threads
    python scripts/build_demo_router.py --n 200 --out build/r200 --no-install   # a timing run

The problems come from the task's training split (seed --seed), never from the held-out
problems the accuracies are measured on. The pair is the one in R2R_DEMO_DIR or models/demo.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from r2r_local.demo import task
from r2r_local.demo.paths import demo_dir

LABEL_SEED = 777
HIDDEN_DIMS = "128,128"
VERIFIER = "correct"
# Every missed divergent token of the demo costs one problem its answer (about one divergence per
# answer), so the demo router is set for 99% recall rather than the reference's 95%.
RECALL = 0.99
F32_SMALL = "demo-small-f32.gguf"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(cmd: list[str], out_file: Path) -> tuple[float, str]:
    """Run `cmd`, stderr to the terminal, stdout kept; returns (seconds, stdout)."""
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    out_file.write_text(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"build_demo_router.py: '{cmd[1]}' failed (exit code {proc.returncode})")
    return seconds, proc.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="training problems to label")
    ap.add_argument("--seed", type=int, default=LABEL_SEED)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden-dims", default=HIDDEN_DIMS)
    ap.add_argument("--verifier", default=VERIFIER, help="exact | correct (see r2r label --help)")
    ap.add_argument("--recall", type=float, default=RECALL, help="recall target of the threshold (validation)")
    ap.add_argument("--work", default="build/demo-router")
    ap.add_argument("--out", default=None, help="where router.onnx goes (default: the demo folder)")
    ap.add_argument("--f32-small", default="build/demo/small-f32.gguf",
                    help="the small model's F32 GGUF from scripts/build_demo.py, shipped beside the router for "
                         "scripts/router_agreement.py (skipped when missing)")
    ap.add_argument("--no-install", action="store_true", help="do not write the manifest's router section")
    args = ap.parse_args(argv)
    work = Path(args.work)
    out = Path(args.out) if args.out else demo_dir()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    problems = work / "problems.jsonl"
    with problems.open("w") as f:
        for p in task.problems(args.seed, args.n, task.TRAIN):
            f.write(json.dumps(task.to_record(p)) + "\n")
    labels = work / "labels"
    if labels.exists():
        shutil.rmtree(labels)  # a fresh labelling, so its time is the whole time
    r2r = [sys.executable, "-m", "r2r_local.cli"]
    t_label, label_out = run(r2r + ["label", "--demo", "--prompts", str(problems), "--out", str(labels),
                                    "--verifier", args.verifier, "--max-tokens", "200", "--threads", str(args.threads)],
                             work / "label.json")
    t_train, train_out = run(r2r + ["train-router", "--data", str(labels), "--out", str(work / "router.pt"),
                                    "--onnx", str(out / "router.onnx"), "--hidden-dims", args.hidden_dims,
                                    "--recall", str(args.recall), "--threads", str(args.threads)], work / "train.json")
    label_summary, train_report = json.loads(label_out), json.loads(train_out)
    section = {
        "label_problems": {"split": task.TRAIN, "seed": args.seed, "n": args.n},
        "verifier": args.verifier,
        "recall_target": args.recall,
        "label_seconds": round(t_label, 1),
        "train_seconds": round(t_train, 1),
        "labels": {k: label_summary[k] for k in ("prompts", "tokens", "mismatches", "divergent") if k in label_summary},
        "hidden_dims": args.hidden_dims,
        "params": train_report["params"],
        "validation": train_report["validation"],
        "onnx_max_abs_diff": train_report["onnx"]["max_abs_diff"],
        "threads": args.threads,
        "sha256": sha256(out / "router.onnx"),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if Path(args.f32_small).is_file():
        shutil.copy(args.f32_small, out / F32_SMALL)
        section["f32_small"] = {"file": F32_SMALL, "sha256": sha256(out / F32_SMALL)}
    log(f"labelling {t_label:.0f}s, training + export {t_train:.0f}s; validation {section['validation']}")
    if not args.no_install:
        manifest_path = out / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["router"] = {"file": "router.onnx", "sidecar": "router.json", **section}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"wrote {out / 'router.onnx'} and the router section of {manifest_path}")
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

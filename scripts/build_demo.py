"""Rebuild the demo pair from a seed: data, tokenizer, two LMs, GGUF conversion, quantization,
evaluation with llama.cpp, manifest.

    python scripts/build_demo.py                 # everything, into models/demo/
    python scripts/build_demo.py --models small  # retrain one model, reuse the other's checkpoint

Intermediate Hugging Face checkpoints go to --work (default build/demo/, git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import replace

from r2r_local.demo import task, template
from r2r_local.demo.evaluate import decode_times, evaluate
from r2r_local.train.demo_lm import LMConfig, Phase

# Both models train one after the other on all cores, matrix products in bfloat16.
SMALL = LMConfig(
    name="small", hidden=64, layers=2, heads=4, kv_heads=4, ffn=256,
    phases=(Phase(steps=2400, lr=5e-3, warmup=40),), bf16=True,
)
LARGE = LMConfig(
    name="large", hidden=192, layers=5, heads=6, kv_heads=6, ffn=512,
    phases=(Phase(steps=4500, lr=3e-3, warmup=100),), batch=32, bf16=True,
)
VOCAB_SIZE = 400
QUANT = "Q8_0"
N_TRAIN_PROBLEMS = 300_000
N_TOKENIZER_TEXTS = 20_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_tokenizer(seed: int, work: str):
    from r2r_local.train.demo_tokenizer import save_hf_tokenizer, train_tokenizer

    rng = __import__("numpy").random.default_rng([seed, 7])
    texts = []
    for p in task.iter_problems(seed + 1000, task.TRAIN, N_TOKENIZER_TEXTS):
        prompt, completion = template.training_text(p.message, task.answer_text(p.a, p.b, task.Wording.draw(rng)))
        text = prompt + completion
        for tag in template.SPECIAL_TOKENS + template.TEXT_TOKENS:
            text = text.replace(tag, "\n")
        texts.append(text)
    tok = train_tokenizer(texts, VOCAB_SIZE)
    os.makedirs(work, exist_ok=True)
    save_hf_tokenizer(tok, work)
    return tok


def train_one(cfg: LMConfig, tok, corpus, work: str) -> str:
    """Train one model from scratch and save it as an HF folder in `work`; returns the folder."""
    from r2r_local.train.demo_lm import build_model, train

    ids, mask, starts = corpus
    special = {
        "bos": tok.token_to_id(template.BOS),
        "eos": tok.token_to_id(template.IM_END),
        "pad": tok.token_to_id(template.BOS),
    }
    model = build_model(cfg, tok.get_vocab_size(), special)
    log(f"{cfg.name}: {model.num_parameters():,} parameters, training {sum(p.steps for p in cfg.phases)} steps")
    summary = train(model, cfg, ids, mask, starts, report=log)
    folder = os.path.join(work, f"{cfg.name}-hf")
    _save(model, cfg, summary, folder, work)
    return folder


def _save(model, cfg: LMConfig, summary: dict, folder: str, work: str) -> None:
    import shutil

    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(work, name), folder)
    summary = summary | {"n_params": model.num_parameters()}
    with open(os.path.join(folder, "training.json"), "w") as f:
        json.dump({"config": cfg.to_json(), "summary": summary}, f, indent=2)


def export_one(folder: str, out_dir: str, name: str) -> tuple[str, dict]:
    from r2r_local.backends.llama_cpp import quantize_gguf
    from r2r_local.export.gguf import hf_to_gguf

    f32 = os.path.join(os.path.dirname(folder), f"{name}-f32.gguf")
    written = hf_to_gguf(folder, f32, "f32", name=f"r2r-demo-{name}")
    dst = os.path.join(out_dir, f"demo-{name}-{QUANT.lower()}.gguf")
    quantize_gguf(f32, dst, QUANT)
    log(f"{name}: {f32} ({written.size_bytes:,} B) -> {dst} ({os.path.getsize(dst):,} B)")
    return dst, {"n_params": written.n_params}


def measure(paths: dict[str, str], seed: int, n_eval: int, threads: int) -> dict:
    import numpy as np

    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.config import ModelSpec

    held = task.problems(seed, n_eval, task.HELDOUT)
    out: dict = {"eval_seed": seed, "n_problems": n_eval, "threads": threads}
    medians = {}
    for role, path in paths.items():
        with LlamaCppBackend(ModelSpec(path, n_ctx=512, threads=threads, role=role)) as be:
            res = evaluate(be, held)
            log(f"{role}: accuracy {res.accuracy:.1%} on {res.n} held-out problems ({res.seconds:.0f}s)")
            ids = be.tokenize(template.prompt(held[0].message), add_special=True, parse_special=True)
            times = decode_times(be, ids, 300)
            medians[role] = float(np.median(times))
            out[role] = res.to_json() | {"decode_ms_median": round(medians[role] * 1e3, 4)}
    if "small" in medians and "large" in medians:
        out["per_token_cost_ratio_large_small"] = round(medians["large"] / medians["small"], 2)
    return out


def _init_torch(threads: int) -> None:
    """Set torch's threads before any other library starts a thread pool (tokenizers does)."""
    import torch

    torch.set_num_threads(threads)


def _train_child(cfg: LMConfig, work: str, threads: int) -> None:
    """Entry of the training subprocess: tokenizer and corpus come from files in `work`."""
    import numpy as np
    from tokenizers import Tokenizer

    _init_torch(threads)
    tok = Tokenizer.from_file(os.path.join(work, "tokenizer.json"))
    data = np.load(os.path.join(work, "corpus.npz"))
    train_one(cfg, tok, (data["ids"], data["mask"], data["starts"]), work)


def train_models(configs: dict[str, LMConfig], work: str, threads: int, stages: dict) -> None:
    """Train the wanted models one after the other, each in a fresh process with `threads`
    torch threads (a fresh process, because the tokenizer library has already started its
    own thread pool in this one)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for name, cfg in configs.items():
        t = time.perf_counter()
        proc = ctx.Process(target=_train_child, args=(cfg, work, threads))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"build_demo.py: training the {name} model failed (exit code {proc.exitcode})")
        stages[f"train_{name}"] = time.perf_counter() - t


def _configs(args: argparse.Namespace) -> dict[str, LMConfig]:
    small, large = SMALL, LARGE
    if args.small_shape:
        h, l, nh, ffn, steps = (int(x) for x in args.small_shape.split(","))
        phase = replace(SMALL.phases[0], steps=steps)
        small = replace(SMALL, hidden=h, layers=l, heads=nh, kv_heads=nh, ffn=ffn, phases=(phase,))
    if args.large_steps:
        large = replace(LARGE, phases=(replace(LARGE.phases[0], steps=args.large_steps),))
    configs = {"small": replace(small, seed=args.seed), "large": replace(large, seed=args.seed)}
    return {name: configs[name] for name in args.models.split(",") if name}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-seed", type=int, default=task.EVAL_SEED)
    ap.add_argument("--work", default="build/demo")
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training, and llama.cpp threads for evaluation")
    ap.add_argument("--n-eval", type=int, default=500)
    ap.add_argument("--models", default="small,large", help="which models to train; others reuse --work")
    ap.add_argument("--small-shape", help="hidden,layers,heads,ffn,steps (trials)")
    ap.add_argument("--large-steps", type=int, help="steps of the large model (trials)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    args = _parse(argv)
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    _init_torch(args.threads)
    configs = _configs(args)
    os.makedirs(args.out, exist_ok=True)
    t = time.perf_counter()
    tok = build_tokenizer(args.seed, args.work)
    stages["tokenizer"] = time.perf_counter() - t
    log(f"tokenizer: {tok.get_vocab_size()} tokens")
    if configs:
        from r2r_local.train.demo_lm import encode_corpus

        t = time.perf_counter()
        ids, mask, starts = encode_corpus(tok, args.seed, N_TRAIN_PROBLEMS)
        np.savez(os.path.join(args.work, "corpus.npz"), ids=ids, mask=mask, starts=starts)
        stages["corpus"] = time.perf_counter() - t
        log(f"corpus: {len(ids):,} tokens ({mask.mean():.0%} in the loss), {stages['corpus']:.0f}s")
        train_models(configs, args.work, args.threads, stages)
    finish(args, stages, t_start)
    return 0


def finish(args: argparse.Namespace, stages: dict, t_start: float) -> None:
    """Export, quantize and evaluate whatever checkpoints --work holds; write the manifest."""
    folders, trained = {}, {}
    for name in ("small", "large"):
        folder = os.path.join(args.work, f"{name}-hf")
        if os.path.isdir(folder):
            folders[name] = folder
            with open(os.path.join(folder, "training.json")) as f:
                trained[name] = json.load(f)
    paths, infos = {}, {}
    t = time.perf_counter()
    for name, folder in folders.items():
        paths[name], infos[name] = export_one(folder, args.out, name)
    stages["export"] = time.perf_counter() - t
    t = time.perf_counter()
    results = measure(paths, args.eval_seed, args.n_eval, args.threads)
    stages["evaluate"] = time.perf_counter() - t
    stages["total"] = time.perf_counter() - t_start
    write_manifest(args, paths, infos, trained, results, stages)
    log(f"done in {stages['total']:.0f}s: {json.dumps({k: round(v) for k, v in stages.items()})}")


def _n_tokens(work: str) -> int:
    with open(os.path.join(work, "tokenizer.json")) as f:
        data = json.load(f)
    return len(data["model"]["vocab"]) + sum(t["content"] not in data["model"]["vocab"] for t in data["added_tokens"])


def write_manifest(args, paths, infos, trained, results, stages) -> None:
    import torch
    import transformers

    import llama_cpp

    models = {}
    for name, path in paths.items():
        cfg = trained[name]["config"]
        models[name] = {
            "file": os.path.basename(path),
            "sha256": sha256(path),
            "size_bytes": os.path.getsize(path),
            "quantization": QUANT,
            "architecture": "qwen2",
            "n_params": infos[name]["n_params"],
            "shape": {k: cfg[k] for k in ("hidden", "layers", "heads", "kv_heads", "ffn")},
            "training": trained[name],
        }
    manifest = {
        "name": "r2r-demo addition pair",
        "task": "addition of 2- to 4-digit numbers, column by column with carries (r2r_local.demo.task)",
        "seed": args.seed,
        "tokenizer": {"kind": "byte-level BPE, Qwen2 pre-tokenizer", "vocab_size_asked": VOCAB_SIZE, "n_tokens": _n_tokens(args.work)},
        "n_train_problems": N_TRAIN_PROBLEMS,
        "chat_template": template.CHAT_TEMPLATE,
        "models": models,
        "evaluation": results,
        "build_seconds": {k: round(v, 1) for k, v in stages.items()},
        "command": "python " + " ".join(sys.argv),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "llama_cpp_python": llama_cpp.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        },
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())

"""`r2r train-router`: train a router on `r2r label` output; optionally export it to ONNX."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from r2r_local.config import check_seed
from r2r_local.errors import ConfigError


def _dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 256,256,256, got '{text}'") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive sizes, got '{text}'")
    return dims


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-router", help="train a router on labelled data (needs the pipeline extra)",
                       description="Train the router network (the reference architecture, sizes configurable) "
                                   "with BCE and class weighting, stop early on held-out prompts, choose the "
                                   "threshold there for a recall target or a large-model share, and write a "
                                   "checkpoint in the reference format. Needs: pip install 'r2r-local[pipeline]'.")
    p.add_argument("--data", required=True, metavar="DIR", help="output directory of r2r label")
    p.add_argument("--out", required=True, metavar="PATH.pt", help="checkpoint to write")
    p.add_argument("--onnx", metavar="PATH.onnx", help="also export the router here (with its JSON sidecar)")
    p.add_argument("--hidden-dims", type=_dims, default=(256, 256, 256), metavar="H,H,...",
                   help="residual block sizes, the reference's layout: block i maps H[i] to H[i+1], the last "
                        "keeps H[-1] (default 256,256,256; the reference: 1024,1024,1024,1024,1024,1024)")
    p.add_argument("--epochs", type=int, default=30, metavar="N", help="at most this many (default %(default)s)")
    p.add_argument("--batch", type=int, default=256, metavar="N", help="positions per step (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, metavar="LR", help="AdamW learning rate (default %(default)g)")
    p.add_argument("--patience", type=int, default=4, metavar="N",
                   help="epochs without a better validation loss before stopping (default %(default)s)")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--recall", type=float, default=0.95, metavar="R",
                      help="threshold for this recall of divergent tokens on the held-out prompts (default %(default)s)")
    goal.add_argument("--target-share", type=float, default=None, metavar="S",
                      help="threshold for this large-model share instead (e.g. 0.12)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the initial weights, the batches and the held-out split (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="torch CPU threads (default %(default)s)")
    p.set_defaults(func=run)


def _check_settings(args: argparse.Namespace) -> None:
    """Every flag checked before the data is read or training starts."""
    if not 0.0 < args.recall <= 1.0:
        raise ConfigError(f"--recall must be in (0, 1], got {args.recall}")
    if args.target_share is not None and not 0.0 < args.target_share < 1.0:
        raise ConfigError(f"--target-share must be in (0, 1), got {args.target_share}")
    if args.epochs < 1 or args.batch < 1 or args.patience < 1:
        raise ConfigError("--epochs, --batch and --patience must be >= 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ConfigError(f"--lr must be a positive number, got {args.lr}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    check_seed(args.seed, "--seed")
    _check_output(args.out, "--out")
    if args.onnx is not None:
        _check_output(args.onnx, "--onnx")
        if Path(args.onnx).suffix != ".onnx":
            raise ConfigError(f"--onnx {args.onnx}: the file name must end in .onnx")
        _check_output(str(Path(args.onnx).with_suffix(".json")), "--onnx (its JSON sidecar)")
        if Path(args.onnx).resolve() == Path(args.out).resolve():
            raise ConfigError("--onnx and --out name the same file")


def _check_output(path: str, flag: str) -> None:
    """The file can be written: a name, not a directory, in a writable directory (made if missing)."""
    if not path.strip():
        raise ConfigError(f"{flag}: empty path")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {p}: is a directory; give a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {p}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {p}: directory {parent} is not writable")


def _export_onnx(checkpoint: str, out: str):  # type: ignore[no-untyped-def]
    """export_router writes the .onnx and its sidecar together: a failed export leaves an
    existing router and sidecar as they were."""
    from r2r_local.export.router import export_router

    return export_router(checkpoint, out)


def run(args: argparse.Namespace) -> int:
    _check_settings(args)
    try:
        from r2r_local.train.router_train import TrainSettings, train_and_save
    except ImportError as e:
        raise ConfigError(f"training needs the pipeline extra ({e.name} is missing): "
                          "pip install 'r2r-local[pipeline]'") from None
    settings = TrainSettings(hidden_dims=args.hidden_dims, epochs=args.epochs, batch=args.batch, lr=args.lr,
                             patience=args.patience, recall=args.recall, target_share=args.target_share,
                             seed=args.seed, threads=args.threads)
    report = train_and_save(args.data, args.out, settings, progress=lambda s: print(s, file=sys.stderr))
    v = report["validation"]
    print(f"train-router: wrote {args.out} ({report['params']:,} params); validation: threshold {v['threshold']:.4f}, "
          f"recall {v['recall']:.3f}, precision {v['precision']:.3f}, large share {v['large_share']:.3f}",
          file=sys.stderr)
    if args.onnx:
        res = _export_onnx(args.out, args.onnx)
        report["onnx"] = {"path": str(res.onnx_path), "sidecar": str(res.sidecar_path), "max_abs_diff": res.max_abs_diff}
        print(f"train-router: wrote {res.onnx_path} and {res.sidecar_path} (ONNX vs PyTorch max abs diff "
              f"{res.max_abs_diff:.2e})", file=sys.stderr)
    json.dump({k: v for k, v in report.items() if k != "history"}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

"""`r2r threshold`: re-choose an ONNX router's threshold on held-out labelled data (no torch)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from r2r_local.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("threshold", help="choose a router's threshold for a large-model share or a recall",
                       description="Score held-out labelled data (r2r label output) with an ONNX router and "
                                   "write the threshold that gives the target large-model share (or recall of "
                                   "divergent tokens) into the router's JSON sidecar.")
    p.add_argument("--router", required=True, metavar="PATH.onnx")
    p.add_argument("--data", required=True, metavar="DIR", help="labelled data not used for training")
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-share", type=float, help="escalate about this share of tokens, e.g. 0.12")
    goal.add_argument("--recall", type=float, help="escalate at least this share of the divergent tokens")
    p.add_argument("--dry-run", action="store_true", help="print the result, leave the sidecar as it is")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target_share is not None and not 0.0 < args.target_share < 1.0:
        raise ConfigError(f"--target-share must be in (0, 1), got {args.target_share}")
    if args.recall is not None and not 0.0 < args.recall <= 1.0:
        raise ConfigError(f"--recall must be in (0, 1], got {args.recall}")
    from r2r_local.labeling.data import LabelledData
    from r2r_local.labeling.shards import atomic_write
    from r2r_local.labeling.thresholds import few_positives, rates, threshold_for_recall, threshold_for_share
    from r2r_local.router.onnx import OnnxRouter, read_sidecar, sidecar_path

    data = LabelledData(args.data)
    router = OnnxRouter(args.router, n_embd=data.n_embd, vocab_hash=data.config.get("small_vocab_hash"))
    ps, labels = [], []
    for _, shard in data.shards():
        if len(shard["label"]):
            emb = data.embeddings(shard["small_token"])
            ps.append(router.probabilities(shard["hidden"].astype(np.float32), emb, shard["topk"].astype(np.float32)))
            labels.append(shard["label"])
    if not ps:
        raise ConfigError(f"labelled data {args.data}: has no positions")
    p, label = np.concatenate(ps), np.concatenate(labels)
    what = f"router {args.router} on labelled data {args.data}"
    if args.target_share is not None:
        t = threshold_for_share(p, args.target_share, what)
    else:
        t = threshold_for_recall(p, label, args.recall, what)
        if warning := few_positives(label, f"labelled data {args.data}"):
            print(f"threshold: {warning}", file=sys.stderr)
    result = {"old_threshold": router.threshold, **rates(p, label, t)}
    if not args.dry_run:
        side = sidecar_path(args.router)
        meta = read_sidecar(args.router)
        meta["threshold"] = t
        meta["recall_target"] = args.recall
        meta.setdefault("provenance", {})["threshold_chosen_on"] = {"data": str(Path(args.data).resolve()),
                                                                    **{k: v for k, v in result.items()}}
        atomic_write(side, json.dumps(meta, indent=2, allow_nan=False).encode())
        print(f"threshold: wrote {t:.4f} into {side}", file=sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

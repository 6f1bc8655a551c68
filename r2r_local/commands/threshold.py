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
    from r2r_local.backends.gguf_file import EmbeddingTable
    from r2r_local.labeling.shards import ShardStore
    from r2r_local.labeling.thresholds import rates, threshold_for_recall, threshold_for_share
    from r2r_local.router.onnx import OnnxRouter, sidecar_path

    store = ShardStore(args.data)
    config = store.config()
    router = OnnxRouter(args.router, n_embd=config["n_embd"], vocab_hash=config.get("small_vocab_hash"))
    table = EmbeddingTable(config["small"])
    ps, labels = [], []
    for _, shard in store.shards():
        emb = np.stack([table.row(int(t)) for t in shard["small_token"]]) if len(shard["label"]) else None
        if emb is not None:
            ps.append(router.probabilities(shard["hidden"].astype(np.float32), emb, shard["topk"]))
            labels.append(shard["label"])
    if not ps:
        raise ConfigError(f"labelled data {args.data}: has no positions")
    p, label = np.concatenate(ps), np.concatenate(labels)
    if args.target_share is not None:
        t = threshold_for_share(p, args.target_share)
    else:
        if not 0.0 < args.recall <= 1.0:
            raise ConfigError(f"--recall must be in (0, 1], got {args.recall}")
        t = threshold_for_recall(p, label, args.recall)
    result = {"old_threshold": router.threshold, **rates(p, label, t)}
    if not args.dry_run:
        side = sidecar_path(args.router)
        meta = json.loads(side.read_text())
        meta["threshold"] = t
        meta["recall_target"] = args.recall
        meta.setdefault("provenance", {})["threshold_chosen_on"] = {"data": str(Path(args.data).resolve()),
                                                                    **{k: v for k, v in result.items()}}
        side.write_text(json.dumps(meta, indent=2))
        print(f"threshold: wrote {t:.4f} into {side}", file=sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

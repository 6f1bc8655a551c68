"""Training the router on labelled shards (BCE, class weighting, early stopping), and choosing
its threshold on held-out prompts for a recall target or a target large-model share."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from r2r_local.errors import ConfigError
from r2r_local.labeling.data import LabelledData
from r2r_local.labeling.thresholds import few_positives, rates, threshold_for_recall, threshold_for_share
from r2r_local.train.router_net import RouterNet, RouterShape, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Features of every labelled position; float32 [n,d], [n,d], [n,100]; labels int8 [n];
    prompt int64 [n] (which prompt a position came from, for splitting)."""

    hidden: np.ndarray
    embedding: np.ndarray
    topk: np.ndarray
    label: np.ndarray
    prompt: np.ndarray

    def take(self, mask: np.ndarray) -> "Dataset":
        return Dataset(self.hidden[mask], self.embedding[mask], self.topk[mask], self.label[mask], self.prompt[mask])

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                     for a in (self.hidden, self.embedding, self.topk, self.label))


def load_dataset(data_dir: str | Path) -> tuple[Dataset, dict[str, Any]]:
    """All shards of a label directory, validated, with embedding rows read from the small model's GGUF."""
    data = LabelledData(data_dir)
    shards = list(data.shards())
    if not shards:
        raise ConfigError(f"labelled data {data_dir}: has no shards yet (run r2r label first)")
    parts = {k: [] for k in ("hidden", "small_token", "topk", "label", "prompt")}
    for index, s in shards:
        parts["hidden"].append(s["hidden"].astype(np.float32))
        parts["small_token"].append(s["small_token"])
        parts["topk"].append(s["topk"].astype(np.float32))
        parts["label"].append(s["label"])
        parts["prompt"].append(np.full(len(s["label"]), index))
    embedding = data.embeddings(np.concatenate(parts["small_token"]))
    return Dataset(np.concatenate(parts["hidden"]), embedding, np.concatenate(parts["topk"]),
                   np.concatenate(parts["label"]).astype(np.int8), np.concatenate(parts["prompt"])), data.config


def split_by_prompt(data: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    prompts = np.unique(data.prompt)
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(len(prompts) * val_fraction)))
    if len(prompts) < 2:
        raise ConfigError("need labelled data from at least 2 prompts to hold some out for validation")
    val = set(rng.choice(prompts, size=min(n_val, len(prompts) - 1), replace=False).tolist())
    mask = np.array([p in val for p in data.prompt])
    return data.take(~mask), data.take(mask)


@dataclass
class TrainSettings:
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    expansion: int = 4
    dropout: float = 0.1
    normalize_input: bool = True
    epochs: int = 30
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 4
    val_fraction: float = 0.15
    recall: float = 0.95
    target_share: float | None = None
    seed: int = 0
    threads: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


def predict(net: RouterNet, data: Dataset, batch: int = 4096) -> np.ndarray:
    net.eval()
    out = []
    h, e, k, _ = data.tensors()
    with torch.no_grad():
        for i in range(0, len(h), batch):
            out.append(torch.sigmoid(net(h[i:i + batch], e[i:i + batch], k[i:i + batch])).reshape(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train(data: Dataset, settings: TrainSettings, progress: Callable[[str], None] = print) -> tuple[RouterNet, dict[str, Any]]:
    """Fit with BCE weighted by the class ratio; keep the epoch with the lowest validation loss."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    tr, va = split_by_prompt(data, settings.val_fraction, settings.seed)
    n_pos = int(tr.label.sum())
    if n_pos == 0:
        raise ConfigError("the training data has no divergent positions: nothing to learn")
    shape = RouterShape(hidden_states_size=data.hidden.shape[1], hidden_dims=settings.hidden_dims,
                        expansion_factor=settings.expansion, dropout_rate=settings.dropout,
                        normalize_input=settings.normalize_input)
    net = RouterNet(shape)
    pos_weight = torch.tensor((len(tr.label) - n_pos) / n_pos, dtype=torch.float32)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    h, e, k, y = tr.tensors()
    vh, ve, vk, vy = va.tensors()
    best, best_state, stale, history = math.inf, None, 0, []
    gen = torch.Generator().manual_seed(settings.seed)
    for epoch in range(settings.epochs):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(y), settings.batch):
            idx = order[i:i + settings.batch]
            loss = loss_fn(net(h[idx], e[idx], k[idx]).reshape(-1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().item() * len(idx)
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(vh, ve, vk).reshape(-1), vy)) if len(vy) else total / len(y)
        history.append({"epoch": epoch + 1, "train_loss": total / len(y), "val_loss": val_loss})
        progress(f"epoch {epoch + 1}: train loss {total / len(y):.4f}, validation loss {val_loss:.4f}")
        if val_loss < best - 1e-4:
            best, stale = val_loss, 0
            best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                progress(f"early stop: no better validation loss for {settings.patience} epochs")
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    p = predict(net, va)
    what = "train-router: training diverged (try a lower --lr)"
    if settings.target_share is not None:
        threshold = threshold_for_share(p, settings.target_share, what)
    else:
        threshold = threshold_for_recall(p, va.label, settings.recall, what)
        if warning := few_positives(va.label, "the held-out validation set"):
            progress(warning)
    report = {"validation": rates(p, va.label, threshold), "train_positions": int(len(tr.label)),
              "train_positives": n_pos, "validation_prompts": int(len(np.unique(va.prompt))),
              "validation_positives": int(va.label.sum()),
              "history": history, "best_val_loss": best}
    return net, report


def train_and_save(data_dir: str | Path, out: str | Path, settings: TrainSettings,
                   progress: Callable[[str], None] = print) -> dict[str, Any]:
    data, config = load_dataset(data_dir)
    net, report = train(data, settings, progress)
    small = {"path": config["small"], "n_embd": config["n_embd"], "vocab_hash": config["small_vocab_hash"]}
    training = {"data": str(Path(data_dir).resolve()), "labelling": config,
                "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(settings).items()},
                "report": report}
    save_checkpoint(out, net, threshold=report["validation"]["threshold"],
                    recall_target=None if settings.target_share is not None else settings.recall,
                    training=training, small_model=small)
    report["params"] = sum(p.numel() for p in net.parameters())
    return report

"""Training the demo pair's causal LMs from scratch with transformers (Qwen2 architecture).

Data: conversations of the demo task rendered with the demo chat template, tokenized, packed
back to back into rows of `seq_len` tokens; the loss covers the assistant's answers only, and
not the head of a row whose conversation began in the row before (an answer whose question
the model cannot see would teach it to invent operands). Matrix products may run in bfloat16
(torch autocast; the weights and the optimizer stay float32): on CPUs with AVX512-BF16 that
nearly doubles the tokens per second. Training is counted in optimizer steps (never wall
time), so a seed gives the same weights on the same software and thread count.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from r2r_local.demo import task, template

log = logging.getLogger("r2r_local.train")


@dataclass(frozen=True)
class Phase:
    """One cosine schedule: warmup to `lr`, then decay to `lr * final_frac` over `steps`."""

    steps: int
    lr: float
    warmup: int = 60
    final_frac: float = 0.05


@dataclass(frozen=True)
class LMConfig:
    """Shape and training recipe of one model."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    phases: tuple[Phase, ...]
    batch: int = 16
    seq_len: int = 256
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    seed: int = 0
    bf16: bool = False
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["phases"] = [asdict(p) for p in self.phases]
        return d


def encode_corpus(tok, seed: int, n_problems: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids int32 [T], loss mask bool [T] and conversation starts int64 [n_problems]
    (offsets into the ids) of `n_problems` training conversations."""
    rng = np.random.default_rng([seed, 101])
    prompts, completions = [], []
    for p in task.iter_problems(seed, task.TRAIN, n_problems):
        wording = task.Wording.draw(rng)
        pr, co = template.training_text(p.message, task.answer_text(p.a, p.b, wording))
        prompts.append(pr)
        completions.append(co)
    ids_p = tok.encode_batch(prompts)
    ids_c = tok.encode_batch(completions)
    ids, mask, starts = [], [], []
    for ep, ec in zip(ids_p, ids_c):
        starts.append(len(ids))
        ids.extend(ep.ids)
        ids.extend(ec.ids)
        mask.extend([False] * len(ep.ids))
        mask.extend([True] * len(ec.ids))
    return np.asarray(ids, dtype=np.int32), np.asarray(mask, dtype=bool), np.asarray(starts, dtype=np.int64)


def mask_cut_heads(mask: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """`mask` (bool [T]) with each row's tokens before its first conversation start cleared.

    Rows are the consecutive `seq_len` slices of the corpus; `starts` (sorted int [N]) are the
    offsets where conversations begin. A row that holds no start at all is cleared whole.
    """
    out = mask.copy()
    row_starts = np.arange(0, len(mask), seq_len)
    first = np.searchsorted(starts, row_starts)
    for r0, k in zip(row_starts, first):
        end = min(int(starts[k]) if k < len(starts) else len(mask), r0 + seq_len)
        out[r0:end] = False
    return out


def build_model(cfg: LMConfig, vocab_size: int, special_ids: dict[str, int]):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(cfg.seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden,
        intermediate_size=cfg.ffn,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=1024,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=special_ids["bos"],
        eos_token_id=special_ids["eos"],
        pad_token_id=special_ids["pad"],
    )
    return Qwen2ForCausalLM(config)


def _lr_at(step: int, phases: tuple[Phase, ...]) -> float:
    for ph in phases:
        if step < ph.steps:
            if step < ph.warmup:
                return ph.lr * (step + 1) / ph.warmup
            t = (step - ph.warmup) / max(1, ph.steps - ph.warmup)
            return ph.lr * (ph.final_frac + (1 - ph.final_frac) * 0.5 * (1 + math.cos(math.pi * t)))
        step -= ph.steps
    return phases[-1].lr * phases[-1].final_frac


def train(
    model,
    cfg: LMConfig,
    ids: np.ndarray,
    mask: np.ndarray,
    starts: np.ndarray,
    report: Callable[[str], None] = print,
    every: int = 50,
) -> dict:
    """Train `model` in place on the packed corpus; returns a summary (loss, tokens, seconds)."""
    import contextlib

    import torch

    torch.manual_seed(cfg.seed)
    n_rows = len(ids) // cfg.seq_len
    rows = torch.from_numpy(ids[: n_rows * cfg.seq_len].astype(np.int64)).view(n_rows, cfg.seq_len)
    mask = mask_cut_heads(mask, starts, cfg.seq_len)
    rmask = torch.from_numpy(mask[: n_rows * cfg.seq_len]).view(n_rows, cfg.seq_len)
    labels_all = rows.masked_fill(~rmask, -100)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.phases[0].lr,
        betas=cfg.betas,
    )
    total = sum(p.steps for p in cfg.phases)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(n_rows, generator=gen)
    model.train()
    t0, seen, recent, cursor = time.perf_counter(), 0, [], 0
    for step in range(total):
        if cursor + cfg.batch > n_rows:
            order = torch.randperm(n_rows, generator=gen)
            cursor = 0
        idx = order[cursor : cursor + cfg.batch]
        cursor += cfg.batch
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg.phases)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if cfg.bf16 else contextlib.nullcontext()
        with autocast:
            out = model(input_ids=rows[idx], labels=labels_all[idx])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += cfg.batch * cfg.seq_len
        recent.append(float(out.loss.detach()))
        if (step + 1) % every == 0 or step + 1 == total:
            dt = time.perf_counter() - t0
            report(
                f"[{cfg.name}] step {step + 1}/{total} loss {np.mean(recent):.4f} "
                f"lr {_lr_at(step, cfg.phases):.2e} {seen / dt:,.0f} tok/s {dt:.0f}s"
            )
            recent = []
    model.eval()
    return {"steps": total, "tokens": seen, "seconds": round(time.perf_counter() - t0, 1), "final_loss": float(out.loss.detach())}

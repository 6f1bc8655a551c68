"""Test helper: router checkpoints written the way the R2R reference code writes them, and a plain
PyTorch forward pass, both written here from the reference's description rather than with
r2r_local's RouterNet, so that a layout mistake there cannot hide in the tests.

Reference layout: block i maps hidden_dims[i] -> hidden_dims[i+1], the last block keeps
hidden_dims[-1]. Legacy (earlier r2r-local): block 0 keeps hidden_dims[0], block i maps
hidden_dims[i-1] -> hidden_dims[i].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def widths(dims: list[int], layout: str) -> list[tuple[int, int]]:
    if layout == "reference":
        return [(dims[i], dims[i + 1] if i + 1 < len(dims) else dims[-1]) for i in range(len(dims))]
    return [(dims[i - 1] if i > 0 else dims[0], dims[i]) for i in range(len(dims))]


def _linear(state: dict[str, torch.Tensor], name: str, n_in: int, n_out: int, gen: torch.Generator) -> None:
    """Weights like a fresh torch Linear: U(-1/sqrt(n_in), 1/sqrt(n_in)), weight [n_out, n_in]."""
    bound = n_in ** -0.5
    state[name + ".weight"] = (torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound
    state[name + ".bias"] = (torch.rand(n_out, generator=gen) * 2 - 1) * bound


def _layer_norm(state: dict[str, torch.Tensor], name: str, n: int, gen: torch.Generator) -> None:
    """Not the identity: scale near 1, bias near 0, so that a misplaced LayerNorm shows."""
    state[name + ".weight"] = 1 + 0.1 * torch.randn(n, generator=gen)
    state[name + ".bias"] = 0.1 * torch.randn(n, generator=gen)


def state_dict(d: int, dims: list[int], *, expansion: int = 4, normalize: bool = False,
               layout: str = "reference", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the reference's key names and the shapes of `layout`; float32."""
    gen = torch.Generator().manual_seed(seed)
    s: dict[str, torch.Tensor] = {}
    if normalize:
        _layer_norm(s, "layer_norm_hidden_states", d, gen)
        _layer_norm(s, "layer_norm_token", d, gen)
    _linear(s, "logits_projection", 100, d, gen)
    _linear(s, "combined_projection", 3 * d, dims[0], gen)
    _linear(s, "backbone.input_projection", dims[0], dims[0], gen)
    for i, (h, h2) in enumerate(widths(dims, layout)):
        _layer_norm(s, f"backbone.blocks.{i}.layer_norm", h, gen)
        _linear(s, f"backbone.blocks.{i}.mlp.0", h, expansion * h, gen)
        _linear(s, f"backbone.blocks.{i}.mlp.3", expansion * h, h2, gen)
        if h != h2:
            _linear(s, f"backbone.blocks.{i}.dim_change", h, h2, gen)
    _layer_norm(s, "backbone.output_layer.0", dims[-1], gen)
    _linear(s, "backbone.output_layer.1", dims[-1], 1, gen)
    return s


def forward(s: dict[str, torch.Tensor], hidden: torch.Tensor, token_embedding: torch.Tensor,
            topk: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """logit [B] of the network whose weights are `s` (block widths read off the weights)."""
    lin = lambda x, n: F.linear(x, s[n + ".weight"], s[n + ".bias"])  # noqa: E731
    ln = lambda x, n: F.layer_norm(x, s[n + ".weight"].shape, s[n + ".weight"], s[n + ".bias"])  # noqa: E731
    if normalize:
        hidden, token_embedding = ln(hidden, "layer_norm_hidden_states"), ln(token_embedding, "layer_norm_token")
        topk = torch.softmax(topk, dim=-1)
    x = lin(torch.cat([hidden, token_embedding, lin(topk, "logits_projection")], -1), "combined_projection")
    x = lin(x, "backbone.input_projection")
    i = 0
    while f"backbone.blocks.{i}.layer_norm.weight" in s:
        b = f"backbone.blocks.{i}"
        y = lin(F.gelu(lin(ln(x, b + ".layer_norm"), b + ".mlp.0")), b + ".mlp.3")
        x = (lin(x, b + ".dim_change") if b + ".dim_change.weight" in s else x) + y
        i += 1
    return lin(ln(x, "backbone.output_layer.0"), "backbone.output_layer.1")[:, 0]


def write_checkpoint(path: Path, d: int, dims: list[int], *, normalize: bool = False, layout: str = "reference",
                     seed: int = 0, threshold: float = 0.3, init_args: dict[str, Any] | None = None,
                     specific: dict[str, Any] | None = None, vocab: int = 50) -> dict[str, torch.Tensor]:
    """torch.save a dict shaped like the reference's save_model output (embedding table inside);
    returns the weights without the table."""
    s = state_dict(d, dims, normalize=normalize, layout=layout, seed=seed)
    args = {"hidden_states_size": d, "logits_size": 100, "hidden_dims": list(dims), "expansion_factor": 4,
            "dropout_rate": 0.1, "pretrained_model_name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "use_position_embedding": False, "max_position_embeddings": 1024, "topk": None,
            "normalize_input": normalize, "freeze_lm_head": True}
    torch.save({"model_type": "HiddenStatesTokenLMHeadLogitsClassifier", "init_args": {**args, **(init_args or {})},
                "common_args": {"threshold": threshold, "input_type": ["hidden_states", "token", "logits"]},
                "model_specific_args": specific or {},
                "state_dict": {**s, "token_embeddings.weight": torch.randn(vocab, d)}}, path)
    return s


def inputs(d: int, n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Router inputs of the sizes the runtime feeds: hidden [n,d], token_embedding [n,d], topk [n,100] descending."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=gen) * 2
    e = torch.randn(n, d, generator=gen) * 0.05
    k = torch.sort(torch.randn(n, 100, generator=gen) * 3 + 10, dim=1, descending=True).values
    return h, e, k

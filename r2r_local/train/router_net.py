"""The router network of the reference implementation (DESIGN.md section 1), in PyTorch, and its
checkpoint format. Imported only by the router pipeline and scripts, never by the runtime.

Inputs for one position: `hidden` [B,d] (the small model's final hidden state), `token_embedding`
[B,d] (input-embedding row of the proposed token), `topk_logits` [B,100] (largest raw logits,
descending). Output: one logit [B,1]; escalate iff sigmoid(logit) >= threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from r2r_local.atomic import replacing
from r2r_local.errors import RouterError

MODEL_TYPE = "HiddenStatesTokenLMHeadLogitsClassifier"
FORMAT = "r2r-local"


@dataclass(frozen=True)
class RouterShape:
    """Sizes of the network; the reference is d=1536, hidden_dims=[1024]*6, expansion 4 (56.3M)."""

    hidden_states_size: int = 1536
    logits_size: int = 100
    hidden_dims: tuple[int, ...] = (1024,) * 6
    expansion_factor: int = 4
    dropout_rate: float = 0.1
    normalize_input: bool = False


class Block(nn.Module):
    """x' = dim_change(x) + Dropout(Linear(4H->H')(Dropout(GELU(Linear(H->4H)(LayerNorm(x))))))."""

    def __init__(self, dim_in: int, dim_out: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim_in)
        self.mlp = nn.Sequential(nn.Linear(dim_in, expansion * dim_in), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(expansion * dim_in, dim_out), nn.Dropout(dropout))
        self.dim_change = nn.Linear(dim_in, dim_out) if dim_in != dim_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.dim_change is None else self.dim_change(x)
        return skip + self.mlp(self.layer_norm(x))


class Backbone(nn.Module):
    def __init__(self, dims: tuple[int, ...], expansion: int, dropout: float) -> None:
        super().__init__()
        self.input_projection = nn.Linear(dims[0], dims[0])
        ins = (dims[0],) + tuple(dims[:-1])
        self.blocks = nn.ModuleList(Block(i, o, expansion, dropout) for i, o in zip(ins, dims))
        self.output_layer = nn.Sequential(nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_projection(x)
        for block in self.blocks:
            x = block(x)
        return self.output_layer(x)


class RouterNet(nn.Module):
    """The reference classifier; state_dict keys match the reference checkpoints."""

    def __init__(self, shape: RouterShape) -> None:
        super().__init__()
        d, dims = shape.hidden_states_size, tuple(shape.hidden_dims)
        self.shape = shape
        self.logits_projection = nn.Linear(shape.logits_size, d)
        self.combined_projection = nn.Linear(3 * d, dims[0])
        self.backbone = Backbone(dims, shape.expansion_factor, shape.dropout_rate)
        if shape.normalize_input:
            self.layer_norm_hidden_states = nn.LayerNorm(d)
            self.layer_norm_token = nn.LayerNorm(d)

    def forward(self, hidden: torch.Tensor, token_embedding: torch.Tensor, topk_logits: torch.Tensor) -> torch.Tensor:
        if self.shape.normalize_input:
            hidden = self.layer_norm_hidden_states(hidden)
            token_embedding = self.layer_norm_token(token_embedding)
            topk_logits = torch.softmax(topk_logits, dim=-1)
        x = torch.cat([hidden, token_embedding, self.logits_projection(topk_logits)], dim=-1)
        return self.backbone(self.combined_projection(x))


def save_checkpoint(path: str | Path, net: RouterNet, *, threshold: float, recall_target: float | None,
                    training: dict[str, Any] | None = None, small_model: dict[str, Any] | None = None) -> Path:
    """Write the reference format: model_type, init_args, common_args, model_specific_args, training,
    state_dict (without the embedding table). Plain types only, so weights_only loading works."""
    s = net.shape
    doc = {
        "model_type": MODEL_TYPE,
        "init_args": {**{k: v for k, v in asdict(s).items() if k != "hidden_dims"},
                      "hidden_dims": list(s.hidden_dims), "freeze_lm_head": True,
                      "use_position_embedding": False, "pretrained_model_name": None},
        "common_args": {"threshold": float(threshold), "input_type": ["hidden_states", "token", "logits"]},
        "model_specific_args": {"format": FORMAT, "recall_target": recall_target, "small_model": small_model or {}},
        "training": training or {},
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
    }
    path = Path(path)
    try:
        with replacing(path) as tmp:  # a crash or full disk keeps the old file whole
            torch.save(doc, tmp)
    except OSError as e:
        raise RouterError(f"router checkpoint {path}: cannot write it ({e.strerror or e})") from None
    return path


@dataclass
class LoadedCheckpoint:
    net: RouterNet
    threshold: float
    recall_target: float | None
    small_model: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read a reference-format checkpoint (ours or the published one) with weights_only=True.

    A pickle that would run code is refused; `token_embeddings.weight` (the small model's
    embedding table) is ignored when present, since the app reads rows from the GGUF.
    """
    path = Path(path)
    if not path.is_file():
        raise RouterError(f"router checkpoint {path}: file not found")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types; all mean the same to the user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise RouterError(f"router checkpoint {path}: refused, it contains objects that would run code "
                              "when loaded (only tensors and plain values are accepted)") from None
        raise RouterError(f"router checkpoint {path}: not a readable PyTorch checkpoint ({first[:160]})") from None
    if not isinstance(doc, dict) or "state_dict" not in doc or "init_args" not in doc:
        raise RouterError(f"router checkpoint {path}: not a router checkpoint (needs init_args and state_dict)")
    args = doc["init_args"]
    try:
        shape = RouterShape(
            hidden_states_size=int(args["hidden_states_size"]), logits_size=int(args.get("logits_size", 100)),
            hidden_dims=tuple(int(h) for h in args["hidden_dims"]), expansion_factor=int(args.get("expansion_factor", 4)),
            dropout_rate=float(args.get("dropout_rate", 0.0)), normalize_input=bool(args.get("normalize_input", False)))
    except (KeyError, TypeError, ValueError) as e:
        raise RouterError(f"router checkpoint {path}: bad init_args ({e})") from None
    if not isinstance(doc["state_dict"], dict):
        raise RouterError(f"router checkpoint {path}: state_dict is not a dict of tensors")
    state = {k: v for k, v in doc["state_dict"].items() if not k.startswith("token_embeddings.")}
    net = RouterNet(shape)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, AttributeError) as e:  # a tensor of another shape, or not a tensor
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()
        raise RouterError(f"router checkpoint {path}: weights do not fit its init_args ({first[:200]})") from None
    if missing or unexpected:
        raise RouterError(f"router checkpoint {path}: weights do not fit its init_args "
                          f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    net.eval()
    common = doc.get("common_args") or {}
    specific = doc.get("model_specific_args") or {}
    raw = common.get("threshold", 0.5) if isinstance(common, dict) else None
    try:
        threshold = float(raw)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0 <= threshold <= 1:
        raise RouterError(f"router checkpoint {path}: threshold {raw!r} is not a number in [0, 1]")
    return LoadedCheckpoint(net, threshold, specific.get("recall_target"),
                            specific.get("small_model") or {},
                            {"model_type": doc.get("model_type"), "format": specific.get("format", "reference"),
                             "training": doc.get("training") or {}})

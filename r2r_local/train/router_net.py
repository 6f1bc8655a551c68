"""The router network of the reference implementation (R2R's HiddenStatesTokenLMHeadLogitsClassifier),
in PyTorch, and its checkpoint format (docs/router-export.md). Imported only by the router
pipeline and scripts, never by the runtime.

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
from r2r_local.router.features import TOPK
from r2r_local.router.layout import LAYOUTS, LEGACY, REFERENCE, block_widths, layouts_differ

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
    """input_projection H0->H0, one Block per entry of dims (widths from
    r2r_local.router.layout.block_widths), then LayerNorm + Linear(dims[-1] -> 1)."""

    def __init__(self, dims: tuple[int, ...], expansion: int, dropout: float, layout: str = REFERENCE) -> None:
        super().__init__()
        self.input_projection = nn.Linear(dims[0], dims[0])
        self.blocks = nn.ModuleList(Block(i, o, expansion, dropout) for i, o in block_widths(dims, layout))
        self.output_layer = nn.Sequential(nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_projection(x)
        for block in self.blocks:
            x = block(x)
        return self.output_layer(x)


class RouterNet(nn.Module):
    """The reference classifier; state_dict keys and shapes match the reference checkpoints.

    layout: "reference" (what training builds) or "legacy" (only to load checkpoints written by
    earlier r2r-local versions, whose blocks change width elsewhere; r2r_local.router.layout).
    """

    def __init__(self, shape: RouterShape, layout: str = REFERENCE) -> None:
        super().__init__()
        d, dims = shape.hidden_states_size, tuple(shape.hidden_dims)
        self.shape = shape
        self.layout = layout
        self.logits_projection = nn.Linear(shape.logits_size, d)
        self.combined_projection = nn.Linear(3 * d, dims[0])
        self.backbone = Backbone(dims, shape.expansion_factor, shape.dropout_rate, layout)
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
        "model_specific_args": {"format": FORMAT, "block_layout": net.layout, "recall_target": recall_target,
                                "small_model": small_model or {}},
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


# What the reference constructor uses for an argument its checkpoint's init_args leave out
# (it records only the arguments it was given). Every size is checked against the weights.
_REFERENCE_DEFAULTS: dict[str, Any] = {
    "hidden_states_size": 1536, "logits_size": 100, "hidden_dims": [256, 512, 256], "expansion_factor": 4,
    "dropout_rate": 0.3, "normalize_input": False, "use_position_embedding": False,
}


def _not_a_checkpoint(path: Path) -> str | None:
    """Why the file cannot be a torch.save checkpoint (a zip archive, or the legacy pickle), judged
    from its first bytes; None when it may be one. An ONNX router gets a line of its own."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    if path.suffix == ".onnx" or head[:1] == b"\x08":  # an ONNX model's first field: ir_version
        return (f"an ONNX model (an exported router), not a PyTorch checkpoint: it needs no export "
                f"(scripts/export.py router-int8 {path} OUT.onnx makes an int8 copy)")
    return "not a readable PyTorch checkpoint (torch.save writes a zip archive; this file is not one)"


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read a reference-format checkpoint (ours or the published one) with weights_only=True.

    A pickle that would run code is refused; `token_embeddings.weight` (the small model's
    embedding table) is ignored when present, since the app reads rows from the GGUF. Every
    weight must have the shape init_args give it, in the reference block layout, or, for a
    checkpoint written by an earlier r2r-local that records no block_layout, in the legacy one.
    Options the ONNX router cannot express (another model_type, position embeddings, other
    than 100 logits) are refused with one line.
    """
    path = Path(path)
    doc = _read_doc(path)
    args = doc["init_args"]
    shape = _shape_from_args(path, args)
    _refuse_unsupported(path, doc, args, shape)
    if not isinstance(doc["state_dict"], dict):
        raise RouterError(f"router checkpoint {path}: state_dict is not a dict of tensors")
    state = {k: v for k, v in doc["state_dict"].items() if not str(k).startswith("token_embeddings.")}
    specific = doc.get("model_specific_args") if isinstance(doc.get("model_specific_args"), dict) else {}
    layout = _pick_layout(path, shape, state, specific)
    net = RouterNet(shape, layout)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:  # shapes were checked: this is a damaged tensor
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()
        raise RouterError(f"router checkpoint {path}: weights do not fit its init_args ({first[:200]})") from None
    net.eval()
    common = doc.get("common_args") or {}
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
                             "block_layout": layout, "training": doc.get("training") or {}})


def _read_doc(path: Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded with weights_only=True; one-line errors otherwise."""
    if not path.is_file():
        raise RouterError(f"router checkpoint {path}: file not found")
    if problem := _not_a_checkpoint(path):
        raise RouterError(f"router checkpoint {path}: {problem}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types; all mean the same to the user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise RouterError(f"router checkpoint {path}: refused, it contains objects that would run code "
                              "when loaded (only tensors and plain values are accepted)") from None
        raise RouterError(f"router checkpoint {path}: not a readable PyTorch checkpoint ({first[:160]})") from None
    if not isinstance(doc, dict) or "state_dict" not in doc or not isinstance(doc.get("init_args"), dict):
        raise RouterError(f"router checkpoint {path}: not a router checkpoint (needs init_args and state_dict)")
    return doc


def _size(value: Any) -> int:
    """A positive integer size (an integral float such as 1024.0 is accepted)."""
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{value!r} is not a positive integer")
    return int(value)


def _shape_from_args(path: Path, args: dict[str, Any]) -> RouterShape:
    """Every size from init_args (the reference's defaults where a key is absent)."""
    a = {**_REFERENCE_DEFAULTS, **args}
    try:
        dims = tuple(_size(h) for h in a["hidden_dims"])
        if not dims:
            raise ValueError("hidden_dims is empty")
        return RouterShape(hidden_states_size=_size(a["hidden_states_size"]), logits_size=_size(a["logits_size"]),
                           hidden_dims=dims, expansion_factor=_size(a["expansion_factor"]),
                           dropout_rate=float(a["dropout_rate"] or 0.0), normalize_input=bool(a["normalize_input"]))
    except (TypeError, ValueError) as e:
        raise RouterError(f"router checkpoint {path}: bad init_args ({e})") from None


def _refuse_unsupported(path: Path, doc: dict[str, Any], args: dict[str, Any], shape: RouterShape) -> None:
    """One line for each reference option the exported ONNX router cannot express."""
    model_type = doc.get("model_type")
    if model_type is not None and model_type != MODEL_TYPE:
        raise RouterError(f"router checkpoint {path}: model_type {model_type!r} is not supported; only {MODEL_TYPE} "
                          f"(inputs: hidden state, token embedding, top-{TOPK} logits) can be exported")
    if args.get("use_position_embedding"):
        raise RouterError(f"router checkpoint {path}: use_position_embedding=True is not supported (the exported "
                          "router has no position input); retrain with use_position_embedding=False")
    if shape.logits_size != TOPK:
        raise RouterError(f"router checkpoint {path}: logits_size {shape.logits_size} is not supported "
                          f"(the runtime feeds the router the {TOPK} largest logits)")


def _expected_shapes(shape: RouterShape, layout: str) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        net = RouterNet(shape, layout)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _pick_layout(path: Path, shape: RouterShape, state: dict[str, Any], specific: dict[str, Any]) -> str:
    """The block layout whose weight shapes are exactly those of `state`.

    A checkpoint that records block_layout is held to it; one without is tried in the reference
    layout and, if r2r-local wrote it and its hidden_dims change width, in the legacy one.
    """
    recorded = specific.get("block_layout")
    if recorded is not None and recorded not in LAYOUTS:
        raise RouterError(f"router checkpoint {path}: unknown block_layout {recorded!r} (expected one of {LAYOUTS})")
    if recorded is not None:
        candidates = [recorded]
    else:
        ours = specific.get("format") == FORMAT and layouts_differ(shape.hidden_dims)
        candidates = [REFERENCE, LEGACY] if ours else [REFERENCE]
    got = {str(k): tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}
    for layout in candidates:
        if _expected_shapes(shape, layout) == got:
            return layout
    want = _expected_shapes(shape, candidates[0])
    raise RouterError(f"router checkpoint {path}: weights do not fit its init_args ({_first_difference(want, got)})")


def _first_difference(want: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...] | None]) -> str:
    """The first weight of another shape (in network order), else the missing and unexpected keys."""
    key = next((k for k in want if k in got and want[k] != got[k]), None)
    if key is not None:
        if got[key] is None:
            return f"{key} is not a tensor"
        return f"{key} has shape {list(got[key])}, init_args give {list(want[key])}"
    missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    return f"missing {missing[:3]}, unexpected {unexpected[:3]}"

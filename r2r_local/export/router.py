"""Router checkpoint (reference format, ours or the published one) -> ONNX + JSON sidecar.

The ONNX file follows the runtime contract (r2r_local/router/onnx.py): inputs `hidden` [B,d],
`token_embedding` [B,d], `topk_logits` [B,100] float32, output `logit` [B,1], batch dynamic.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from r2r_local.atomic import replacing_together
from r2r_local.errors import RouterError
from r2r_local.router.onnx import INPUTS, OUTPUT, SIDECAR_FORMAT, sidecar_path


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    max_abs_diff: float
    n_params: int
    bytes: int
    block_layout: str = "reference"  # "legacy": an earlier r2r-local checkpoint (r2r_local.router.layout)


def export_router(checkpoint: str | Path, out: str | Path, *, fp16: bool = False,
                  small_model: dict[str, Any] | None = None, check_batch: int = 16, seed: int = 0) -> ExportResult:
    """Export, then check onnxruntime against PyTorch on random inputs (max abs diff of the logit).

    What can be exported, and what is refused: load_checkpoint and docs/router-export.md.

    The .onnx and its sidecar are written to temp files and renamed into place together
    (r2r_local.atomic.replacing_together), the .onnx first: a failed export, check or rename,
    Ctrl-C included, leaves the old pair as it was. Only a kill between the two renames can
    leave the new model beside the old sidecar; OnnxRouter refuses that pair when their
    widths differ, not when only the threshold does (the sidecar records no hash of the model).
    """
    import torch

    from r2r_local.train.router_net import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    net, d = ckpt.net, ckpt.net.shape.hidden_states_size
    for name, p in net.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise RouterError(f"router checkpoint {checkpoint}: {name} has NaN or infinite values")
    out = Path(out)
    if out.suffix != ".onnx":
        raise RouterError(f"router output {out}: the file name must end in .onnx")
    model = net.half() if fp16 else net.float()
    dtype = torch.float16 if fp16 else torch.float32
    example = tuple(torch.zeros(2, n, dtype=dtype) for n in (d, d, net.shape.logits_size))
    side = sidecar_path(out)
    try:
        with replacing_together(out, side) as (tmp_onnx, tmp_side):
            torch.onnx.export(_Float32Io(model, dtype), tuple(x.float() for x in example), str(tmp_onnx),
                              input_names=list(INPUTS), output_names=[OUTPUT],
                              dynamic_axes={n: {0: "batch"} for n in (*INPUTS, OUTPUT)}, opset_version=17, dynamo=False)
            diff = _check(tmp_onnx, net.float(), d, net.shape.logits_size, check_batch, seed)
            meta = {
                "format": SIDECAR_FORMAT, "version": 1, "threshold": ckpt.threshold, "recall_target": ckpt.recall_target,
                "d": d, "topk": net.shape.logits_size, "small_model": small_model or ckpt.small_model,
                "precision": "fp16" if fp16 else "fp32",
                "provenance": {"checkpoint": str(Path(checkpoint).resolve()), **ckpt.provenance,
                               "onnx_vs_torch_max_abs_diff": diff},
            }
            tmp_side.write_text(json.dumps(meta, indent=2))
    except OSError as e:
        raise RouterError(f"router output {out}: cannot write it ({e.strerror or e}); the old files are unchanged") from None
    n_params = sum(p.numel() for p in net.parameters())
    return ExportResult(out, side, diff, n_params, out.stat().st_size, net.layout)


def quantize_router_int8(src: str | Path, out: str | Path, *, check_batch: int = 16, seed: int = 0) -> ExportResult:
    """An exported router with its weights in int8 (onnxruntime's dynamic quantization of the
    MatMul/Gemm weights, per output channel; activations are quantized per call). Four times
    smaller, and on a CPU several times faster for a router of the reference size, whose call
    is bound by reading its weights. Same ONNX contract; the sidecar is copied with precision
    "int8" and what it was made from. max_abs_diff: of the logit against `src` on random inputs."""
    import hashlib
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, out = Path(src), Path(out)
    if out.suffix != ".onnx":
        raise RouterError(f"router output {out}: the file name must end in .onnx")
    if out.resolve() == src.resolve():
        raise RouterError(f"router output {out}: must differ from the input")
    from r2r_local.router.onnx import OnnxRouter, read_sidecar

    router = OnnxRouter(src)  # checks the file and its sidecar first: one clear line if they are bad
    meta = dict(read_sidecar(src))
    with tempfile.TemporaryDirectory() as tmp:  # quantize_dynamic writes side files next to its output
        tmp_out = Path(tmp) / "router-int8.onnx"
        logging.disable(logging.WARNING)  # its advice to pre-process is for image models
        try:
            quantize_dynamic(str(src), str(tmp_out), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        meta["precision"] = "int8"
        meta["provenance"] = {**meta.get("provenance", {}), "quantized_from": str(src.resolve()),
                              "quantized_from_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
                              "quantization": "onnxruntime quantize_dynamic, QInt8 weights per channel"}
        sidecar_path(tmp_out).write_text(json.dumps(meta, indent=2))
        diff = _max_logit_diff(OnnxRouter(tmp_out), router, int(meta.get("topk", 100)), check_batch, seed)
        meta["provenance"]["int8_vs_source_max_abs_logit_diff"] = diff
        side = sidecar_path(out)
        try:  # as in export_router: both files or neither
            with replacing_together(out, side) as (tmp_onnx, tmp_side):
                shutil.copyfile(tmp_out, tmp_onnx)
                tmp_side.write_text(json.dumps(meta, indent=2))
        except OSError as e:
            raise RouterError(f"router output {out}: cannot write it ({e.strerror or e}); the old files are unchanged") from None
    import onnx

    n_params = sum(int(np.prod(t.dims)) for t in onnx.load(str(src)).graph.initializer)
    return ExportResult(out, side, diff, n_params, out.stat().st_size,
                        str(meta["provenance"].get("block_layout", "reference")))


def _max_logit_diff(a: Any, b: Any, k: int, batch: int, seed: int) -> float:
    """Max abs difference of two OnnxRouters' logits on random float32 [batch,d], [batch,d], [batch,k]."""
    rng = np.random.default_rng(seed)
    feeds = (rng.normal(size=(batch, b.d)).astype(np.float32),
             (rng.normal(size=(batch, b.d)) * 0.05).astype(np.float32),
             (-np.sort(-rng.normal(size=(batch, k)) * 3, axis=1)).astype(np.float32))
    return float(np.abs(a.logits(*feeds) - b.logits(*feeds)).max())


class _Float32Io:
    """Keeps the ONNX interface float32 even when the weights are fp16."""

    def __new__(cls, model: Any, dtype: Any) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, hidden, token_embedding, topk_logits):  # type: ignore[no-untyped-def]
                logit = self.model(hidden.to(dtype), token_embedding.to(dtype), topk_logits.to(dtype))
                return logit.float()

        return Wrapper().eval()


def _check(path: Path, net: Any, d: int, k: int, batch: int, seed: int) -> float:
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    feeds = {"hidden": rng.normal(size=(batch, d)), "token_embedding": rng.normal(size=(batch, d)) * 0.05,
             "topk_logits": -np.sort(-rng.normal(size=(batch, k)) * 3, axis=1)}
    feeds = {n: v.astype(np.float32) for n, v in feeds.items()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT], feeds)
    with torch.no_grad():
        want = net(*(torch.from_numpy(feeds[n]) for n in INPUTS)).numpy()
    return float(np.abs(got - want).max())

"""Can onnxruntime really run the router on the GPU? Open a CUDA session on a tiny model and see.

onnxruntime-gpu lists CUDAExecutionProvider as *available* even when the CUDA and cuDNN
libraries it needs are missing; only a session shows whether the provider was really taken
(`session.get_providers()`), so `r2r doctor` opens one. The tiny model (y = x + x, float32 [1, 4])
is encoded here by hand in ONNX's protobuf wire format, so the runtime needs no `onnx` package.
Kept apart from router/onnx.py because it is a diagnostic, never on the token path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_value(name: str, dims: tuple[int, ...]) -> bytes:
    shape = b"".join(_field(1, _field(1, d)) for d in dims)  # TensorShapeProto.dim.dim_value
    tensor_type = _field(1, 1) + _field(2, shape)  # elem_type FLOAT, shape
    return _field(1, name) + _field(2, _field(1, tensor_type))  # ValueInfoProto name, type


def tiny_model_bytes() -> bytes:
    """A valid ONNX model (IR 8, opset 13): output y = Add(x, x), both float32 [1, 4]."""
    node = _field(1, "x") + _field(1, "x") + _field(2, "y") + _field(3, "add") + _field(4, "Add")
    graph = (_field(1, node) + _field(2, "probe") + _field(11, _tensor_value("x", (1, 4)))
             + _field(12, _tensor_value("y", (1, 4))))
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 8) + _field(7, graph) + _field(8, opset)


@dataclass(frozen=True)
class OrtProbe:
    version: str | None
    available: tuple[str, ...]  # providers the build lists
    session_providers: tuple[str, ...]  # providers a CUDA-first session really took
    cuda_ok: bool
    detail: str

    def as_dict(self) -> dict:
        return {"version": self.version, "available": list(self.available),
                "session_providers": list(self.session_providers), "cuda_ok": self.cuda_ok,
                "detail": self.detail}


def probe_cuda(try_cuda: bool = True) -> OrtProbe:
    """Open a session asking for CUDA first; never raises. `try_cuda=False` skips the attempt
    (on a machine without a GPU it would only log the missing libraries)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        return OrtProbe(None, (), (), False, f"onnxruntime is not installed ({e})")
    available = tuple(ort.get_available_providers())
    if CUDA not in available:
        return OrtProbe(ort.__version__, available, (), False,
                        "this onnxruntime build has no CUDA provider (the CPU package 'onnxruntime'?)")
    if not try_cuda:
        return OrtProbe(ort.__version__, available, (), False, "CUDA session not tried: no GPU found")
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    # The fallback is reported below; onnxruntime's own error lines about missing libraries would
    # only repeat it on stderr. 2 (warning) is onnxruntime's default severity, restored after.
    ort.set_default_logger_severity(4)
    try:
        sess = ort.InferenceSession(tiny_model_bytes(), sess_options=opts, providers=[CUDA, "CPUExecutionProvider"])
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        y = sess.run(None, {"x": x})[0]
    except Exception as e:  # onnxruntime raises its own types; any failure means no CUDA session
        return OrtProbe(ort.__version__, available, (), False, f"a session could not be opened ({e})")
    finally:
        ort.set_default_logger_severity(2)
    taken = tuple(sess.get_providers())
    if not np.array_equal(y, x + x):
        return OrtProbe(ort.__version__, available, taken, False, "the probe model computed a wrong result")
    if CUDA in taken:
        return OrtProbe(ort.__version__, available, taken, True, "a CUDA session opened and ran")
    return OrtProbe(ort.__version__, available, taken, False,
                    "CUDA was asked for but the session fell back to the CPU (CUDA/cuDNN libraries missing?)")

"""Conversions out of the training world: Hugging Face checkpoints -> GGUF, GGUF quantization,
router checkpoints -> ONNX.

Heavy packages (torch, safetensors) are imported inside the functions that need them.
"""

from r2r_local.export.errors import ExportError

__all__ = ["ExportError"]

"""Conversions out of the training world (router checkpoints -> ONNX; HF -> GGUF).

Heavy packages (torch) are imported inside the functions that need them.
"""

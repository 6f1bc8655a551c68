"""The neural router on onnxruntime: the only module that imports onnxruntime.

File contract (docs/design.md, "The local system"): inputs `hidden` [B,d], `token_embedding` [B,d],
`topk_logits` [B,100] float32; output `logit` [B,1]. A JSON sidecar next to the model
(`router.onnx` -> `router.json`) holds the threshold and what the router was trained for.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from r2r_local.errors import RouterError
from r2r_local.router import Decision, Step
from r2r_local.router.features import TOPK, topk_logits

log = logging.getLogger(__name__)

INPUTS = ("hidden", "token_embedding", "topk_logits")
OUTPUT = "logit"
SIDECAR_FORMAT = "r2r-local-router"


def sidecar_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


_OPTIONAL_FIELDS = {"recall_target": (int, float), "topk": int, "precision": str, "format": str, "version": int,
                    "provenance": dict}


def read_sidecar(onnx_path: str | Path) -> dict[str, Any]:
    """The sidecar as a dict, validated: threshold in (0,1), d a positive int, the other known
    fields of their JSON type (small_model an object with a string vocab_hash and an int n_embd)."""
    path = sidecar_path(onnx_path)
    if not path.is_file():
        raise RouterError(f"router {onnx_path}: its sidecar {path} is missing")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RouterError(f"router sidecar {path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise RouterError(f"router sidecar {path}: expected a JSON object")
    threshold, d = meta.get("threshold"), meta.get("d")
    if not _is(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise RouterError(f"router sidecar {path}: 'threshold' must be a number in (0, 1)")
    if not _is(d, int) or d <= 0:
        raise RouterError(f"router sidecar {path}: 'd' must be a positive integer")
    for key, want in _OPTIONAL_FIELDS.items():
        if meta.get(key) is not None and not _is(meta[key], want):
            raise RouterError(f"router sidecar {path}: '{key}' has the wrong type ({type(meta[key]).__name__})")
    if meta.get("topk") is not None and meta["topk"] != TOPK:
        raise RouterError(f"router sidecar {path}: 'topk' must be {TOPK}, got {meta['topk']}")
    small = meta.get("small_model")
    if small is not None:
        if not isinstance(small, dict):
            raise RouterError(f"router sidecar {path}: 'small_model' must be an object")
        for key, want in (("vocab_hash", str), ("n_embd", int), ("path", str)):
            if small.get(key) is not None and not _is(small[key], want):
                raise RouterError(f"router sidecar {path}: 'small_model.{key}' must be "
                                  f"{'a string' if want is str else 'an integer'}")
    return meta


def _is(value: Any, want: type | tuple[type, ...]) -> bool:
    """isinstance for JSON values, where true and false are not numbers."""
    return isinstance(value, want) and not isinstance(value, bool)


def _first_line(e: BaseException) -> str:
    """An onnxruntime error in one line: its message's first line, or its type's name when empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _router_threads() -> int:
    text = os.environ.get("R2R_ROUTER_THREADS", "1")
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise RouterError(f"R2R_ROUTER_THREADS must be an integer between 1 and 1024, got '{text}'")
    return n


def _gpu_present() -> bool:
    """An NVIDIA driver is loaded (asking onnxruntime for CUDA without one only logs errors)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def _providers() -> list[str]:
    """CUDA first where a GPU and the CUDA provider exist (R2R_ROUTER_DEVICE=cpu|cuda overrides)."""
    import onnxruntime as ort

    wanted = os.environ.get("R2R_ROUTER_DEVICE", "cuda" if _gpu_present() else "cpu").lower()
    cuda = wanted == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]


class OnnxRouter:
    """Escalate iff sigmoid(logit) >= threshold."""

    needs_hidden = True
    may_escalate = True

    def __init__(
        self, path: str | Path, *, n_embd: int | None = None, vocab_hash: str | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RouterError(f"router {self.path}: file not found")
        self.meta = read_sidecar(self.path)
        self.threshold = float(self.meta["threshold"])
        self.d = int(self.meta["d"])
        self._check_pairing(n_embd, vocab_hash)
        self._session = self._open()
        self._run_options = self._quiet_run()
        self.provider = self._session.get_providers()[0]

    @property
    def name(self) -> str:
        return str(self.path)

    def _check_pairing(self, n_embd: int | None, vocab_hash: str | None) -> None:
        if n_embd is not None and n_embd != self.d:
            raise RouterError(
                f"router {self.path}: built for hidden size {self.d}, the small model has {n_embd}"
            )
        want = (self.meta.get("small_model") or {}).get("vocab_hash")
        if vocab_hash and want and want != vocab_hash:
            raise RouterError(f"router {self.path}: trained for another small model's vocabulary")

    def _open(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # fatal only: errors are raised as RouterError, its own log lines would repeat them
        # One thread that sleeps when idle: a spinning pool fights llama.cpp's own threads for
        # the same cores, and a router this small gains little from more threads.
        opts.intra_op_num_threads = _router_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(self.path), opts, providers=_providers())
        except Exception as e:  # onnxruntime raises its own types for bad files
            raise RouterError(f"router {self.path}: not a loadable ONNX model ({_first_line(e)})") from None
        self._check_io(session)
        return session

    @staticmethod
    def _quiet_run():  # type: ignore[no-untyped-def]
        import onnxruntime as ort

        run = ort.RunOptions()
        run.log_severity_level = 4
        return run

    def _check_io(self, session: Any) -> None:
        """Names, element types and ranks of the graph's inputs and output (docs/design.md, "The local system")."""
        names = {i.name: i for i in session.get_inputs()}
        outputs = session.get_outputs()
        if set(names) != set(INPUTS) or [o.name for o in outputs] != [OUTPUT]:
            raise RouterError(
                f"router {self.path}: expected inputs {', '.join(INPUTS)} and output '{OUTPUT}', "
                f"found inputs {', '.join(sorted(names))} and outputs {', '.join(o.name for o in outputs)}"
            )
        for name, width in (("hidden", self.d), ("token_embedding", self.d), ("topk_logits", TOPK)):
            node = names[name]
            shape = node.shape
            if node.type != "tensor(float)":
                raise RouterError(f"router {self.path}: input '{name}' is {node.type}, expected tensor(float)")
            if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
                raise RouterError(f"router {self.path}: input '{name}' has shape {shape}, expected [B, {width}]")
        out = outputs[0]
        if out.type not in ("tensor(float)", "tensor(float16)", "tensor(double)"):
            raise RouterError(f"router {self.path}: output '{OUTPUT}' is {out.type}, expected tensor(float)")
        if out.shape is not None and (len(out.shape) != 2 or (isinstance(out.shape[1], int) and out.shape[1] != 1)):
            raise RouterError(f"router {self.path}: output '{OUTPUT}' has shape {out.shape}, expected [B, 1]")

    def logits(self, hidden: np.ndarray, token_embedding: np.ndarray, topk: np.ndarray) -> np.ndarray:
        """float32 [B]: the graph's raw output for a batch of float32 [B,d], [B,d], [B,100]."""
        feeds = {
            "hidden": np.ascontiguousarray(hidden, dtype=np.float32),
            "token_embedding": np.ascontiguousarray(token_embedding, dtype=np.float32),
            "topk_logits": np.ascontiguousarray(topk, dtype=np.float32),
        }
        try:
            (logit,) = self._session.run([OUTPUT], feeds, self._run_options)
        except Exception as e:  # onnxruntime raises its own types
            raise RouterError(f"router {self.path}: failed while running ({_first_line(e)})") from None
        logit = np.asarray(logit).reshape(-1)
        if logit.shape[0] != hidden.shape[0]:
            raise RouterError(f"router {self.path}: returned {logit.shape[0]} values for {hidden.shape[0]} positions")
        if np.isnan(logit).any():  # +-inf are clear decisions; NaN would silently never escalate
            raise RouterError(f"router {self.path}: returned NaN (a broken model or broken weights)")
        return logit.astype(np.float32)

    def probabilities(
        self, hidden: np.ndarray, token_embedding: np.ndarray, topk: np.ndarray
    ) -> np.ndarray:
        """float32 [B]: escalation probabilities, sigmoid of `logits`."""
        logit = self.logits(hidden, token_embedding, topk)
        return (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32)

    def decide(self, step: Step, threshold: float | None = None) -> Decision:
        if step.hidden is None:
            raise ValueError("the ONNX router needs the small model's hidden state")
        p = float(
            self.probabilities(
                step.hidden[None, :], step.embedding(step.token)[None, :], topk_logits(step.logits)[None, :]
            )[0]
        )
        return Decision(p >= (self.threshold if threshold is None else threshold), p)

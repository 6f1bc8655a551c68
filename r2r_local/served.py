"""Checking a served large model before it is used: is the server there, what does it serve, does
it share the small model's tokenizer. `r2r doctor` reports it; `r2r models add --large URL`
refuses a pair that fails it.

The checks are the ones a load makes (r2r_local.pair: LlamaServerModel, then check_pairing), so
a pair that passes here loads; the small model is opened with a short context only for them.
"""

from __future__ import annotations

from typing import Any

from r2r_local.config import ModelSpec
from r2r_local.errors import R2RError
from r2r_local.server_bounds import ServerBounds

PAIRING_N_CTX = 256  # the small model is read for its tokenizer only


def connect(url: str, bounds: ServerBounds | None = None) -> Any:
    """The served model (llama-server's or vLLM's, r2r_local.backends.served); ModelLoadError in
    one line when the server is not there, not ready or neither engine. The caller closes it."""
    from r2r_local.backends.served import open_served_model

    return open_served_model(ModelSpec(url, role="large", server=bounds))


def describe(model: Any) -> dict[str, Any]:
    """What the server says it serves: engine, model (its id: llama-server's -m path or alias),
    context length, vocabulary size and parameter count."""
    return {"engine": model.engine, "model": model.model_id, "n_ctx": model.slot.n_ctx,
            "n_vocab": model.n_vocab, "n_params": model.n_params}


def check_pairing_with(small_path: str, model: Any) -> int:
    """The shared vocabulary size of the small GGUF at `small_path` and the served `model`, after
    the load-time comparison (r2r_local.backends.remote.check_pairing); raises R2RError naming
    both in one line (VocabMismatchError, or the small model's load error)."""
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.backends.remote import check_pairing

    small = LlamaCppBackend(ModelSpec(small_path, n_ctx=PAIRING_N_CTX, role="small"))
    try:
        return check_pairing(small, model, small_path)
    finally:
        small.close()


def check_served_pair(small_path: str, url: str, bounds: ServerBounds | None = None) -> dict[str, Any]:
    """describe() of the server at `url` and the shared vocabulary size with the small model
    (n_shared_vocab); raises R2RError in one line at the first failed check."""
    model = connect(url, bounds)
    try:
        return describe(model) | {"n_shared_vocab": check_pairing_with(small_path, model)}
    finally:
        model.close()


FIX_UNREACHABLE = ("start llama-server with the large model there (llama-server -m LARGE.gguf --host HOST --port PORT "
                   "-np 1), or configure a local one: r2r models add --small S --large L.gguf")
FIX_MISMATCH = "serve the large model of this pair there (one with the small model's tokenizer)"


def doctor_entry(url: str, small_path: str | None, bounds: ServerBounds | None,
                 ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`r2r doctor`'s large-model entry for a served model and its problems as (what, fix):
    reachable or not (then one line why), what it serves, and the pairing with the small model
    (not checked when there is no usable small model)."""
    entry: dict[str, Any] = {"path": url, "served": True}
    try:
        model = connect(url, bounds)
    except R2RError as e:
        entry |= {"reachable": False, "error": str(e)}
        return entry, [(str(e), FIX_UNREACHABLE)]
    problems = []
    try:
        entry |= {"reachable": True} | describe(model)
        if small_path is None:
            entry["pairing"] = "not checked: no usable small model"
        else:
            try:
                entry["n_shared_vocab"] = check_pairing_with(small_path, model)
                entry["pairing"] = "ok"
            except R2RError as e:
                entry["pairing"] = str(e)
                problems.append((str(e), FIX_MISMATCH))
    finally:
        model.close()
    return entry, problems


def config_changes(url: str, flags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`r2r models add --large URL`: the fit lines to show and the config keys to set (the address,
    the request bounds and --small-gpu-layers given in `flags`); the server places its model, so
    no GPU plan is made for it."""
    from r2r_local.server_bounds import SERVER_KEYS

    changes: dict[str, Any] = {"large": url} | {k: flags[k] for k in SERVER_KEYS if flags.get(k) is not None}
    if flags.get("small_gpu_layers") is not None:
        changes["small_gpu_layers"] = flags["small_gpu_layers"]
    lines = [f"large model served by {url}: its server places it",
             "small model: all layers on the GPU where llama.cpp has one, else the CPU"]
    return {"lines": lines}, changes


def stale_server_keys(cfg: dict[str, Any], large: str) -> tuple[str, ...]:
    """Configured request bounds (large_timeout, ...) to leave out when the new large model is a file."""
    from r2r_local.backends.remote import is_remote
    from r2r_local.server_bounds import SERVER_KEYS

    return () if is_remote(large) else tuple(k for k in SERVER_KEYS if k in cfg)

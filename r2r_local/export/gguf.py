"""Hugging Face checkpoint folder (Qwen2, Llama) -> GGUF (F32 or F16), tensor by tensor.

The header (metadata and tensor infos) is written first; then each tensor is read from the
checkpoint, converted and appended, so memory holds one tensor at a time. 1-D tensors (norms,
biases) stay F32 in an F16 file, as llama.cpp expects.

Llama checkpoints store q/k projections in the layout of HF's rotate-half RoPE; llama.cpp's
LLAMA graph uses interleaved RoPE, so their rows are permuted back. Qwen2 runs NEOX RoPE in
llama.cpp and needs no permutation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from r2r_local.atomic import replacing
from r2r_local.export.errors import ExportError
from r2r_local.export.hf import SUPPORTED, Checkpoint, read_config
from r2r_local.export.tokenizer import TokenizerInfo, read_tokenizer

OUTTYPES = ("f32", "f16")
_SKIP_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass(frozen=True)
class Written:
    """What a conversion wrote."""

    path: str
    size_bytes: int
    outtype: str
    arch: str
    n_tensors: int
    n_params: int


def _arch_enum(arch: str):
    import gguf

    return {"qwen2": gguf.MODEL_ARCH.QWEN2, "llama": gguf.MODEL_ARCH.LLAMA}[arch]


def _permute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k projection from rotate-half order to interleaved pairs, per head."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _head_dim(config: dict) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def _write_metadata(w, arch: str, config: dict, tok: TokenizerInfo, name: str, outtype: str) -> None:
    import gguf

    n_head = int(config["num_attention_heads"])
    head_dim = _head_dim(config)
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(int(config["max_position_embeddings"]))
    w.add_embedding_length(int(config["hidden_size"]))
    w.add_block_count(int(config["num_hidden_layers"]))
    w.add_feed_forward_length(int(config["intermediate_size"]))
    w.add_head_count(n_head)
    w.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))
    w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    w.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    w.add_rope_dimension_count(head_dim)
    if head_dim * n_head != int(config["hidden_size"]):
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_vocab_size(len(tok.tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tok.pre)
    w.add_token_list(tok.tokens)
    w.add_token_types(tok.types)
    w.add_token_merges(tok.merges)
    adders = {"bos": w.add_bos_token_id, "eos": w.add_eos_token_id, "pad": w.add_pad_token_id, "unk": w.add_unk_token_id}
    for key, token_id in tok.special_ids.items():
        adders[key](token_id)
    w.add_add_bos_token(tok.add_bos)
    w.add_add_eos_token(tok.add_eos)
    if tok.chat_template:
        w.add_chat_template(tok.chat_template)


def _plan(ckpt: Checkpoint, arch: str, config: dict) -> list[tuple[str, str]]:
    """(hf name, gguf name) of every tensor to write, in checkpoint order."""
    import gguf

    tmap = gguf.get_tensor_name_map(_arch_enum(arch), int(config["num_hidden_layers"]))
    tied = bool(config.get("tie_word_embeddings", False))
    plan = []
    for name in ckpt.shapes:
        if name.endswith(_SKIP_SUFFIXES) or (tied and name == "lm_head.weight"):
            continue
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ExportError(f"{ckpt.folder}: tensor {name!r} has no GGUF name for {arch}")
        plan.append((name, new))
    return plan


def _expected_shapes(config: dict, n_vocab: int) -> dict[str, tuple[int, ...]]:
    """HF name -> shape ([out, in]) of every tensor the llama.cpp graph needs, from config.json."""
    hidden, inter, head_dim = int(config["hidden_size"]), int(config["intermediate_size"]), _head_dim(config)
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    shapes = {"model.embed_tokens.weight": (n_vocab, hidden), "model.norm.weight": (hidden,)}
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (n_vocab, hidden)
    for i in range(int(config["num_hidden_layers"])):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (n_head * head_dim, hidden), p + "self_attn.k_proj.weight": (n_kv * head_dim, hidden),
            p + "self_attn.v_proj.weight": (n_kv * head_dim, hidden), p + "self_attn.o_proj.weight": (hidden, n_head * head_dim),
            p + "mlp.gate_proj.weight": (inter, hidden), p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
        })
    return shapes


def _check_shapes(ckpt: Checkpoint, config: dict, n_vocab: int) -> None:
    """Every tensor the model needs is there, with the shape config.json gives it."""
    for name, want in _expected_shapes(config, n_vocab).items():
        got = ckpt.shapes.get(name)
        if got is None:
            raise ExportError(f"{ckpt.folder}: the checkpoint has no {name}")
        if tuple(got) != want:
            raise ExportError(f"{ckpt.folder}: tensor {name} has shape {list(got)}, config.json implies {list(want)}")


def _inputs(folder: str, ckpt: Checkpoint) -> list[str]:
    names = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
             "model.safetensors.index.json", "pytorch_model.bin.index.json")
    return [*ckpt.files, *(os.path.join(folder, n) for n in names)]


def _check_out_path(out_path: str, inputs: list[str]) -> None:
    """Refuse an output that is a folder or one of the files the conversion reads."""
    if os.path.isdir(out_path):
        raise ExportError(f"{out_path}: is a folder; give the GGUF file to write")
    for path in inputs:
        if os.path.exists(path) and os.path.exists(out_path) and os.path.samefile(path, out_path):
            raise ExportError(f"{out_path}: is one of the conversion's input files; write the GGUF elsewhere")


def _finite(name: str, data: np.ndarray, ckpt: Checkpoint, outtype: str) -> np.ndarray:
    if not np.isfinite(data).all():
        where = "" if outtype == "f32" or not np.isfinite(ckpt.load(name)).all() else f" once stored in {outtype.upper()}"
        raise ExportError(f"{ckpt.folder}: tensor {name} has NaN or infinite values{where}")
    return data


def _convert(name: str, data: np.ndarray, arch: str, config: dict, outtype: str) -> np.ndarray:
    if arch == "llama":
        if "self_attn.q_proj." in name:
            data = _permute_rope(data, int(config["num_attention_heads"]))
        elif "self_attn.k_proj." in name:
            n_kv = int(config.get("num_key_value_heads") or config["num_attention_heads"])
            data = _permute_rope(data, n_kv)
    if outtype == "f16" and data.ndim >= 2:
        return np.ascontiguousarray(data, dtype=np.float16)
    return np.ascontiguousarray(data, dtype=np.float32)


def hf_to_gguf(folder: str, out_path: str, outtype: str = "f16", name: str | None = None) -> Written:
    """Convert the checkpoint in `folder` to a GGUF at `out_path`; raises ExportError on bad input."""
    import gguf

    if outtype not in OUTTYPES:
        raise ExportError(f"unknown output type {outtype!r} (choose {' or '.join(OUTTYPES)})")
    config = read_config(folder)
    arch = SUPPORTED[config["architectures"][0]]
    ckpt = Checkpoint(folder)
    embed = ckpt.shapes.get("model.embed_tokens.weight")
    if embed is None:
        raise ExportError(f"{folder}: the checkpoint has no model.embed_tokens.weight")
    _check_shapes(ckpt, config, embed[0])
    tok = read_tokenizer(folder, embed[0], config)
    plan = _plan(ckpt, arch, config)
    _check_out_path(out_path, _inputs(folder, ckpt))
    try:
        with replacing(out_path) as tmp:  # Ctrl-C or bad data: the temp file goes, an old out_path stays
            n_params = _write(str(tmp), ckpt, plan, arch, config, tok,
                              name or os.path.basename(os.path.normpath(folder)), outtype)
    except OSError as e:
        raise ExportError(f"{out_path}: cannot write it ({e.strerror or e})") from None
    return Written(out_path, os.path.getsize(out_path), outtype.upper(), arch, len(plan), n_params)


def _write(tmp: str, ckpt: Checkpoint, plan: list[tuple[str, str]], arch: str, config: dict,
           tok: TokenizerInfo, name: str, outtype: str) -> int:
    """Header, then tensors one at a time, into `tmp`; returns the number of parameters."""
    import gguf

    w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[_arch_enum(arch)])
    _write_metadata(w, arch, config, tok, name, outtype)
    n_params = 0
    for hf_name, gguf_name in plan:
        shape = ckpt.shapes[hf_name]
        dtype = np.float16 if outtype == "f16" and len(shape) >= 2 else np.float32
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(gguf_name, shape, np.dtype(dtype), nbytes)
        n_params += int(np.prod(shape))
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for hf_name, _ in plan:
            data = _convert(hf_name, ckpt.load(hf_name), arch, config, outtype)
            w.write_tensor_data(_finite(hf_name, data, ckpt, outtype))
    finally:
        w.close()
    return n_params

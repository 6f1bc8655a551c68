"""Model conversions for r2r-local.

    python scripts/export.py gguf HF_FOLDER OUT.gguf [--outtype f32|f16] [--name NAME]
    python scripts/export.py quantize IN.gguf OUT.gguf TYPE      (Q8_0, Q4_K_M, Q4_0, ...)
    python scripts/export.py router IN.pt OUT.onnx [--fp16 | --int8]
    python scripts/export.py router-int8 IN.onnx OUT.onnx      (an exported router's weights -> int8)

Bad input gets one line on stderr and a non-zero exit status. Outputs are written to a temporary
file and renamed into place: an existing output is replaced only by a complete new one, and a
failure or Ctrl-C leaves it as it was. An output that is one of the inputs is refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from r2r_local.errors import R2RError


def _gguf(args: argparse.Namespace) -> str:
    from r2r_local.export.gguf import hf_to_gguf

    w = hf_to_gguf(args.folder, args.out, args.outtype, name=args.name)
    return f"wrote {w.path} ({w.size_bytes:,} bytes, {w.outtype}, {w.arch}, {w.n_tensors} tensors, {w.n_params:,} parameters)"


def _quantize(args: argparse.Namespace) -> str:
    from r2r_local.export.quantize import quantize

    quantize(args.src, args.dst, args.type, threads=args.threads)
    return f"wrote {args.dst} ({os.path.getsize(args.dst):,} bytes, {args.type.upper()})"


def _router(args: argparse.Namespace) -> str:
    from pathlib import Path

    from r2r_local.export.router import export_router

    out = Path(args.out)
    fp32_out = out.with_name(out.stem + "-fp32.onnx") if args.int8 else out
    r = export_router(args.checkpoint, fp32_out, fp16=args.fp16)
    line = (f"wrote {r.onnx_path} ({r.bytes:,} bytes, {r.n_params:,} parameters, "
            f"{'fp16' if args.fp16 else 'fp32'}) and {r.sidecar_path}; ONNX vs PyTorch max abs diff {r.max_abs_diff:.2e}")
    if r.block_layout != "reference":
        line += (f"\nnote: {args.checkpoint} has the block layout of earlier r2r-local versions; the ONNX router "
                 "is exact, but the reference code cannot load this checkpoint (retrain to get one it can)")
    if not args.int8:
        return line
    args.src, args.dst = str(fp32_out), str(out)
    return line + "\n" + _router_int8(args)


def _router_int8(args: argparse.Namespace) -> str:
    from r2r_local.export.router import quantize_router_int8

    r = quantize_router_int8(args.src, args.dst)
    return (f"wrote {r.onnx_path} ({r.bytes:,} bytes, {r.n_params:,} parameters in int8) and {r.sidecar_path}; "
            f"logit max abs diff against {args.src} on random inputs {r.max_abs_diff:.2e}")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="export.py", description="Model conversions for r2r-local.")
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gguf", help="Hugging Face checkpoint folder (Qwen2, Llama) -> GGUF")
    g.add_argument("folder", help="folder with config.json, tokenizer.json and the weights")
    g.add_argument("out", help="GGUF file to write")
    g.add_argument("--outtype", choices=("f32", "f16"), default="f16")
    g.add_argument("--name", help="general.name in the GGUF (default: the folder's name)")
    g.set_defaults(run=_gguf)
    q = sub.add_parser("quantize", help="GGUF -> quantized GGUF with llama.cpp's quantizer")
    q.add_argument("src", help="input GGUF (F32, F16 or already quantized)")
    q.add_argument("dst", help="GGUF file to write")
    q.add_argument("type", help="Q8_0, Q4_K_M, Q4_0, Q6_K, ... (llama.cpp file types)")
    q.add_argument("--threads", type=int, default=None)
    q.set_defaults(run=_quantize)
    r = sub.add_parser("router", help="router checkpoint (reference format or ours) -> ONNX + JSON sidecar")
    r.add_argument("checkpoint", help="a .pt checkpoint; read with torch.load(weights_only=True)")
    r.add_argument("out", help="ONNX file to write (the sidecar goes next to it as .json)")
    prec = r.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true", help="store the weights in float16 (inputs and output stay float32)")
    prec.add_argument("--int8", action="store_true",
                      help="also quantize the weights to int8 (written to --out; the float32 export is kept as OUT-fp32.onnx)")
    r.set_defaults(run=_router)
    i = sub.add_parser("router-int8", help="exported ONNX router -> int8 weights (same contract, sidecar copied)")
    i.add_argument("src", help="router .onnx with its .json sidecar")
    i.add_argument("dst", help="ONNX file to write (its sidecar goes next to it)")
    i.set_defaults(run=_router_int8)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # llama.cpp's own log lines (a quantizer refusing a tensor, say) stay out of the terminal:
    # the first error among them is already the reason in the one line printed below.
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    try:
        message = args.run(args)
    except R2RError as e:
        print(f"export.py {args.command}: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"export.py {args.command}: needs the pipeline extra ({e.name} is not installed): pip install 'r2r-local[pipeline]'", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"export.py {args.command}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # every writer goes through r2r_local.atomic: nothing half-written is left
        print(f"export.py {args.command}: interrupted; no output was written", file=sys.stderr)
        return 130
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())

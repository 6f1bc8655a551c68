#!/usr/bin/env python3
"""Write a shape-true GGUF: a known model's architecture, tensor shapes, vocabulary size and
metadata, with random weights (models/shapes.json lists the shapes).

    python scripts/make_shape_model.py --like r1-1.5b --quant Q4_K_M --out /tmp/r1-1.5b-q4km.gguf

Members of one family (all qwen2 shapes) share one synthetic vocabulary, so they pair.
Progress goes to stderr; the finished file's path and size to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r2r_local.errors import R2RError  # noqa: E402
from r2r_local.shapes import get_shape, known_shapes  # noqa: E402
from r2r_local.shapes.quant import QUANTS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--like", required=True, help=f"shape name: {', '.join(known_shapes())}")
    p.add_argument("--quant", required=True, help=f"one of {', '.join(QUANTS)}")
    p.add_argument("--out", required=True, help="path of the GGUF to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = p.parse_args(argv)
    try:
        if args.quant not in QUANTS:
            raise R2RError(f"unknown --quant {args.quant!r}; choose one of {', '.join(QUANTS)}")
        if args.seed < 0 or args.seed >= 2**32:
            raise R2RError(f"--seed must be in [0, 2^32), got {args.seed}")
        shape = get_shape(args.like)
        out = Path(args.out)
        if out.is_dir():
            raise R2RError(f"--out {out} is a directory; give a file path")
        if out.exists() and not args.force:
            raise R2RError(f"{out} exists; pass --force to overwrite it")
        from r2r_local.shapes.writer import write_shape_model

        result = write_shape_model(shape, args.quant, out, seed=args.seed,
                                   progress=lambda line: print(line, file=sys.stderr, flush=True))
    except R2RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the partial file was removed", file=sys.stderr)
        return 130
    print(f"{result.path}\t{result.size_bytes} bytes ({result.size_bytes / 1e9:.2f} GB), "
          f"{result.n_tensors} tensors, {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

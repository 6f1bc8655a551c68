"""Where the shipped demo pair lives: models/demo/ at the repository root.

Computed per call from this file's location (nothing at import). R2R_DEMO_DIR overrides it,
e.g. for an installed package whose data sits elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from r2r_local.errors import ModelLoadError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DemoPair:
    """Paths of the demo GGUFs and their manifest."""

    small: Path
    large: Path
    manifest: Path


def demo_dir() -> Path:
    env = os.environ.get("R2R_DEMO_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models" / "demo"


def load_manifest(folder: Path | None = None) -> dict:
    path = (folder or demo_dir()) / MANIFEST
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ModelLoadError(f"demo manifest {path}: not found (run scripts/build_demo.py)") from None
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise ModelLoadError(f"demo manifest {path}: cannot read it ({e})") from None
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"demo manifest {path}: not valid JSON ({e.msg})") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"demo manifest {path}: expected a JSON object")
    return manifest


def demo_pair(folder: Path | None = None) -> DemoPair:
    """The shipped pair; raises ModelLoadError naming what is missing."""
    folder = folder or demo_dir()
    manifest = load_manifest(folder)
    paths = {}
    for role in ("small", "large"):
        entry = manifest.get("models")
        entry = entry.get(role) if isinstance(entry, dict) else None
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise ModelLoadError(f"demo manifest {folder / MANIFEST}: no models.{role}.file (run scripts/build_demo.py)")
        path = folder / name
        if not path.is_file():
            raise ModelLoadError(f"demo {role} model {path}: not found")
        paths[role] = path
    return DemoPair(paths["small"], paths["large"], folder / MANIFEST)


ROUTER = "router.onnx"
# Used with --demo only while models/demo holds no router.onnx (e.g. between scripts/build_demo.py
# and scripts/build_demo_router.py): a baseline that needs no training.
FALLBACK_ROUTER = "entropy:0.3"


def demo_router(folder: Path | None = None) -> Path | None:
    """The demo router (ONNX, with its JSON sidecar) when one is shipped, else None."""
    path = (folder or demo_dir()) / ROUTER
    return path if path.is_file() else None

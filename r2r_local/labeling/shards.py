"""Labelled data on disk: one .npz shard per prompt plus a manifest, so a rerun resumes.

A shard holds, for every position of the large model's answer: `small_token` (the small model's
argmax, the token the router will see proposed), `large_token`, `mismatch`, `label` (1 only at
divergent mismatches), `hidden` float16 [n,d], `topk` float32 [n,100]. Embedding rows are not
stored: they are read from the small model's GGUF by token id when training.

The manifest is {"config": the labelling settings, "prompt_fingerprints": {index: fingerprint}};
the fingerprints let a rerun check that the prompts it resumes are the ones already labelled.
Everything here is written atomically (r2r_local.atomic), so a crash never damages data.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from r2r_local.atomic import replacing, write_bytes
from r2r_local.errors import ConfigError

MANIFEST = "manifest.json"
FINGERPRINTS = "prompt_fingerprints"
_SHARD = re.compile(r"shard-(\d{6})\.npz$")
FIELDS = ("small_token", "large_token", "mismatch", "label", "hidden", "topk")


def prompt_fingerprint(prompt: str, answer: str | None) -> str:
    """A short hash of one prompt and its answer (the answer matters to the `correct` verifier)."""
    return hashlib.sha256(json.dumps([prompt, answer]).encode()).hexdigest()[:16]


class ShardStore:
    """A directory of shards. `open()` checks that a rerun labels the same thing as before."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def check_output(self) -> None:
        """Refuse an output that is no directory or holds a damaged manifest (before any work)."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"label output {self.root}: exists and is not a directory")
        if self.manifest_path.exists():
            self.manifest(f"label output {self.manifest_path}", "; repair it or use another --out")

    def open(self, config: dict[str, Any], fingerprints: Sequence[str] | None = None) -> tuple[set[int], int]:
        """Create or reopen the store for `config`; returns the prompt indices already done, and how
        many of them could not be checked because an older version labelled them without recording
        fingerprints. `fingerprints` are those of every prompt in the prompts file, in order; a
        labelled prompt whose fingerprint differs (or is gone) raises `PromptChanged`."""
        self.check_output()
        self.root.mkdir(parents=True, exist_ok=True)
        old = self.manifest(f"label output {self.manifest_path}") if self.manifest_path.exists() else None
        if old is not None and old["config"] != config:
            changed = sorted(k for k in set(old["config"]) | set(config) if old["config"].get(k) != config.get(k))
            raise ConfigError(f"label output {self.root}: holds data labelled with other settings "
                              f"({', '.join(changed)}); use another --out or delete it")
        done = self.done()
        if fingerprints is None:
            if old is None:
                atomic_write(self.manifest_path, json.dumps({"config": config}, indent=2).encode())
            return done, 0
        unchecked = len(done) if old is not None and FINGERPRINTS not in old else 0
        known: dict[str, str] = (old or {}).get(FINGERPRINTS) or {}
        if not unchecked:
            for i in sorted(done):
                if i >= len(fingerprints) or known.get(str(i)) != fingerprints[i]:
                    raise PromptChanged(self.root, i, missing=i >= len(fingerprints))
        # recorded before labelling, so every shard written later has its fingerprint on disk
        doc = {"config": config, FINGERPRINTS: {str(i): f for i, f in enumerate(fingerprints)}}
        if doc != old:
            atomic_write(self.manifest_path, json.dumps(doc, indent=2).encode())
        return done, unchecked

    def done(self) -> set[int]:
        return {int(m.group(1)) for p in self.root.glob("shard-*.npz") if (m := _SHARD.search(p.name))}

    def write(self, index: int, arrays: dict[str, np.ndarray], records: list[dict[str, Any]]) -> Path:
        """Write one prompt's shard atomically (a crash never leaves half a shard)."""
        path = self.root / f"shard-{index:06d}.npz"
        try:
            with replacing(path) as tmp:  # the temp file goes on any exception, Ctrl-C included
                np.savez_compressed(tmp, **arrays)
        except OSError as e:
            raise ConfigError(f"label output {path}: cannot write it ({e.strerror or e})") from None
        if records:
            with (self.root / "mismatches.jsonl").open("a", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps({"prompt": index, **r}, ensure_ascii=False) + "\n")
        return path

    def manifest(self, what: str, hint: str = "") -> dict[str, Any]:
        """The manifest as a dict with a dict `config`; ConfigError `what: problem{hint}` otherwise."""
        try:
            doc = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{what}: is not UTF-8 text (damaged?){hint}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{what}: is not valid JSON ({e.msg} at line {e.lineno}){hint}") from None
        except OSError as e:
            raise ConfigError(f"{what}: cannot be read ({e.strerror or e}){hint}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
            raise ConfigError(f'{what}: is not an r2r label manifest (expected {{"config": {{...}}}}){hint}')
        if not isinstance(doc.get(FINGERPRINTS, {}), dict):
            raise ConfigError(f"{what}: '{FINGERPRINTS}' is not a JSON object{hint}")
        return doc

    def config(self) -> dict[str, Any]:
        """The labelling settings, checked for what training and thresholds need: `small` (the small
        model's GGUF path), `n_embd` and `topk` (positive integers)."""
        path = self.manifest_path
        if not self.root.is_dir():
            raise ConfigError(f"labelled data {self.root}: not a directory")
        if not path.exists():
            raise ConfigError(f"labelled data {self.root}: no {MANIFEST} (not an r2r label directory)")
        config = self.manifest(f"labelled data {path}")["config"]
        if not isinstance(config.get("small"), str) or not config["small"]:
            raise ConfigError(f"labelled data {path}: config has no 'small' (the small model's GGUF path)")
        for key in ("n_embd", "topk"):
            value = config.get(key, 100 if key == "topk" else None)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"labelled data {path}: config '{key}' must be a positive integer, got {value!r}")
        return config

    def shards(self, n_embd: int | None = None, topk: int | None = None,
               n_vocab: int | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Every shard in prompt order, validated (see `read_shard`)."""
        for index in sorted(self.done()):
            yield index, read_shard(self.root / f"shard-{index:06d}.npz", n_embd, topk, n_vocab)


class PromptChanged(ConfigError):
    """A prompt that is already labelled is no longer the same in the prompts file."""

    def __init__(self, root: Path, index: int, *, missing: bool) -> None:
        self.root, self.index, self.missing = root, index, missing
        what = "is gone from the prompts file" if missing else "changed since it was labelled"
        super().__init__(f"label output {root}: prompt {index + 1} {what}")


def read_shard(path: Path, n_embd: int | None = None, topk: int | None = None,
               n_vocab: int | None = None) -> dict[str, np.ndarray]:
    """One shard's arrays (FIELDS), checked: loadable without pickle, every field present, integer
    tokens (small_token in [0, n_vocab)), labels 0/1, n rows everywhere, hidden [n, n_embd] and
    topk [n, topk] finite floats. ConfigError naming the shard otherwise."""
    what = f"labelled data {path}"
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":
            raise ConfigError(f"{what}: {'an empty file' if not magic else 'not an .npz archive'} "
                              "(damaged or not an r2r shard); delete it and rerun r2r label to relabel that prompt")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in FIELDS if k not in data.files]
            if missing:
                raise ConfigError(f"{what}: shard has no {', '.join(missing)} (damaged or not an r2r shard)")
            arrays = {k: data[k] for k in FIELDS}
    except ConfigError:
        raise
    except Exception as e:  # a damaged zip fails in many ways (EOFError, BadZipFile, zlib.error, ...)
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{what}: unreadable shard ({type(e).__name__}: {first}); "
                          "delete it and rerun r2r label to relabel that prompt") from None
    _check_shard(what, arrays, n_embd, topk, n_vocab)
    return arrays


def _check_shard(what: str, a: dict[str, np.ndarray], n_embd: int | None, topk: int | None,
                 n_vocab: int | None) -> None:
    rows = {k: a[k].shape[0] if a[k].ndim else None for k in FIELDS}
    if len(set(rows.values())) != 1 or None in rows.values():
        raise ConfigError(f"{what}: its arrays disagree on the number of positions "
                          f"({', '.join(f'{k} {n}' for k, n in rows.items())})")
    n = rows["label"]
    for k in ("small_token", "large_token", "mismatch", "label"):
        if a[k].ndim != 1:
            raise ConfigError(f"{what}: '{k}' has shape {a[k].shape}, expected ({n},)")
        if a[k].dtype.kind not in "iub":
            raise ConfigError(f"{what}: '{k}' has dtype {a[k].dtype}, expected integers")
    for k, width in (("hidden", n_embd), ("topk", topk)):
        if a[k].ndim != 2 or (width is not None and a[k].shape[1] != width):
            raise ConfigError(f"{what}: '{k}' has shape {a[k].shape}, expected ({n}, {width or 'd'})")
        if a[k].dtype.kind != "f":
            raise ConfigError(f"{what}: '{k}' has dtype {a[k].dtype}, expected floats")
        if not np.isfinite(a[k]).all():
            raise ConfigError(f"{what}: '{k}' holds NaN or infinite values (damaged data)")
    if not np.isin(a["label"], (0, 1)).all():
        raise ConfigError(f"{what}: 'label' holds values other than 0 and 1")
    tokens = a["small_token"]
    if n and (tokens.min() < 0 or (n_vocab is not None and tokens.max() >= n_vocab)):
        bad = int(tokens.min()) if tokens.min() < 0 else int(tokens.max())
        raise ConfigError(f"{what}: 'small_token' holds token {bad}, outside the small model's vocabulary "
                          f"(0..{n_vocab - 1 if n_vocab is not None else '?'})")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step (r2r_local.atomic); an OSError becomes a ConfigError."""
    try:
        write_bytes(path, data)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write it ({e.strerror or e}); the old file is unchanged") from None

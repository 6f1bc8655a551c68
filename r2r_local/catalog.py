"""Known model pairs (models/known_models.toml), downloads with sha256 checks, local registration.

Downloads go through huggingface_hub (the optional extra `download`, imported only when a
download starts) into `<data dir>/models/<owner>--<repo>/<file>`. Every file is hashed after
download; a published hash must match, an unpublished one is recorded on first download
(`checksums.json`) and later downloads must match it. A verified file gets a `.sha256` stamp
(hash, size, mtime) so it is not hashed again while it is unchanged.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from r2r_local.errors import ConfigError, ModelLoadError, R2RError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class DownloadError(R2RError):
    title = "Download failed"


class ChecksumError(R2RError):
    title = "Checksum mismatch"


@dataclass(frozen=True)
class KnownFile:
    key: str
    kind: str  # "gguf" | "router-checkpoint"
    repo: str
    file: str
    revision: str
    size: int  # exact bytes, 0 when unpublished
    approx_gb: float
    sha256: str  # "" when unpublished
    source: str
    shape: str = ""  # the model's entry in models/shapes.json ("" = not recorded)
    quant: str = ""  # its llama.cpp quantization mix (F16, Q8_0, Q4_K_M; "" = not recorded)


@dataclass(frozen=True)
class KnownPair:
    name: str
    description: str
    small: KnownFile
    large: KnownFile
    router: KnownFile | None


def known_models_path() -> Path:
    """models/known_models.toml of this checkout (R2R_KNOWN_MODELS overrides)."""
    env = os.environ.get("R2R_KNOWN_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models" / "known_models.toml"


def load_catalog(path: Path | None = None) -> dict[str, KnownPair]:
    """The known pairs; any damage in the file (a wrong type, a missing key, a file name that
    would leave the models folder, a malformed sha256, no pairs) is a ConfigError naming it."""
    import tomllib

    path = path or known_models_path()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"known models file {path}: {e}") from None
    where = f"known models file {path}"
    files = {key: _known_file(key, f, f"{where}: files.{key}") for key, f in _table(doc, "files", where).items()}
    pairs = {name: _known_pair(name, p, files, f"{where}: pairs.{name}")
             for name, p in _table(doc, "pairs", where).items()}
    if not pairs:
        raise ConfigError(f"{where}: has no [pairs.NAME] tables")
    return pairs


def _table(doc: object, key: str, where: str) -> dict:
    value = doc.get(key, {}) if isinstance(doc, dict) else None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table of tables")
    return value


def _field(table: dict, key: str, kind: type | tuple[type, ...], where: str, default: object = None) -> object:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: the key '{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} has the wrong type ({json.dumps(value, default=str)})")
    return value


def _known_file(key: str, f: object, where: str) -> KnownFile:
    if not isinstance(f, dict):
        raise ConfigError(f"{where}: must be a table")
    kind, repo, name, revision = (_field(f, k, str, where) for k in ("kind", "repo", "file", "revision"))
    size, approx = _field(f, "size", int, where, 0), _field(f, "approx_gb", (int, float), where, 0.0)
    sha, source = _field(f, "sha256", str, where, ""), _field(f, "source", str, where, "")
    shape, quant = _field(f, "shape", str, where, ""), _field(f, "quant", str, where, "")
    if kind not in ("gguf", "router-checkpoint"):
        raise ConfigError(f"{where}: kind must be 'gguf' or 'router-checkpoint', got '{kind}'")
    parts = repo.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ConfigError(f"{where}: repo must be 'owner/name', got '{repo}'")
    file_parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ":" in name or any(p in ("", ".", "..") for p in file_parts):
        raise ConfigError(f"{where}: file must be a relative path inside the repository, got '{name}'")
    if not revision.strip():
        raise ConfigError(f"{where}: revision is empty")
    if size < 0 or approx < 0 or approx != approx:
        raise ConfigError(f"{where}: size and approx_gb must be >= 0")
    if sha and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ConfigError(f"{where}: sha256 must be 64 lowercase hex digits (or empty), got '{sha}'")
    if bool(shape) != bool(quant) or quant not in ("", "F16", "Q8_0", "Q4_K_M"):
        raise ConfigError(f"{where}: shape and quant go together, quant one of F16, Q8_0, Q4_K_M "
                          f"(got shape '{shape}', quant '{quant}')")
    return KnownFile(key, kind, repo, name, revision, size, float(approx), sha, source, shape, quant)


def _known_pair(name: str, p: object, files: dict[str, KnownFile], where: str) -> KnownPair:
    if not isinstance(p, dict):
        raise ConfigError(f"{where}: must be a table")

    def file(role: str, kind: str, required: bool = True) -> KnownFile | None:
        key = p.get(role) or None
        if key is None and not required:
            return None
        if key is None:
            raise ConfigError(f"{where}: the key '{role}' is missing")
        if not isinstance(key, str) or key not in files:
            raise ConfigError(f"{where}: {role} names an unknown file {json.dumps(key, default=str)}")
        if files[key].kind != kind:
            raise ConfigError(f"{where}: {role} names files.{key}, of kind '{files[key].kind}', not '{kind}'")
        return files[key]

    description = _field(p, "description", str, where, "")
    return KnownPair(name, description, file("small", "gguf"), file("large", "gguf"),  # type: ignore[arg-type]
                     file("router", "router-checkpoint", required=False))


def find_pair(name: str, catalog: dict[str, KnownPair] | None = None) -> KnownPair:
    catalog = catalog if catalog is not None else load_catalog()
    if name not in catalog:
        raise ConfigError(f"unknown model pair '{name}' (known: {', '.join(sorted(catalog))}; see r2r models list)")
    return catalog[name]


def models_dir() -> Path:
    from r2r_local.config import data_dir

    return data_dir() / "models"


def local_path(f: KnownFile) -> Path:
    return models_dir() / f.repo.replace("/", "--") / f.file


# --- hashing and the record of first-download hashes -------------------------------------------

def sha256_file(path: Path, progress: Progress | None = None, chunk: int = 16 << 20) -> str:
    h = hashlib.sha256()
    total, done, shown = path.stat().st_size, 0, -1
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            done += len(block)
            pct = 100 * done // max(total, 1)
            if progress and pct // 10 != shown:
                shown = pct // 10
                progress(f"sha256 {path.name}: {pct}%")
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamped_hash(path: Path) -> str | None:
    """The hash recorded for `path` when it was last verified, if the file is unchanged since."""
    try:
        digest, size, mtime = _stamp_path(path).read_text().split()
        st = path.stat()
    except (OSError, ValueError):
        return None
    return digest if int(size) == st.st_size and int(mtime) == st.st_mtime_ns else None


def _stamp(path: Path, digest: str) -> None:
    st = path.stat()
    _stamp_path(path).write_text(f"{digest} {st.st_size} {st.st_mtime_ns}\n")


def _checksums_path() -> Path:
    return models_dir() / "checksums.json"


def recorded_checksums() -> dict[str, str]:
    try:
        data = json.loads(_checksums_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(f: KnownFile, digest: str) -> None:
    data = recorded_checksums()
    data[f"{f.repo}/{f.file}@{f.revision}"] = digest
    _checksums_path().parent.mkdir(parents=True, exist_ok=True)
    _checksums_path().write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _quarantine(path: Path) -> Path:
    bad = path.with_name(path.name + ".bad")
    os.replace(path, bad)
    _stamp_path(path).unlink(missing_ok=True)
    return bad


def verify(f: KnownFile, path: Path, progress: Progress | None = None) -> str:
    """Check `path` against the published or recorded size and hash; returns 'verified' or
    'recorded' (no hash known before: this one is now the reference).

    A mismatching file is renamed to `<name>.bad` (never used, never silently replaced) and
    ChecksumError raised.
    """
    size = path.stat().st_size
    if f.size and size != f.size:
        bad = _quarantine(path)
        raise ChecksumError(f"{f.file}: {size} bytes, expected {f.size}; the file was moved to {bad}")
    digest = _stamped_hash(path) or sha256_file(path, progress)
    expected = f.sha256 or recorded_checksums().get(f"{f.repo}/{f.file}@{f.revision}", "")
    if expected and digest != expected:
        bad = _quarantine(path)
        raise ChecksumError(f"{f.file}: sha256 {digest[:16]}... does not match the expected "
                            f"{expected[:16]}...; the file was moved to {bad}")
    _stamp(path, digest)
    if expected:
        return "verified"
    _record(f, digest)
    return "recorded"


# --- downloading -------------------------------------------------------------------------------

def _hub_download() -> Callable[..., str]:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DownloadError("downloading needs huggingface_hub: pip install 'r2r-local[download]'") from None
    return hf_hub_download


def download_problem() -> str | None:
    """Why a download would fail before it starts (huggingface_hub missing), or None."""
    try:
        _hub_download()
    except DownloadError as e:
        return str(e)
    return None


def fetch(f: KnownFile, progress: Progress | None = None) -> tuple[Path, str]:
    """Download `f` unless a verified copy is there; returns (path, 'cached'|'verified'|'recorded')."""
    path = local_path(f)
    if path.is_file() and _stamped_hash(path):
        return path, "cached"
    if not path.is_file():
        download = _hub_download()
        # The repository's folder: the hub recreates the file's own subfolders under it (a router
        # of the reference's collection lives in a folder named after its pair).
        repo_dir = path.parents[len(Path(f.file).parts) - 1]
        path.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            size = f"{f.size / 1e9:.2f} GB" if f.size else f"~{f.approx_gb} GB" if f.approx_gb else "size unknown"
            progress(f"downloading {f.repo}/{f.file} ({size}) into {repo_dir}")
        try:
            got = Path(download(f.repo, f.file, revision=f.revision, local_dir=repo_dir))
        except Exception as e:  # the hub raises many types (HTTP, offline, auth); one line each
            raise DownloadError(f"download of {f.repo}/{f.file} failed: {type(e).__name__}: {e}") from None
        if got.resolve() != path.resolve():
            os.replace(got, path)
    return path, verify(f, path, progress)


def convert_router(checkpoint: Path, small: Path | None = None, progress: Progress | None = None) -> Path | None:
    """The published router checkpoint -> ONNX next to it, with r2r_local.export.router (issue 4),
    bound to `small`'s identity (n_embd, vocabulary hash) when given. Returns None, after saying
    why in one line, when the converter or its `pipeline` extra (torch) is not installed."""
    out = checkpoint.with_suffix(".onnx")
    if out.is_file() and out.with_suffix(".json").is_file():
        return out
    try:
        from r2r_local.export.router import export_router

        kwargs = {}
        if small is not None and "small_model" in inspect.signature(export_router).parameters:
            kwargs["small_model"] = small_identity(small)
        export_router(checkpoint, out, **kwargs)
    except ImportError as e:
        if progress:
            progress(f"router: cannot convert {checkpoint.name} to ONNX here ({e}); it needs "
                     f"r2r_local.export.router and the 'pipeline' extra (pip install 'r2r-local[pipeline]')")
        return None
    return out


def int8_router(onnx: Path, progress: Progress | None = None) -> Path:
    """The converted router with int8 weights beside it (made once; scripts/export.py router-int8)."""
    out = onnx.with_name(onnx.stem + "-int8.onnx")
    if not (out.is_file() and out.with_suffix(".json").is_file()):
        from r2r_local.export.router import quantize_router_int8

        r = quantize_router_int8(onnx, out)
        if progress:
            progress(f"router: {out} (int8 weights; logit max abs diff {r.max_abs_diff:.2e} on random inputs)")
    return out


def small_identity(small: Path) -> dict[str, object]:
    """What a router sidecar records about the small model it reads (docs/design.md, "The local system")."""
    from r2r_local.backends.gguf_file import read_header
    from r2r_local.vocab import vocab_hash

    return {"n_embd": read_header(small).arch_int("embedding_length"), "vocab_hash": vocab_hash(vocab_entries(small))}


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- local files -------------------------------------------------------------------------------

def vocab_entries(path: str | Path):
    """The vocabulary as VocabEntry rows from the GGUF header (padding = token type UNUSED)."""
    from r2r_local.backends import VocabEntry
    from r2r_local.backends.gguf_file import read_header

    h = read_header(path, arrays=("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"))
    tokens = h.arrays.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise ModelLoadError(f"model {path}: its GGUF header has no tokenizer.ggml.tokens")
    types = h.arrays.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    return [VocabEntry(t, ty == 5) for t, ty in zip(tokens, types)]


def check_pairing(small: str | Path, large: str | Path) -> int:
    """Header-level vocabulary check (the tokenizer token lists, padding rows tolerated); returns
    the shared vocabulary size or raises VocabMismatchError naming both files."""
    from r2r_local.vocab import shared_vocab_size

    return shared_vocab_size(vocab_entries(small), vocab_entries(large), str(small), str(large))


def check_router_for(spec: str, small: str | Path) -> None:
    """Build the router `spec` for the small model `small` (its hidden size and vocabulary), so a
    router that cannot serve it fails now, not at chat time; raises R2RError with one line."""
    from r2r_local.router import parse_router

    ident = small_identity(Path(small))
    parse_router(spec, n_embd=ident["n_embd"], vocab_hash=ident["vocab_hash"])  # type: ignore[arg-type]

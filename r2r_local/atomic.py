"""Replacing files so that a reader never sees half of one (stdlib only).

Every file r2r-local writes over (the config file, label shards and manifests, router checkpoints,
ONNX routers and their sidecars) goes through here: the new content is written to a uniquely named
temporary file in the target's directory, flushed to disk, then renamed over the target with
`os.replace` (atomic on POSIX and Windows within one file system), and the directory is synced
so the rename itself survives a power cut. Whatever stops the write (an OSError, Ctrl-C, a
failing writer) removes the temporary file and leaves the old target byte for byte as it was.

OSError is raised as it is: each caller turns it into its own error naming the file.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` (see `replacing` for `mode`)."""
    with replacing(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, *, mode: int | None = None) -> None:
    """Replace `path` with `text` in UTF-8, newlines written as given."""
    write_bytes(path, text.encode("utf-8"), mode=mode)


@contextmanager
def replacing(path: str | Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix, so np.savez and exporters keep the name);
    whatever the block writes there replaces `path` when the block ends without an exception.

    The new file gets `mode` if given, else the mode of the file it replaces, else the default
    that the umask gives a new file. The directory is made if missing."""
    with replacing_together(path, mode=mode) as (tmp,):
        yield tmp


@contextmanager
def replacing_together(*paths: str | Path, mode: int | None = None) -> Iterator[tuple[Path, ...]]:
    """`replacing` for files that belong together (a model and its sidecar): yields one temporary
    path per target, and when the block ends they replace their targets in the order given.

    If a later rename fails (or is interrupted), the targets already replaced get their old
    content back (or are removed if they did not exist), so an exception never leaves a mix of
    old and new files. A kill between two renames can: order `paths` so that the first one
    alone is the one whose mismatch a reader detects or tolerates."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            temps.append(_new_temp(target))
        yield tuple(temps)
        for tmp, target in zip(temps, targets):
            _finish(tmp, target, mode)
        _replace_all(temps, targets)
    finally:
        for tmp in temps:
            _unlink(tmp)


def _new_temp(target: Path) -> Path:
    """An empty file of a name nobody else uses, beside `target`, created with the umask's mode."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            return tmp
        except FileExistsError:
            continue


def _finish(tmp: Path, target: Path, mode: int | None) -> None:
    """Flush what the writer left in `tmp` to disk and give it its final mode."""
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            pass
    if mode is not None:
        os.chmod(tmp, mode)
    fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_BINARY", 0))  # Windows syncs only a writable handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_all(temps: list[Path], targets: list[Path]) -> None:
    """Rename each temp over its target; on failure, put the targets already renamed back."""
    olds: list[Path | None] = []  # the previous content of each target but the last
    done = 0
    try:
        for target in targets[:-1]:
            olds.append(_keep_old(target))
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
            done += 1
    except BaseException:
        for target, old in zip(targets[:done], olds):
            try:
                os.replace(old, target) if old is not None else target.unlink(missing_ok=True)
            except OSError:
                pass  # the first error is the one to report
        raise
    finally:
        for old in olds:
            if old is not None:
                _unlink(old)
    for directory in dict.fromkeys(t.parent for t in targets):
        _sync_dir(directory)


def _keep_old(target: Path) -> Path | None:
    """A second name for `target`'s current content (a hard link, else a copy); None if there is none."""
    if not target.exists():
        return None
    old = _new_temp(target)
    os.unlink(old)
    try:
        os.link(target, old)
    except OSError:
        shutil.copy2(target, old)
    return old


def _sync_dir(directory: Path) -> None:
    """Best effort: make a rename in `directory` durable (not possible on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass

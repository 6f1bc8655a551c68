"""`r2r models pull NAME` from inside r2r-chat: a child process, its output lines, its progress.

The child is the same command a user would type (download, sha256 checks, router conversion,
config file), so the app adds no second way of setting a pair up. Nothing of it may reach the
terminal behind Textual's back: its stdout and stderr come back through a pipe, line by line,
and the hub's own progress bars are turned off. Progress is read from the disk instead: the
bytes of the pair's files already there, plus the partial files the hub writes while
downloading (`<repo dir>/.cache/huggingface/download/**/*.incomplete`), against the pair's sizes.
Partial files that were there before the pull are not counted; huggingface_hub (2.x) does not
resume them, so the ones a stopped pull leaves behind are removed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

from r2r_local.catalog import KnownFile, KnownPair, find_pair, local_path

STOP_WAIT_S = 5.0  # after SIGTERM, this long before SIGKILL


class Pull:
    """One running pull. `lines()` yields its output until it ends; `wait()` is its exit code
    (negative: ended by a signal, as after `stop()`); `progress()` is (bytes, expected total)."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.pair: KnownPair | None = _known(name)
        self._before = set(partial_files(self.pair)) if self.pair is not None else set()
        env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace", env=env,
                                     start_new_session=True)
        self.stopped = False

    def lines(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                yield line.rstrip()

    def wait(self) -> int:
        return self.proc.wait()

    def stop(self) -> None:
        """End the child (SIGTERM, then SIGKILL) and remove the partial files it left."""
        if self.proc.poll() is not None:
            return
        self.stopped = True
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for path in (set(partial_files(self.pair)) - self._before) if self.pair is not None else ():
            path.unlink(missing_ok=True)

    def progress(self) -> tuple[int, int]:
        """(bytes on disk, bytes expected); (0, 0) for a pair the catalog does not know."""
        if self.pair is None:
            return 0, 0
        done, expected = pair_bytes(self.pair)
        return done - sum(_size(p) for p in self._before), expected


def _known(name: str) -> KnownPair | None:
    from r2r_local.errors import R2RError

    try:
        return find_pair(name)
    except R2RError:
        return None  # the child says why in its own output


def _files(pair: KnownPair) -> list[KnownFile]:
    return [f for f in (pair.small, pair.large, pair.router) if f is not None]


def partial_files(pair: KnownPair) -> list[Path]:
    """The partial downloads under the pair's repository folders (where the hub keeps them)."""
    caches = {local_path(f).parents[len(Path(f.file).parts) - 1] / ".cache" / "huggingface" / "download"
              for f in _files(pair)}
    return [p for cache in sorted(caches) for p in cache.rglob("*.incomplete")]


def pair_bytes(pair: KnownPair) -> tuple[int, int]:
    """Bytes of the pair's files on disk (whole files, and partial downloads under their repository
    folders) and the bytes expected (published sizes, else the rounded ones; unknown counts 0)."""
    files = _files(pair)
    expected = sum(f.size or int(f.approx_gb * 1e9) for f in files)
    done = sum(_size(local_path(f)) for f in files) + sum(_size(p) for p in partial_files(pair))
    return done, expected


def _size(path: Path) -> int:
    """A file's bytes; 0 when it is not there (a partial file is renamed while it is read)."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0

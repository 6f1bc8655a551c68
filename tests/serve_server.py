"""Running the real `r2r serve` in a subprocess on a free loopback port, for the server tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
# One llama.cpp thread per model: the server's worker, its event loop and the test's clients share
# the cores, and spinning llama.cpp threads starve them (measured here: the server tests take 40 s
# with one thread and 4.5 minutes with two on a busy 2-core machine).
THREADS = 1
LISTENING = re.compile(r"listening on (http://\S+)/v1")


class Server:
    """`r2r serve ARGS --port 0` until stopped; `url` is its base (http://127.0.0.1:PORT)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, home: Path | None = None) -> None:
        environ = {**os.environ, **(env or {})}
        if home is not None:  # an empty config and data folder of the test's own
            environ["R2R_CONFIG_DIR"], environ["R2R_DATA_DIR"] = str(home / "config"), str(home / "data")
        cmd = [sys.executable, "-m", "r2r_local.cli", "serve", *args, "--port", "0", "--threads", str(THREADS)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = self._wait_for_start()
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _wait_for_start(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = LISTENING.search(line)
            if found:
                return found.group(1)
        self.proc.wait(30)
        raise RuntimeError(f"r2r serve exited with {self.proc.returncode}: {''.join(self.lines)[-2000:]}")

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    @property
    def log(self) -> str:
        return "".join(self.lines)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent), read with prometheus_client's parser."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def sse_events(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event."""
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: "):]

"""r2r-chat in a real terminal of 80x24 (tmux): the status line shows the router, its threshold and
the state, the key line ends with ^q quit, F9 shows the new threshold, an answer's figures fit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """One tmux server of its own (the test's environment, a private socket), one 80x24 window."""

    def __init__(self, socket: str, command: list[str]) -> None:
        self.base = ["tmux", "-L", socket]
        line = " ".join(f"'{part}'" for part in command)
        subprocess.run(self.base + ["-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-c", str(ROOT),
                                    f"{line}; sleep 30"], check=True, env=os.environ.copy())

    def lines(self) -> list[str]:
        out = subprocess.run(self.base + ["capture-pane", "-p"], capture_output=True, text=True, check=True).stdout
        return out.split("\n")[:24]

    def keys(self, *keys: str) -> None:
        subprocess.run(self.base + ["send-keys", *keys], check=True)

    def wait(self, condition, timeout: float = 120.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if condition(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError("timed out; the screen:\n" + "\n".join(lines))
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(self.base + ["kill-server"], capture_output=True)


def test_status_and_key_lines_in_an_80x24_terminal(tmp_path):
    term = Terminal(f"r2r-test-{os.getpid()}", [sys.executable, "-m", "r2r_tui.cli", "--demo", "--threads", "1",
                                                "--router", "entropy:1.5", "--history", str(tmp_path / "h.db")])
    try:
        ready = term.wait(lambda s: s[22].rstrip().endswith("│ ready"))
        term.keys("F9")
        raised = term.wait(lambda s: "thr 1.75" in s[22])
        term.keys("Q: 347+589=", "Enter")
        answered = term.wait(lambda s: "% answer" in s[22] and s[22].rstrip().endswith("│ ready"))
    finally:
        term.close()
    status, keys = ready[22].strip(), ready[23].strip()
    assert status == "large - answer · - session │ - tok/s │ - active │ entropy:1.5 thr 1.50 │ ready"
    assert keys == "esc stop ^r regen ^n new ^o history ^s system f2/f3/f4 mode f8/f9 thr ^q quit"
    assert raised[22].rstrip().endswith("entropy:1.75 thr 1.75 │ ready")
    line = answered[22].strip()
    assert line.startswith("large ") and "tok/s" in line and "0.000" not in line and "K active" in line

"""The first run in a real terminal (tmux): the r2r-chat console script on fresh config and data
folders opens on the welcome view; one key starts the demo pair, and 347+589 is answered 936."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from settings import THREADS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Tmux:
    """One detached tmux session on a server of its own (its own socket), running `command`."""

    def __init__(self, command: str, width: int = 100, height: int = 30) -> None:
        self.socket = f"r2r-test-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", "chat", "-x", str(width), "-y", str(height), "-c", str(REPO), command)
        self.socket_path = self._tmux("display-message", "-p", "#{socket_path}").strip()

    def _tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True,
                              text=True, timeout=30)
        return proc.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "chat")

    def wait_for(self, *texts: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts} not on the screen after {seconds}s:\n{self.screen()}")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", "chat", *(["-l"] if literal else []), *keys)

    def running(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", "chat"],
                              capture_output=True).returncode == 0

    def close(self) -> None:
        """End the server; its socket file goes too (tmux leaves it behind)."""
        self._tmux("kill-server")
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


def test_a_fresh_install_opens_on_the_welcome_view_and_one_key_starts_the_demo(tmp_path):
    env = {"R2R_CONFIG_DIR": tmp_path / "config", "R2R_DATA_DIR": tmp_path / "data", "TERM": "xterm-256color"}
    command = " ".join(["env", *(f"{k}={shlex.quote(str(v))}" for k, v in env.items()),
                        shlex.quote(sys.executable), "-m", "r2r_tui.cli", "--threads", str(THREADS)])
    term = Tmux(command)
    try:
        welcome = term.wait_for("Welcome to r2r-chat", "Start the built-in demo pair now", "r2r models pull r1-q4")
        assert "Model failed to load" not in welcome and "d demo" in welcome
        term.keys("d")
        ready = term.wait_for("built-in demo pair (addition)", "│ ready")
        assert "Welcome to r2r-chat" not in ready
        term.keys("347+589", literal=True)
        term.keys("Enter")
        answered = term.wait_for("So 347+589 = 936.", "│ ready")
        assert "Traceback" not in answered
        term.keys("C-q")
        deadline = time.monotonic() + 20
        while term.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not term.running()
    finally:
        term.close()
    assert not (tmp_path / "config" / "config.toml").exists()  # the demo sets nothing up

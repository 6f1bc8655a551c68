"""The r2r-chat command line, up to the point where the app would start."""

import subprocess
import sys

import pytest

from r2r_local.defaults import smollm2_path
from r2r_local.errors import ConfigError
from r2r_tui.cli import parse_args

DEMO_ONLY = ("--demo uses the built-in pair: leave out --small and --large "
             "(--large http://HOST:PORT, a server of the demo's large model, is allowed)")


def test_flags_become_options_and_app_settings(tmp_path):
    options, kw = parse_args(["--small", "s.gguf", "--router", "entropy:2", "--threads", "3", "--max-tokens", "64",
                              "--temperature", "0.7", "--seed", "5", "--system", "Be brief.",
                              "--history", str(tmp_path / "h.db")])
    assert (options.small, options.large, options.router, options.threads, options.demo) == ("s.gguf", None, "entropy:2", 3, False)
    assert (kw["settings"].max_tokens, kw["sampling"].temperature, kw["sampling"].seed) == (64, 0.7, 5)
    assert (kw["system"], kw["history"]) == ("Be brief.", tmp_path / "h.db")


def test_a_bad_value_is_an_error_before_the_app_starts():
    with pytest.raises(ConfigError, match="max-tokens"):
        parse_args(["--max-tokens", "0"])


def test_console_entry_point_reports_bad_values_on_one_line():
    code = "import sys; from r2r_tui.cli import main; sys.exit(main(['--temperature', '-1']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["r2r-chat: error: temperature must be >= 0, got -1.0"]


@pytest.mark.parametrize("argv, message", [
    (["--demo", "--small", "s.gguf"], DEMO_ONLY),
    (["--demo", "--large", "l.gguf"], DEMO_ONLY),
    (["--demo", "--n-ctx", "0"], "n-ctx must be between 256 and 1048576, got 0 (llama.cpp's smallest context is 256 tokens)"),
    (["--n-ctx", "8"], "n-ctx must be between 256 and 1048576, got 8 (llama.cpp's smallest context is 256 tokens)"),
    (["--n-ctx", "99999999999"], "n-ctx must be between 256 and 1048576, got 99999999999 (llama.cpp's smallest context is 256 tokens)"),
    (["--n-ctx", "1000"], "n-ctx must be a multiple of 256 (llama.cpp rounds other lengths up), got 1000: use 768 or 1024"),
    (["--demo", "--small-gpu-layers", "-5"], "--small-gpu-layers must be >= -1 (-1 = all), got -5"),
    (["--large-gpu-layers", "-2"], "--large-gpu-layers must be >= -1 (-1 = all), got -2"),
    (["--demo", "--threads", "0"], "threads must be between 1 and 1024, got 0"),
    (["--threads", "100000"], "threads must be between 1 and 1024, got 100000"),
    (["--config", "/nonexistent.toml"], "config file /nonexistent.toml does not exist"),
    (["--demo", "--spec", "0"], "--spec K needs 1 <= K <= 64, got 0"),
    (["--spec", "65"], "--spec K needs 1 <= K <= 64, got 65"),
    (["--spec", "4", "--verify"], "--spec and --verify each pick the mode to start in: give one of them"),
])
def test_flags_that_would_be_ignored_or_are_invalid_are_refused(argv, message):
    with pytest.raises(ConfigError) as err:
        parse_args(argv)
    assert str(err.value) == message


def test_a_missing_config_file_ends_the_console_script_with_one_line():
    code = "import sys; from r2r_tui.cli import main; sys.exit(main(['--config', '/nonexistent.toml']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["r2r-chat: error: config file /nonexistent.toml does not exist"]


def test_valid_model_flags_pass(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[models]\n")
    options, _ = parse_args(["--demo", "--n-ctx", "256", "--small-gpu-layers", "-1", "--threads", "1",
                             "--config", str(config)])
    assert (options.n_ctx, options.small_gpu_layers, options.config_file) == (256, -1, config)


QUIT_WHILE_LOADING = """
import sys, time
import r2r_tui.cli as cli
import r2r_tui.loader as loader

def slow_loader(options):
    def load(progress):
        progress("loading the large model (a very long load)")
        time.sleep(60)  # one llama.cpp call: it cannot be interrupted
    return load

loader.core_loader = slow_loader
sys.exit(cli.main(["--demo", "--history", sys.argv[1]]))
"""


class Terminal:
    """The r2r-chat console script in a real terminal (a pty): read its screen, type, wait for it."""

    def __init__(self, argv: list[str], tmp_path):  # type: ignore[no-untyped-def]
        import os
        import pty

        env = dict(os.environ, R2R_CONFIG_DIR=str(tmp_path / "config"), R2R_DATA_DIR=str(tmp_path / "data"),
                   TERM="xterm-256color", COLUMNS="100", LINES="30")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execve(sys.executable, [sys.executable, *argv], env)
        self.output = b""

    def read_for(self, seconds: float) -> None:
        import os
        import select
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    return

    def wait_for(self, text: bytes, seconds: float) -> None:
        import time

        deadline = time.monotonic() + seconds
        while text not in self.output and time.monotonic() < deadline:
            self.read_for(0.2)
        assert text in self.output, self.output[-2000:]

    def write(self, data: bytes) -> None:
        import os

        os.write(self.fd, data)

    def exit_after_quit(self, seconds: float) -> tuple[int | None, float]:
        """ctrl+q, then (exit code or None, seconds until it exited); the process is gone after."""
        import os
        import time

        self.write(b"\x11")
        quit_at, status = time.monotonic(), None
        try:
            while status is None and time.monotonic() - quit_at < seconds:
                self.read_for(0.1)
                done, code = os.waitpid(self.pid, os.WNOHANG)
                status = code if done else None
            return (os.waitstatus_to_exitcode(status) if status is not None else None), time.monotonic() - quit_at
        finally:
            if status is None:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            os.close(self.fd)


def test_quitting_while_models_load_ends_the_process_at_once(tmp_path):
    """ctrl+q during a load that takes a minute."""
    term = Terminal(["-c", QUIT_WHILE_LOADING, str(tmp_path / "h.db")], tmp_path)
    term.wait_for(b"very long load", 30)
    code, exited_after = term.exit_after_quit(15)
    assert code == 0 and exited_after < 10, exited_after
    assert b"Traceback" not in term.output


def test_quitting_while_a_long_prompt_is_read_stops_it_and_stores_the_answer_as_stopped(tmp_path):
    """ctrl+q while SmolLM2 reads a prompt of ~8,000 tokens (several seconds here): the read stops
    between chunks, the process exits cleanly and the answer is stored as stopped. (Before, the app
    froze for 30 s, then freed the models under the worker and died of SIGSEGV.)"""
    import sqlite3

    history = tmp_path / "h.db"
    smollm2 = str(smollm2_path())
    term = Terminal(["-m", "r2r_tui.cli", "--small", smollm2, "--large", smollm2, "--n-ctx", "8192",
                     "--threads", "2", "--router", "slm", "--history", str(history)], tmp_path)
    term.wait_for(b"ready", 60)
    term.write(b"\x1b[200~" + b"lorem ipsum dolor " * 1150 + b"\x1b[201~")  # a bracketed paste
    term.read_for(1.0)
    term.write(b"\r")
    term.read_for(3.0)
    code, exited_after = term.exit_after_quit(25)
    assert code == 0 and exited_after < 15, exited_after
    assert b"Traceback" not in term.output
    rows = sqlite3.connect(history).execute("SELECT role, complete, stop_reason FROM messages ORDER BY id").fetchall()
    assert rows == [("user", 1, None), ("assistant", 1, "cancelled")]

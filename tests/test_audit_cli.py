"""`r2r generate --audit`: plain routing that counts the divergences the router let through, with
the demo pair (its router misses some on "99999+1"); `--verify` corrects them."""

from __future__ import annotations

import json
import subprocess
import sys

from settings import THREADS


def generate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", "generate", "--demo", "--prompt", "99999+1",
                           "--threads", str(THREADS), *args], capture_output=True, text=True, timeout=300)


def test_audit_counts_without_changing_the_output():
    plain = json.loads(generate("--json").stdout)
    audited = json.loads(generate("--json", "--audit").stdout)
    assert [t["id"] for t in audited["tokens"]] == [t["id"] for t in plain["tokens"]]
    assert plain["stats"]["missed_divergences"] == 0  # not counted without --audit
    assert audited["stats"]["missed_divergences"] > 0 and audited["config"]["policy"] == "r2r+audit"


def test_verify_corrects_what_audit_counts_and_the_summary_says_so():
    proc = generate("--verify")
    assert proc.returncode == 0, proc.stderr
    assert "missed divergences" in proc.stderr and "rewinds" in proc.stderr
    verified = json.loads(generate("--json", "--verify").stdout)
    plain = json.loads(generate("--json").stdout)
    assert verified["stats"]["missed_divergences"] > 0 and verified["text"] != plain["text"]


def test_audit_with_ahead_is_refused_in_one_line():
    proc = generate("--audit", "--ahead")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["r2r: error: --audit cannot be combined with --overlap, --ahead or "
                                                "--verify (verify counts them itself)"]

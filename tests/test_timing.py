"""Timing helpers of scripts/decode_time.py: catch-up calls leave the cache where they found it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from settings import THREADS

from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec
from r2r_local.demo import demo_pair
from r2r_local.shapes.timing import PROMPT, time_catch_up

ROOT = Path(__file__).resolve().parents[1]


def test_catch_up_times_every_size_from_the_same_position():
    large = demo_pair().large
    with LlamaCppBackend(ModelSpec(str(large), n_ctx=256, threads=THREADS)) as be:
        times = time_catch_up(be, [1, 3, 8], 4, warmup=1)
        assert sorted(times) == [1, 3, 8]
        assert all(len(t.seconds) == 4 and t.median > 0 for t in times.values())
        prompt = be.tokenize(PROMPT, add_special=True, parse_special=False)
        assert list(be.slot.tokens) == prompt  # every batch was dropped again: only the prompt is cached


def test_decode_time_script_reports_catch_up(tmp_path):
    large = demo_pair().large
    out = tmp_path / "t.json"
    r = subprocess.run([sys.executable, "scripts/decode_time.py", str(large), "--steps", "3", "--threads",
                        str(THREADS), "--catch-up", "1,4", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "k=1 " in r.stdout and "k=4 " in r.stdout
    row = json.loads(out.read_text())["results"][0]
    assert set(row["catch_up"]) == {"1", "4"} and row["catch_up"]["4"]["n"] == 3
    bad = subprocess.run([sys.executable, "scripts/decode_time.py", str(large), "--catch-up", "1,x"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "--catch-up wants sizes" in bad.stderr and "Traceback" not in bad.stderr

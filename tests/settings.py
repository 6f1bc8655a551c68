"""Test settings: llama.cpp threads per model (R2R_TEST_THREADS; 1 is faster on a busy machine,
where llama.cpp's spinning worker threads starve each other)."""

import os

THREADS = int(os.environ.get("R2R_TEST_THREADS", "2"))

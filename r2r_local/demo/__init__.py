"""The built-in demo: a checkable addition task and a small/large model pair trained on it.

Pure Python + numpy. `task` makes and checks problems, `template` holds the chat template,
`evaluate` runs a backend greedily over problems, `paths` finds the shipped GGUFs.
"""

from r2r_local.demo.paths import FALLBACK_ROUTER, DemoPair, demo_pair, demo_router, load_manifest
from r2r_local.demo.task import Problem, extract_answer, is_correct, problems

__all__ = ["FALLBACK_ROUTER", "DemoPair", "Problem", "demo_pair", "demo_router", "extract_answer", "is_correct", "load_manifest", "problems"]

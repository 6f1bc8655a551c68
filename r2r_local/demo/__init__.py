"""The built-in demo: a checkable addition task and a small/large model pair trained on it.

Pure Python + numpy. `task` makes and checks problems, `template` holds the chat template,
`evaluate` runs a backend greedily over problems, `paths` finds the shipped GGUFs.
"""

from r2r_local.demo.paths import DemoPair, demo_pair, load_manifest
from r2r_local.demo.task import Problem, extract_answer, is_correct, problems

__all__ = ["DemoPair", "Problem", "demo_pair", "extract_answer", "is_correct", "load_manifest", "problems"]

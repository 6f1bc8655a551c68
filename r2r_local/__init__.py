"""r2r-local: R2R token routing on one workstation (llama.cpp + onnxruntime).

Importing the package loads nothing heavy; models are loaded by `r2r_local.pair.load_pair`.
"""

__version__ = "0.1.0"

"""robustbench-lr: reproduce and benchmark "Robustness via deep low-rank representations"."""

from robustbench_lr import numerics

# Before anything computes: pin the CPU code paths (numerics.py says why and how to opt out).
numerics.apply()

__version__ = "0.1.0"

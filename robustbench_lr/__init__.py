"""robustbench-lr: reproduce and benchmark "Robustness via deep low-rank representations"."""

__version__ = "0.1.0"

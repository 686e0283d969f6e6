"""Leaderboard: one row per model, ranked by white-box robust accuracy under one threat model.

Merges any number of results files (runs on other machines, other profiles). A model is
(dataset, arch, width, method, device); its seeds are averaged. The training device is part of
a model's identity: bf16 training on CUDA and float32 on the CPU give different networks, which
must not be averaged as if they were seeds. Beside the ranking metric it shows the
clean accuracy, black-box accuracy (transfer from an independently seeded N-LR, so the N-LR
row is the N-LR→N-LR control), AutoAttack, random-noise accuracy and DeepFool ρ, and, when the
audit measured it, each attack's optimality. Every accuracy carries its 95 % Wilson interval
over all seeds' test examples and, over several seeds, their spread (`stats`). Each model also
gets a JSON record shaped like RobustBench's `model_info` entries.

`columns.py` declares the columns, `tracks.py` those of the threat tracks beside L∞,
`build.py` computes the rows, `markdown.py` writes `leaderboard.md` and the JSON files.
"""

from __future__ import annotations

from robustbench_lr.leaderboard.build import build, model_info, model_name
from robustbench_lr.leaderboard.columns import AUTOATTACK_NAMES, MODEL, ONE_PLACE, Threat
from robustbench_lr.leaderboard.markdown import write

__all__ = [
    "AUTOATTACK_NAMES",
    "MODEL",
    "ONE_PLACE",
    "Threat",
    "build",
    "model_info",
    "model_name",
    "write",
]

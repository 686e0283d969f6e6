"""A model's numerics spread: train it again under another code path and see how far its clean
accuracy moves.

Training on digits is chaotic: a rounding difference in one step can end several points away
after twenty epochs. Whether a difference between two methods on the leaderboard is larger than
that is only known by measuring it, per model: the same config, seed and data, trained on the
same machine under `numerics.PERTURBED` (every library on another instruction-set level). The
levers are read once when a library first computes, so the retraining runs in a child process
started with them set; its checkpoint lives under `<checkpoint root>/.perturbed/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from robustbench_lr import numerics
from robustbench_lr.config import TrainConfig
from robustbench_lr.data import LoadOptions
from robustbench_lr.train import train

FOLDER = ".perturbed"
EXPERIMENT = "numerics"
ATTACK = "perturbed-path"
# The perturbed run's clean accuracy, and its absolute move from the model's own (points). A
# run whose loss became non-finite under the perturbed path has no accuracy (NaN) and moved
# without bound (inf): its training is numerically fragile, and the leaderboard says so.
METRICS = ("clean_acc", "clean_move_pp")


class PerturbedRunError(RuntimeError):
    """The child process that retrains under the perturbed path failed."""


def retrain(cfg: TrainConfig, root: str | Path, data_root: str | None = None) -> dict:
    """Train `cfg` under the perturbed code path in a child process; its clean accuracy and
    numerics key, or `diverged` (the error) with `clean_acc` None when its loss became
    non-finite there. Resumes or skips like any training (the folder is a normal checkpoint)."""
    env = {**os.environ, numerics.MODE_ENV: "native", **numerics.PERTURBED}
    request = {"config": cfg.to_dict(), "root": str(Path(root) / FOLDER), "data_root": data_root}
    done = subprocess.run(
        [sys.executable, "-m", "robustbench_lr.perturbed", json.dumps(request)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise PerturbedRunError(f"retraining under {numerics.PERTURBED} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(request: dict) -> dict:
    cfg = TrainConfig.from_dict(request["config"])
    options = LoadOptions(data_root=request["data_root"]) if request["data_root"] else None
    key = numerics.current_key("cpu")
    try:
        result = train(cfg, request["root"], "cpu", options, progress=False)
    except FloatingPointError as err:  # the loss became non-finite: a measurement, not a fault
        return {"clean_acc": None, "diverged": " ".join(str(err).split()), "numerics_key": key}
    return {"clean_acc": result.clean_acc, "numerics_key": key}


if __name__ == "__main__":
    # The child's one line of stdout is its answer to `retrain` (a process boundary, not a log).
    print(json.dumps(_child(json.loads(sys.argv[1]))))

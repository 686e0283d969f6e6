"""A whole `paper-fast` bench on one device, its stages' times scaled to the profile's sizes.

This is the first honest estimate of what a full reproduction costs on one GPU. The
device has no datasets and no network, so this writes CIFAR-10, CIFAR-100 and SVHN stand-ins in
their real on-disk formats (torchvision's pickles and .mat files, read by the suite's own
loaders) and runs every stage of the profile (training, attacks, ρ searches, audit, analyses)
with `run_bench`, shrunk so it fits a short device session:

- every split is 1/`shrink` of the real dataset's size, and the attack, ρ-search and audit
  subsets are 1/`shrink` of the profile's `n`, `minrho_n` and `audit_n`;
- each model trains `epochs` epochs instead of the profile's.

Each job's seconds come from the bench's own ledger. Scaled to the profile: training x
`shrink` x (profile epochs / `epochs`); every other stage x `shrink` (their work is linear in
the images they attack or read). What this cannot scale exactly, and the table says so:
per-job fixed costs (model loading, kernel warm-up) are multiplied too (an over-estimate), and
the stand-in images are random class templates plus noise, learnable in one epoch, whose
geometry decides how early DeepFool and the ρ searches stop (real CIFAR may stop later).

    python benchmarks/paper_fast_device.py --device cuda [--shrink 20] [--epochs 1]
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _report import machine, write_section

from robustbench_lr.bench import run_bench
from robustbench_lr.config import checkpoint_dir
from robustbench_lr.data import LoadOptions
from robustbench_lr.ledger import Ledger
from robustbench_lr.profiles import Profile, load_profile

# Real split sizes (train, test) and classes of the datasets the GPU profiles name.
SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "svhn": (73_257, 26_032)}
CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10}


def _images(rng: np.random.Generator, labels: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """uint8 NCHW images: the class template at 60 % plus 40 % uniform noise (learnable)."""
    noise = rng.random((len(labels), 3, 32, 32), dtype=np.float32)
    return np.clip(255 * (0.6 * templates[labels] + 0.4 * noise), 0, 255).astype(np.uint8)


def _split(rng: np.random.Generator, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    templates = np.random.default_rng(CLASSES[name]).random((CLASSES[name], 3, 32, 32))
    labels = rng.integers(0, CLASSES[name], n)
    return _images(rng, labels, templates.astype(np.float32)), labels


def write_standins(root: Path, shrink: int, seed: int = 0) -> None:
    """CIFAR-10, CIFAR-100 (fine and coarse labels) and SVHN in torchvision's layouts under
    `root`, each split 1/`shrink` of the real size (at least 20 images)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)

    def sizes(name: str) -> tuple[int, int]:
        return tuple(max(20, n // shrink) for n in SIZES[name])

    def dump(path: Path, entry: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(entry))

    train, test = sizes("cifar10")
    folder = root / "cifar-10-batches-py"
    x, y = _split(rng, "cifar10", train)
    for i, part in enumerate(np.array_split(np.arange(train), 5), start=1):
        dump(
            folder / f"data_batch_{i}",
            {"data": x[part].reshape(len(part), -1), "labels": y[part].tolist()},
        )
    x, y = _split(rng, "cifar10", test)
    dump(folder / "test_batch", {"data": x.reshape(len(y), -1), "labels": y.tolist()})

    for split, n in zip(("train", "test"), sizes("cifar100"), strict=True):
        x, y = _split(rng, "cifar100", n)
        entry = {
            "data": x.reshape(n, -1),
            "fine_labels": y.tolist(),
            "coarse_labels": (y // 5).tolist(),
        }
        dump(root / "cifar-100-python" / split, entry)

    for split, n in zip(("train", "test"), sizes("svhn"), strict=True):
        x, y = _split(rng, "svhn", n)
        labels = np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1)  # SVHN writes 0 as 10
        savemat(str(root / f"{split}_32x32.mat"), {"X": x.transpose(2, 3, 1, 0), "y": labels})


def shrunk(profile: Profile, shrink: int, epochs: int) -> Profile:
    """`profile` with `epochs` per model and 1/`shrink` of every evaluation subset."""
    return replace(
        profile,
        models=tuple(replace(m, epochs=min(epochs, m.epochs)) for m in profile.models),
        n=max(2, profile.n // shrink),
        audit_n=max(2, profile.audit_n // shrink),
        attacks=replace(profile.attacks, minrho_n=max(2, profile.attacks.minrho_n // shrink)),
    )


def scaled_seconds(
    jobs: dict[str, dict], profile: Profile, run: Profile, ck_root: Path, shrink: int
) -> dict[str, tuple[float, float]]:
    """Per stage: (seconds measured, seconds scaled to `profile`), from the ledger's `jobs`.

    A training job's key is `train:<checkpoint folder>:<epochs>`; its folder names the model
    (the folder does not depend on the epochs), whose profile epochs scale its time.
    """
    epochs = {
        str(checkpoint_dir(ck_root, real)): real.epochs / ran.epochs
        for real, ran in zip(profile.models, run.models, strict=True)
    }
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for key, entry in jobs.items():
        factor = float(shrink)
        if entry["stage"] == "train":
            factor *= epochs[key.split(":", 1)[1].rsplit(":", 1)[0]]
        out[entry["stage"]][0] += entry["seconds"]
        out[entry["stage"]][1] += entry["seconds"] * factor
    return {stage: (a, b) for stage, (a, b) in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper-fast")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--shrink", type=int, default=20, help="1/shrink of every size (default 20)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs per model (default 1)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("paper_fast_device.py: no CUDA device here; skipped (`make gpu-check` runs it)")
        return
    profile = load_profile(args.profile)
    run = shrunk(profile, args.shrink, args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_standins(root / "data", args.shrink)
        start = time.perf_counter()
        run_bench(
            run,
            root / "out",
            root / "ck",
            args.device,
            LoadOptions(data_root=str(root / "data")),
            progress=False,
        )
        wall = time.perf_counter() - start
        stages = scaled_seconds(Ledger(root / "out").jobs, profile, run, root / "ck", args.shrink)
    total = sum(scaled for _, scaled in stages.values())
    lines = [
        f"## `{args.profile}` bench on one device, scaled (benchmarks/paper_fast_device.py)",
        "",
        f"Machine: {machine()}; device {args.device}. Stand-in CIFAR/SVHN files in the real formats, "
        f"1/{args.shrink} of every size, {args.epochs} epoch(s) per model; the bench ran "
        f"{wall:.0f} s. Scaled: training x {args.shrink} x (profile epochs / {args.epochs}), "
        f"other stages x {args.shrink}.",
        "",
        "| stage | measured (s) | scaled to the profile (h) |",
        "|---|---:|---:|",
        *(f"| {stage} | {a:.0f} | {b / 3600:.2f} |" for stage, (a, b) in stages.items()),
        f"| **all** | {sum(a for a, _ in stages.values()):.0f} | **{total / 3600:.2f}** |",
        "",
        "Over-estimates per-job fixed costs (multiplied with the rest); the stand-ins' geometry, "
        "not CIFAR's, decides how early DeepFool and the ρ searches stop.",
    ]
    print("\n".join(lines), flush=True)
    write_section(f"{args.profile}-device-{args.device}", "\n".join(lines))


if __name__ == "__main__":
    main()

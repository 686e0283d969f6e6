"""Training throughput of every method, and what it implies for the GPU profiles' wall time.

Writes the `training` section of reports/perf.md (and `training-cuda` where torch sees a GPU):
seconds per epoch of `train()` itself — the real loop with its per-epoch test evaluation and
checkpoint — for each method, and each method's cost relative to N-LR (what the LR penalty,
its projection and SN/SRN's power iterations add per step). On the CPU the models are digits
ResNet18s at width 0.25 (the cpu profile's); on a GPU they are the paper's full-width models
on CIFAR-shaped random tensors (no dataset download), so the `paper-fast` profile's training
time can be estimated from them: s/epoch × the real training-set size / the timed one × epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace

import torch
from _report import machine, wall_clock, write_section

from robustbench_lr.config import TrainConfig
from robustbench_lr.data import Data, DatasetSpec, load
from robustbench_lr.devices import use_device
from robustbench_lr.profiles import load_profile
from robustbench_lr.train import train

EPOCHS = {"cpu": 10, "cuda": 1}  # digits epochs on the CPU are short (~0.15 s): more of them
# Fastest of these per size: a two-size fit amplifies noise, and on CUDA the first run of a
# method loads its kernels (cuSOLVER for the LR projections' QR, SVD for SN/SRN's spectra):
# with one run that one-time cost lands in the whole-set timing and inflates the slope.
REPEATS = {"cpu": 3, "cuda": 2}
CUDA_TRAIN_IMAGES = 10_240
CUDA_TEST_IMAGES = 2_000
# Real training-set sizes of the datasets the GPU profiles name (CIFAR: 50k; SVHN: 73,257).
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "cifar100-coarse": 50_000, "svhn": 73_257}
CLASSES = {"cifar10": 10, "cifar100": 100, "cifar100-coarse": 20, "svhn": 10}


@dataclass(frozen=True)
class Run:
    """One timed configuration: dataset name (for its shape and classes), arch, method."""

    dataset: str
    arch: str
    method: str


CPU_RUNS = [
    Run("digits", "resnet18", m) for m in ("nlr", "1lr", "2lr", "bottle-lr", "snip", "srn", "sn")
]
CUDA_RUNS = [
    *(
        Run("cifar10", "resnet18", m)
        for m in ("nlr", "1lr", "2lr", "bottle-lr", "snip", "srn", "sn")
    ),
    *(Run("cifar100", "resnet50", m) for m in ("nlr", "1lr")),
    *(Run("svhn", "vgg19", m) for m in ("nlr", "1lr", "2lr")),
]


def synthetic(dataset: str) -> Data:
    """Random CIFAR-shaped tensors with the dataset's classes (augmented like CIFAR if it is)."""
    gen = torch.Generator().manual_seed(0)
    classes = CLASSES[dataset]
    spec = DatasetSpec(dataset, 3, 32, classes, (0.5,) * 3, (0.25,) * 3, dataset != "svhn")

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(n, 3, 32, 32, generator=gen), torch.randint(
            0, classes, (n,), generator=gen
        )

    return Data(spec, *images(CUDA_TRAIN_IMAGES), *images(CUDA_TEST_IMAGES))


@dataclass(frozen=True)
class Cost:
    """Per-epoch wall time of `train()` as `fixed + per_image · n` (fitted on two sizes)."""

    fixed: float  # model set-up, per-epoch test evaluation, checkpoint, method's describe()
    per_image: float  # the training steps themselves

    def epoch(self, n: int) -> float:
        """Predicted seconds of one epoch on `n` training images."""
        return self.fixed + self.per_image * n


def seconds_per_epoch(run: Run, data: Data, device: str, width: float) -> float:
    """Wall seconds per epoch of `train()` (loop, test evaluation, checkpoint) on `device`."""
    cfg = TrainConfig(
        dataset=run.dataset,
        arch=run.arch,
        width=width,
        method=run.method,
        epochs=EPOCHS[device],
        seed=0,
    )
    now = wall_clock(device)
    with tempfile.TemporaryDirectory() as root:
        start = now()
        train(cfg, root, device=device, progress=False, data=data)
        return (now() - start) / EPOCHS[device]


def cost(run: Run, data: Data, device: str, width: float) -> Cost:
    """Time `run` on the whole training set and on its first half; fit fixed + per-image cost.

    One size alone would scale the per-epoch overhead (evaluation, checkpoint, SN/SRN's exact
    spectra in describe()) with the training set when estimating a real run's length.
    """
    n = len(data.y_train)
    half = Data(data.spec, data.x_train[: n // 2], data.y_train[: n // 2], data.x_test, data.y_test)
    whole, part = (
        min(seconds_per_epoch(run, d, device, width) for _ in range(REPEATS[device]))
        for d in (data, half)
    )
    per_image = max(whole - part, 0.0) / (n - n // 2)
    return Cost(max(whole - per_image * n, 0.0), per_image)


def paper_fast_hours(costs: dict[Run, Cost]) -> tuple[float, list[str]]:
    """Training hours of the `paper-fast` profile: each model's fitted cost at its real size."""
    profile = load_profile("paper-fast")
    hours, missing = 0.0, []
    for cfg in profile.models:
        like = next((r for r in costs if (r.arch, r.method) == (cfg.arch, cfg.method)), None)
        if like is None:
            missing.append(f"{cfg.arch} {cfg.method}")
            continue
        hours += costs[like].epoch(TRAIN_SIZES[cfg.dataset]) * cfg.epochs / 3600
    return hours, missing


def measure(device: str, methods: list[str] | None = None) -> str:
    """Time every run of `device` (or only `methods`) and return its perf.md section."""
    use_device(device)  # a clear error where the device is missing, and the commands' policy
    started = time.perf_counter()
    if device == "cuda":
        runs, width, sets = CUDA_RUNS, 1.0, {d: synthetic(d) for d in CLASSES}
    else:
        runs, width, sets = CPU_RUNS, 0.25, {"digits": load("digits")}
    runs = [r for r in runs if methods is None or r.method in methods or r.method == "nlr"]
    # One untimed run first: CUDA context, cuDNN, allocator and first-call warm-up.
    seconds_per_epoch(runs[0], sets[runs[0].dataset], device, width)
    costs = {run: cost(run, sets[run.dataset], device, width) for run in runs}
    rows = []
    for run, c in costs.items():
        base = costs[replace(run, method="nlr")]
        rows.append(
            f"| {run.dataset} | {run.arch} | {run.method} | {1 / c.per_image:.0f} | "
            f"**{c.per_image / base.per_image:.2f}×** | {c.fixed:.2f} |"
        )
    lines = [
        f"## Training on {device.upper()} (benchmarks/training.py)",
        "",
        f"Measured on {machine()}; {time.perf_counter() - started:.0f} s in all. Width {width:g}, "
        f"batch 128, {EPOCHS[device]} epochs of `train()` on the whole training set and on its "
        f"first half (fastest of {REPEATS[device]}); the difference gives the training steps' throughput, the rest is per-epoch "
        "overhead (set-up, test evaluation, checkpoint, the method's spectra for meta.json)"
        + (
            f". CIFAR-shaped random tensors ({CUDA_TRAIN_IMAGES} train / {CUDA_TEST_IMAGES} test "
            "images), bf16 autocast and channels_last as `train()` uses on CUDA."
            if device == "cuda"
            else "; the digits training split."
        ),
        "",
        "| data | arch | method | train img/s | step cost vs N-LR | s / epoch overhead |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    if device == "cuda" and methods is None:
        hours, missing = paper_fast_hours(costs)
        lines += [
            "",
            f"`paper-fast` training estimate: **{hours:.1f} GPU-hours** on this GPU (each model's "
            "fitted cost per epoch at its dataset's real training-set size × 30 epochs; attacks, "
            "audit and analyses not included)"
            + (f"; not timed, so not counted: {', '.join(missing)}." if missing else "."),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure on the CPU, and on CUDA when there is one (`--device` picks one of them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument(
        "--methods", help="comma-separated subset (N-LR always runs: it is the reference)"
    )
    args = parser.parse_args(argv)
    methods = args.methods.split(",") if args.methods else None
    devices = [args.device] if args.device != "all" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    for device in devices:
        markdown = measure(device, methods)
        if methods is None:  # a subset is a quick look, not the section of record
            write_section("training" if device == "cpu" else "training-cuda", markdown)
        print(markdown, flush=True)


if __name__ == "__main__":
    main()

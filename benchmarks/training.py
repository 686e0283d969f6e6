"""Training throughput of every method, and what it implies for the GPU profiles' wall time.

Writes the `training` section of reports/perf.md (and `training-cuda` where torch sees a GPU):
seconds per epoch of `train()` itself — the real loop with its per-epoch test evaluation and
checkpoint — for each method, and each method's cost relative to N-LR (what the LR penalty,
its projection and SN/SRN's power iterations add per step). On the CPU the models are digits
ResNet18s at width 0.25 (the cpu profile's); on a GPU they are the paper's full-width models
on CIFAR-shaped random tensors (no dataset download), so the `paper-fast` profile's training
time can be estimated from them: s/epoch × the real training-set size / the timed one × epochs.

The `training-step-modes` sections (`-cuda` on a GPU) time N-LR's training step itself in each
step mode (robustbench_lr/step.py: eager, torch.compile, CUDA graphs), with the compile time
apart and amortized over one epoch of the real training set.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace

import torch
from _report import machine, wall_clock, write_section

from robustbench_lr import models
from robustbench_lr.config import TrainConfig
from robustbench_lr.data import Data, DatasetSpec, load
from robustbench_lr.devices import use_device
from robustbench_lr.methods import METHODS, Batch, Progress
from robustbench_lr.profiles import load_profile
from robustbench_lr.step import STEP_MODES, EpochTally, TrainStep
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


# Step modes: steps timed after the warm-up ones (which hold the compiles), and the epoch the
# compile time is amortized over (digits' training split on the CPU, CIFAR's on a GPU).
TIMED_MODES = ("eager", "compile", "reduce-overhead")
WARMUP_STEPS = 3
TIMED_STEPS = {"cpu": 30, "cuda": 200}
EPOCH_IMAGES = {"cpu": 1347, "cuda": TRAIN_SIZES["cifar10"]}


@dataclass(frozen=True)
class StepTiming:
    """One mode's warm-up seconds (compiles included) and its steady training images per second."""

    warmup: float
    images_per_s: float

    def amortized(self, epoch_images: int) -> float:
        """Images per second over one epoch of `epoch_images` that starts with the warm-up."""
        warm_images = WARMUP_STEPS * 128
        rest = max(epoch_images - warm_images, 0) / self.images_per_s
        return epoch_images / (self.warmup + rest)


def time_step_mode(mode: str, data: Data, device: str, width: float) -> StepTiming:
    """N-LR's `TrainStep` as `train()` runs it (tally included), on fixed batches of 128."""
    dev = use_device(device)
    torch.manual_seed(0)
    model = models.build("resnet18", data.spec, width).to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    method = METHODS.get("nlr")
    opts = method.resolve({})
    aux = torch.nn.Module()  # N-LR has no auxiliary state
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    step = TrainStep(STEP_MODES.get(mode), method, model, aux, optimizer, opts, dev)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y_train), generator=gen).to(dev)
    tally = EpochTally(dev)
    now = wall_clock(dev)
    model.train()

    def run(first: int, count: int) -> float:
        start = now()
        for k in range(first, first + count):
            idx = order[(k * 128) % (len(order) - 128) :][:128]
            x = x_train[idx]
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            batch = Batch(x, y_train[idx], [], Progress(0, k + 1, 1), gen)
            stats = step.forward(batch)
            tally.add(stats, 128, k + 1)
            step.update(stats, batch.progress)
        tally.check(0)  # one sync, as the loop's epoch end
        return now() - start

    warmup = run(0, WARMUP_STEPS)
    steps = TIMED_STEPS[device]
    return StepTiming(warmup, steps * 128 / run(WARMUP_STEPS, steps))


def measure_step_modes(device: str) -> str:
    """Time every step mode on `device` and return its perf.md section."""
    started = time.perf_counter()
    if device == "cuda":
        data, width, shape = synthetic("cifar10"), 1.0, "CIFAR-shaped random tensors"
    else:
        data, width, shape = load("digits"), 0.25, "digits"
    timings = {mode: time_step_mode(mode, data, device, width) for mode in TIMED_MODES}
    eager = timings["eager"]
    epoch = EPOCH_IMAGES[device]
    rows = [
        f"| {mode} | {t.images_per_s:.0f} | **{t.images_per_s / eager.images_per_s:.2f}×** | "
        f"{t.warmup:.1f} | {t.amortized(epoch):.0f} | "
        f"{t.amortized(epoch) / eager.amortized(epoch):.2f}× |"
        for mode, t in timings.items()
    ]
    return "\n".join(
        [
            f"## Training step modes on {device.upper()} (benchmarks/training.py)",
            "",
            f"Measured on {machine()}; {time.perf_counter() - started:.0f} s in all. N-LR ResNet18 "
            f"width {width:g}, batch 128, {shape}"
            + (", bf16 autocast and channels_last" if device == "cuda" else "")
            + f": `step.TrainStep` as `train()` runs it (forward, backward, SGD step, after_step, "
            f"the device-side tally), {TIMED_STEPS[device]} steps timed after {WARMUP_STEPS} "
            "warm-up steps, which hold the compiles (each mode starts from `torch._dynamo.reset()`; "
            "inductor's on-disk cache may be warm from an earlier run). Amortized: images per "
            f"second over one epoch of {epoch} images with the warm-up counted in.",
            "",
            "| step mode | train img/s | vs eager | warm-up s (compile) | img/s over one epoch "
            "| vs eager |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Measure on the CPU, and on CUDA when there is one (`--device` picks one of them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument(
        "--methods", help="comma-separated subset (N-LR always runs: it is the reference)"
    )
    parser.add_argument(
        "--sections",
        choices=["all", "methods", "step-modes"],
        default="all",
        help="methods: the per-method training section; step-modes: the step modes' section",
    )
    args = parser.parse_args(argv)
    methods = args.methods.split(",") if args.methods else None
    devices = [args.device] if args.device != "all" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    suffix = {"cpu": "", "cuda": "-cuda"}
    for device in devices:
        if args.sections in ("all", "methods"):
            markdown = measure(device, methods)
            if methods is None:  # a subset is a quick look, not the section of record
                write_section("training" + suffix[device], markdown)
            print(markdown, flush=True)
        if args.sections in ("all", "step-modes"):
            markdown = measure_step_modes(device)
            write_section("training-step-modes" + suffix[device], markdown)
            print(markdown, flush=True)


if __name__ == "__main__":
    main()

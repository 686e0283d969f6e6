"""Attack throughput: our harness vs torchattacks and foolbox called directly vs the physical limit.

Writes the `attacks` section of reports/perf.md (the attack speed targets), and `attacks-cuda` where
torch sees a GPU: images/s of `ifsgm` (7 and 20 steps), `ill`, `deepfool` and the ρ search,
each as a ratio to the physical limit — k forward + backward passes w.r.t. the input, timed
raw — all measured in one run on the same model and batch. Models: CIFAR-shaped random-init
ResNet18s with 10 and 100 classes (width 0.25 on the CPU, 1.0 on a GPU) and a digits ResNet18
(width 0.25) trained for 3 epochs here. Timings interleave the implementations and keep the
fastest of a few rounds, so a busy machine slows every column alike.

`attacks-precision` (`attacks-precision-cuda` on a GPU) measures crafting precisions:
img/s of `ifsgm` (torchattacks and our loop) and `deepfool` crafted in each of
`attacks.precision.PRECISIONS`, and the robust accuracy each reports (always decided in strict
float32) against float32 crafting's, on the same model and batch in one run. Its last line
names the precision the rule picks for `precision.CUDA_DEFAULT`: the cheapest whose accuracy
stays within `PRECISION_TOLERANCE_PP` of float32's on every attack.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _report import machine, wall_clock, write_section
from torch import nn
from torch.nn import functional as F

from robustbench_lr import models
from robustbench_lr.attacks import PRECISIONS, crafting_in, frozen, robust_flags, run_attack
from robustbench_lr.attacks.base import rho
from robustbench_lr.attacks.search import attack_until_fooled, threshold_search
from robustbench_lr.data import DatasetSpec, load
from robustbench_lr.devices import use_device

ROUNDS = 3
CPU = torch.device("cpu")
THREADS = 1  # see `fastest`
CIFAR_BATCH = 32
# At the harness's own chunk size (256) the digits ratios were worse, not better (ifsgm 1.27× /
# 1.26×, torchattacks 1.19× / 1.29×, one run on 2026-11-27), so the digits row stays at 128.
DIGITS_BATCH = 128
DEEPFOOL_BATCH = 16
CUDA_BATCH = 256
CUDA_DEEPFOOL_BATCH = 128
TORCHATTACKS_DEEPFOOL_IMAGES = (
    1  # it loops over samples: its time per image does not depend on the batch
)
EPS = 8 / 255
# ρ search on the digits model: budgets digits needs (it shrugs off 8/255), 20 steps at most.
SEARCH = {"alpha": 0.02, "max_steps": 20, "tol": 0.02, "eps_max": 0.5}


@dataclass
class Bench:
    """One model with its batch: CIFAR-shaped (random init, labels = its own predictions) or digits."""

    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Where the batch (and the model) live: it picks the clock and the memory counter."""
        return self.x.device


def cifar_bench(
    classes: int, width: float = 0.25, batch: int = CIFAR_BATCH, device: str = "cpu"
) -> Bench:
    """A random-init CIFAR-shaped ResNet18 and a batch labelled with its own predictions."""
    torch.manual_seed(0)
    spec = DatasetSpec(f"cifar{classes}", 3, 32, classes, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    model = models.build("resnet18", spec, width).eval().to(device)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)  # every sample starts correct: DeepFool must work on all of them
    return Bench(f"CIFAR-{classes} R18 w{width:g} (random init)", model, x, y)


def _digits(device: str = "cpu") -> Bench:
    """A digits ResNet18 (width 0.25) trained for 3 epochs on the CPU here, moved to `device`."""
    from robustbench_lr.checkpoints import load_model
    from robustbench_lr.config import TrainConfig
    from robustbench_lr.train import train

    cfg = TrainConfig(dataset="digits", arch="resnet18", width=0.25, epochs=3, seed=0)
    with tempfile.TemporaryDirectory() as root:
        model, _ = load_model(train(cfg, root, device="cpu", progress=False).folder, device)
    use_device(device)  # train() applied the CPU's policy process-wide: re-apply the measured one's
    data = load("digits")
    x, y = data.x_test[:DIGITS_BATCH].to(device), data.y_test[:DIGITS_BATCH].to(device)
    return Bench("digits R18 w0.25 (3 epochs)", model, x, y)


def clock(device: torch.device) -> Callable[[], float]:
    """The timer for `device`: this process's CPU time on CPU, synchronized wall time on CUDA.

    CPU time of this process with one torch thread: other processes on a shared machine then
    slow nothing down, so the ratios hold wherever the benchmark runs. On CUDA the work is the
    GPU's, so wall time after `synchronize` is the honest clock.
    """
    return time.process_time if device.type != "cuda" else wall_clock(device)


def fastest(
    fns: dict[str, Callable[[], object]],
    rounds: int = ROUNDS,
    device: torch.device = CPU,
) -> dict[str, float]:
    """Seconds per call of each function on `device`'s clock: interleaved rounds, minimum kept."""
    now = clock(device)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = now()
            fn()
            best[name] = min(best[name], now() - start)
    return best


def limit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> None:
    """The physical limit of a k-step gradient attack: k raw forward+backward passes w.r.t. x."""
    limit_on(model, [x] * k, y)


def limit_on(model: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor) -> None:
    """One raw forward+backward pass w.r.t. the input for each of `inputs`, weights frozen."""
    with frozen(model):
        for x in inputs:
            xa = x.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xa), y), xa)


def model_inputs(model: nn.Module, fn: Callable[[], object]) -> list[torch.Tensor]:
    """Every batch `fn` feeds `model`, in order (a forward pre-hook records them).

    A pass does not cost the same on every input: on the digits model a forward+backward on
    an attack's own iterates measured 1.08-1.18x one on the clean batch. The limit that bounds
    an attack from below is the one timed on the inputs the attack actually visits.
    """
    seen: list[torch.Tensor] = []
    handle = model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    try:
        fn()
    finally:
        handle.remove()
    return seen


def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak MiB allocated by torch during `fn` beyond what was allocated before it.

    CUDA: the caching allocator's own peak counter. CPU: profiler memory events, in order.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    activity = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activity, profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak / 2**20


def linf_rows(b: Bench) -> list[str]:
    """ifsgm and ill at 7 and 20 steps: harness, torchattacks and foolbox vs the two limits."""
    import foolbox as fb
    import torchattacks

    m, x, y = b.model, b.x, b.y
    fmodel = fb.PyTorchModel(m, bounds=(0, 1))
    rows = []
    for steps in (7, 20):
        alpha = 2.5 * EPS / steps

        def ta_ll(steps=steps, alpha=alpha):
            attack = torchattacks.PGD(m, eps=EPS, alpha=alpha, steps=steps, random_start=False)
            attack.set_mode_targeted_least_likely(quiet=True)
            return attack(x, y)

        ours = {
            name: lambda name=name, steps=steps: run_attack(name, m, x, y, eps=EPS, steps=steps)
            for name in ("ifsgm", "ill")
        }
        visited = {name: model_inputs(m, fn) for name, fn in ours.items()}
        assert all(len(v) == steps for v in visited.values()), {
            k: len(v) for k, v in visited.items()
        }
        t = fastest(
            {
                "limit": lambda steps=steps: limit(m, x, y, steps),
                **{
                    f"{name}-limit": lambda inputs=inputs: limit_on(m, inputs, y)
                    for name, inputs in visited.items()
                },
                **ours,
                "ifsgm-ta": lambda steps=steps, alpha=alpha: torchattacks.PGD(
                    m, eps=EPS, alpha=alpha, steps=steps, random_start=False
                )(x, y),
                "ifsgm-fb": lambda steps=steps, alpha=alpha: fb.attacks.LinfBasicIterativeAttack(
                    abs_stepsize=alpha, steps=steps, random_start=False
                )(fmodel, x, y, epsilons=EPS),
                "ill-ta": ta_ll,
            },
            device=b.device,
        )
        n = len(x)
        for attack in ours:
            harness, ta = t[attack], t[f"{attack}-ta"]
            fbx = t.get(f"{attack}-fb")
            fb_cells = f"{n / fbx:.0f} | {fbx / t['limit']:.2f}×" if fbx else "n/a | n/a"
            rows.append(
                f"| {b.name} | {attack} {steps} steps | {n / t['limit']:.0f} | {n / harness:.0f} | "
                f"**{harness / t['limit']:.2f}×** | {t[f'{attack}-limit'] / t['limit']:.2f}× | "
                f"**{harness / t[f'{attack}-limit']:.2f}×** | "
                f"{n / ta:.0f} | {ta / t['limit']:.2f}× | {fb_cells} |"
            )
    return rows


def deepfool_row(b: Bench, batch: int = DEEPFOOL_BATCH) -> str:
    """DeepFool: ours vs foolbox vs torchattacks, ms/image and peak memory."""
    import foolbox as fb
    import torchattacks

    m, x, y = b.model, b.x[:batch], b.y[:batch]
    fmodel = fb.PyTorchModel(m, bounds=(0, 1))
    fns = {
        "ours": lambda: run_attack("deepfool", m, x, y),
        "foolbox": lambda: fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)(
            fmodel, x, y, epsilons=None
        ),
    }
    t = fastest({"limit": lambda: limit(m, x, y, 1), **fns}, rounds=2, device=b.device)
    few = slice(0, TORCHATTACKS_DEEPFOOL_IMAGES)
    slow = fastest(
        {
            "torchattacks": lambda: torchattacks.DeepFool(m, steps=50, overshoot=0.02)(
                x[few], y[few]
            )
        },
        1,
        b.device,
    )
    t["torchattacks"] = slow["torchattacks"] * len(x) / TORCHATTACKS_DEEPFOOL_IMAGES
    mem = {name: peak_mib(fn, b.device) for name, fn in fns.items()}
    ms = {k: 1000 * v / len(x) for k, v in t.items()}
    equiv = {k: v / t["limit"] for k, v in t.items()}
    return (
        f"| {b.name} | {ms['ours']:.1f} ({equiv['ours']:.0f}) | {ms['foolbox']:.1f} ({equiv['foolbox']:.0f}) | "
        f"{ms['torchattacks']:.1f} ({equiv['torchattacks']:.0f}) | **{t['foolbox'] / t['ours']:.2f}×** | "
        f"**{t['torchattacks'] / t['ours']:.2f}×** | {mem['ours']:.1f} | {mem['foolbox']:.1f} |"
    )


def search_row(b: Bench) -> str:
    """Cost of one bisection evaluation of the ρ search vs one fixed-step attack at the final ε."""
    m, x, y = b.model, b.x, b.y
    cfg = {"attack": "ifsgm", "alpha": SEARCH["alpha"], "max_steps": SEARCH["max_steps"]}
    found = threshold_search(
        m, x, y, tol=SEARCH["tol"], eps_max=SEARCH["eps_max"], rate=0.99, **cfg
    )
    final = found.eps if found.eps == found.eps else SEARCH["eps_max"]
    t = fastest(
        {
            "search-step": lambda: attack_until_fooled(m, x, y, eps=final, **cfg),
            "attack": lambda: run_attack(
                "ifsgm", m, x, y, eps=final, steps=cfg["max_steps"], alpha=cfg["alpha"]
            ),
        },
        device=b.device,
    )
    return (
        f"| {b.name} | {final:.3g} | {cfg['alpha']:.3g} | {len(found.evaluations)} | {1000 * t['search-step']:.0f} | "
        f"{1000 * t['attack']:.0f} | **{t['search-step'] / t['attack']:.2f}×** |"
    )


@dataclass(frozen=True)
class Setting:
    """One device's run of this benchmark: its models, batches, clock and perf.md section."""

    section: str
    clock_text: str
    batch_text: str
    deepfool_batch: int
    benches: Callable[[], list[Bench]]


SETTINGS = {
    "cpu": Setting(
        "attacks",
        f"CPU time of one thread, fastest of {ROUNDS} interleaved rounds",
        f"batch {CIFAR_BATCH} (digits {DIGITS_BATCH})",
        DEEPFOOL_BATCH,
        lambda: [cifar_bench(10), cifar_bench(100), _digits("cpu")],
    ),
    # On a GPU the paper's full-width ResNet18 at a real batch: small models only measure
    # kernel-launch latency there.
    "cuda": Setting(
        "attacks-cuda",
        f"wall time after torch.cuda.synchronize, fastest of {ROUNDS} interleaved rounds",
        f"batch {CUDA_BATCH} (digits {DIGITS_BATCH})",
        CUDA_DEEPFOOL_BATCH,
        lambda: [
            cifar_bench(10, 1.0, CUDA_BATCH, "cuda"),
            cifar_bench(100, 1.0, CUDA_BATCH, "cuda"),
            _digits("cuda"),
        ],
    ),
}


def measure(device: str) -> str:
    """Run every table on `device` and return its perf.md section."""
    setting = SETTINGS[device]
    use_device(device)  # the policy every command runs under (deterministic kernels, no TF32)
    started = time.perf_counter()
    benches = setting.benches()
    linf = [row for b in benches for row in linf_rows(b)]
    deepfool = [deepfool_row(b, setting.deepfool_batch) for b in benches]
    search = [search_row(benches[-1])]
    elapsed = time.perf_counter() - started
    return "\n".join(
        [
            f"## Attacks on {device.upper()} (benchmarks/attacks.py)",
            "",
            f"Measured on {machine()}; {elapsed:.0f} s in all. {setting.clock_text}. "
            f"L-inf attacks at ε = 8/255, α = 2.5·ε/steps, {setting.batch_text}. "
            "The physical limit is k raw forward+backward passes w.r.t. the input (weights frozen), "
            "timed twice: on the clean batch k times, and on the k inputs the attack itself "
            "visits (recorded by a forward hook, then replayed raw). A pass costs more on some "
            "inputs than on others, so the second is the attack's true floor and `harness / own "
            "limit` is the harness's overhead. torchattacks and foolbox are called directly, as a "
            "user would (weights not frozen). `ill` has no library twin: its torchattacks column "
            "is the fixed-target least-likely PGD (`ill-fixed`).",
            "Targets: harness `ifsgm` ≤ 1.10× the limit at 7 steps, ≤ 1.05× at 20.",
            "",
            "| model | attack | limit img/s | harness img/s | harness / limit | own limit / limit | "
            "harness / own limit | torchattacks img/s | torchattacks / limit | foolbox img/s | "
            "foolbox / limit |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *linf,
            "",
            f"DeepFool (L2, overshoot 0.02, ≤ 50 steps, 10 candidates), batch {setting.deepfool_batch}: "
            "ms/image (forward+backward equivalents per batch in parentheses); peak memory "
            "allocated by torch during the attack. torchattacks loops over samples, so it is timed "
            f"on {TORCHATTACKS_DEEPFOOL_IMAGES} of the images and scaled. "
            "Target: ours faster than both, peak memory ≤ foolbox's.",
            "",
            "| model | ours | foolbox | torchattacks | speed-up vs foolbox | vs torchattacks | "
            "peak MiB ours | peak MiB foolbox |",
            "|---|---|---|---|---|---|---|---|",
            *deepfool,
            "",
            "ρ search (ifsgm, ≤ 20 steps, tol 0.02, >99% misclassified): one bisection evaluation (per-sample "
            "early stopping, fooled samples leave the batch) vs one 20-step attack at the final ε. "
            "Target ≤ 1.5×.",
            "",
            "| model | final ε | α | evaluations | ms / evaluation | ms / attack | ratio |",
            "|---|---|---|---|---|---|---|",
            *search,
        ]
    )


# ---- crafting precisions -------------------------------------------------------------

# A precision may replace float32 crafting only if no attack reports more than this many
# percentage points more accuracy with it (a weaker attack flatters the defence).
PRECISION_TOLERANCE_PP = 0.5
# Digits models shrug off 8/255: a budget at which IFSGM fools some and not all of them.
DIGITS_PRECISION_EPS = 0.1


@dataclass(frozen=True)
class PrecisionRun:
    """One attack crafted in one precision: seconds per batch, float32-verdict accuracy, ρ."""

    seconds: float
    acc: float
    rho: float


def precision_attacks(b: Bench, eps: float) -> dict[str, Callable[[], torch.Tensor]]:
    """The attacks the precision table times on `b`: IFSGM both backends, DeepFool."""
    m, x, y = b.model, b.x, b.y
    return {
        f"ifsgm 7 steps ε={eps:.3g}": lambda: run_attack("ifsgm", m, x, y, eps=eps, steps=7),
        f"ifsgm (ours) 7 steps ε={eps:.3g}": lambda: run_attack(
            "ifsgm", m, x, y, backend="ours", eps=eps, steps=7
        ),
        "deepfool": lambda: run_attack("deepfool", m, x, y),
    }


def precision_runs(b: Bench, eps: float) -> dict[str, dict[str, PrecisionRun]]:
    """attack -> precision -> its run: timed interleaved (fastest of the rounds), then scored."""
    out: dict[str, dict[str, PrecisionRun]] = {}
    for attack, fn in precision_attacks(b, eps).items():

        def crafted(name: str, fn: Callable[[], torch.Tensor] = fn) -> torch.Tensor:
            with crafting_in(name):
                return fn()

        times = fastest(
            {name: lambda name=name: crafted(name) for name in PRECISIONS}, device=b.device
        )
        out[attack] = {}
        for name in PRECISIONS:
            x_adv = crafted(name)
            acc = 100.0 * robust_flags(b.model, x_adv, b.y).float().mean().item()
            mean_rho = rho(x_adv.cpu(), b.x.cpu()).mean().item()
            out[attack][name] = PrecisionRun(times[name], acc, mean_rho)
    return out


def precision_rows(b: Bench, runs: dict[str, dict[str, PrecisionRun]]) -> list[str]:
    """One table row per attack and precision, each against float32 crafting."""
    rows = []
    for attack, by_name in runs.items():
        base = by_name["float32"]
        for name, run in by_name.items():
            rows.append(
                f"| {b.name} | {attack} | {name} | {len(b.x) / run.seconds:.1f} | "
                f"**{base.seconds / run.seconds:.2f}×** | {run.acc:.2f} | "
                f"**{run.acc - base.acc:+.2f}** | {run.rho:.4g} |"
            )
    return rows


def cheapest_honest(runs: list[dict[str, dict[str, PrecisionRun]]]) -> str:
    """The rule for `precision.CUDA_DEFAULT`: the precision with the least total time among
    those whose accuracy exceeds float32's by at most PRECISION_TOLERANCE_PP on every attack."""
    fair = [
        name
        for name in PRECISIONS
        if all(
            by[name].acc - by["float32"].acc <= PRECISION_TOLERANCE_PP
            for bench in runs
            for by in bench.values()
        )
    ]
    return min(fair, key=lambda n: sum(by[n].seconds for bench in runs for by in bench.values()))


@dataclass(frozen=True)
class PrecisionSetting:
    """One device's precision table: its models with the IFSGM budget on each."""

    section: str
    benches: Callable[[], list[tuple[Bench, float]]]
    clock_text: str


PRECISION_SETTINGS = {
    "cpu": PrecisionSetting(
        "attacks-precision",
        lambda: [(_digits("cpu"), DIGITS_PRECISION_EPS)],
        f"CPU time of one thread, fastest of {ROUNDS} interleaved rounds",
    ),
    "cuda": PrecisionSetting(
        "attacks-precision-cuda",
        lambda: [
            (cifar_bench(10, 1.0, CUDA_BATCH, "cuda"), EPS),
            (_digits("cuda"), DIGITS_PRECISION_EPS),
        ],
        f"wall time after torch.cuda.synchronize, fastest of {ROUNDS} interleaved rounds",
    ),
}


def measure_precision(device: str) -> str:
    """The crafting-precision table on `device` and the precision the default rule picks."""
    setting = PRECISION_SETTINGS[device]
    use_device(device)
    started = time.perf_counter()
    benches = setting.benches()
    runs = [precision_runs(b, eps) for b, eps in benches]
    rows = [row for (b, _), r in zip(benches, runs, strict=True) for row in precision_rows(b, r)]
    pick = cheapest_honest(runs)
    elapsed = time.perf_counter() - started
    return "\n".join(
        [
            f"## Crafting precision of attacks on {device.upper()} (benchmarks/attacks.py)",
            "",
            f"Measured on {machine()}; {elapsed:.0f} s in all. {setting.clock_text}. "
            f"Batch {DIGITS_BATCH} (CIFAR {CUDA_BATCH}); DeepFool ≤ 50 steps, overshoot 0.02. "
            "Each attack crafts in the precision named (`--craft-precision`); its accuracy is "
            "always decided by one strict-float32 forward pass (`attacks.precision.verdict`), "
            "and the attacks' own early stops are confirmed in float32 when crafting is not "
            "(DeepFool's, the loop's; torchattacks' PGD has none), the loop's best iterates "
            "once at its end. Δ acc is the accuracy "
            "reported minus float32 crafting's on the same model and batch: positive means a "
            "weaker attack. On the CPU `tf32` is float32 (TF32 is a CUDA mode).",
            "",
            "| model | attack | crafted in | img/s | speed vs float32 | acc % | Δ acc pp | mean ρ |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Cheapest precision within {PRECISION_TOLERANCE_PP} pp of float32 on every attack "
            f"here: **{pick}** (the rule for `precision.CUDA_DEFAULT`).",
        ]
    )


TABLES = {
    "speed": (measure, lambda device: SETTINGS[device].section),
    "precision": (measure_precision, lambda device: PRECISION_SETTINGS[device].section),
}


def main(argv: list[str] | None = None) -> None:
    """Measure on the CPU, and on CUDA when there is one (`--device` picks one of them);
    `--table` picks the speed table, the crafting-precision table, or both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["all", *SETTINGS], default="all")
    parser.add_argument("--table", choices=["all", *TABLES], default="all")
    args = parser.parse_args(argv)
    devices = [args.device] if args.device != "all" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    tables = [args.table] if args.table != "all" else list(TABLES)
    torch.set_num_threads(THREADS)
    for device in devices:
        for table in tables:
            run, section = TABLES[table]
            markdown = run(device)
            write_section(section(device), markdown)
            print(markdown, flush=True)


if __name__ == "__main__":
    main()

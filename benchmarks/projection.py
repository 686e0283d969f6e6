"""Rank projection Π_r(W): time and error of every `--lr-projection` rule.

Test matrix: a symmetric PSD W = Q diag(λ) Qᵀ with Haar-random Q and a power-law spectrum
λ_i = 1/i, a smooth stand-in for the LR branch's W between projections (the optimum error is
then known in closed form). For each m ∈ {512, 2048, 4096} and r ∈ {100, 500} it reports the
fastest of three wall times of each projection, its time over today's default (`randomized`),
its relative Frobenius error ‖W − Π(W)‖/‖W‖ and that error over the optimal rank-r error; then
the fast rules alone at the real width of 2-LR's deep tap (m = 16,384, r = 500, CIFAR
ResNet18), which decides the rule for the GPU; then a sweep of the Nyström ensemble size t at
m = 4096, r = 100, which chose the `--lr-nystrom-ensemble` default. Writes the `projection`
section of reports/perf.md (`projection-cuda` with --device cuda). About 6 minutes on one CPU
core.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402

from robustbench_lr.lowrank.projection import PROJECTIONS, project  # noqa: E402
from robustbench_lr.methods.lowrank import BRANCH_OPTIONS, DEEP_RANK  # noqa: E402

ENSEMBLE_DEFAULT = next(o.default for o in BRANCH_OPTIONS if o.name == "lr_nystrom_ensemble")
PROJECTION_DEFAULT = next(o.default for o in BRANCH_OPTIONS if o.name == "lr_projection")
WIDE_M = 256 * 8 * 8  # CIFAR ResNet18 before block 4: 256 channels at 8x8 (SPEC §1: 16,384)
WIDE_RULES = [name for name in PROJECTIONS.names() if name != "exact"]  # exact: O(m³), minutes


def test_matrix(m: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, λ): a PSD matrix with spectrum 1/i and random eigenvectors, and its eigenvalues."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(m, m, generator=gen).to(device))
    values = 1.0 / torch.arange(1, m + 1, dtype=torch.float32, device=device)
    w = (q * values) @ q.T
    return (w + w.T) / 2, values


def kron_test_matrix(m: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, λ) as `test_matrix`, cheap at m = 16,384: W = W₁ ⊗ W₁ for W₁ = test_matrix(√m).

    A Haar Q of 16,384² costs minutes of QR on a CPU; the Kronecker square of a √m-sized test
    matrix has orthogonal, equally incoherent eigenvectors Q₁ ⊗ Q₁ and spectrum {1/(i·j)}, a
    smooth decay slightly slower than 1/i, and is built in seconds.
    """
    side = round(m**0.5)
    small, values = test_matrix(side, device)
    return torch.kron(small, small), torch.outer(values, values).flatten().sort(descending=True)[0]


def timed(fn, reps: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Fastest of `reps` calls in seconds and the last result: on CUDA wall time after a
    warm-up call and synchronization, on CPU the process's CPU time.

    CPU time, because on a shared machine other processes stretch wall time by however much
    they run (these numbers were taken at a load average of ~8 on 2 cores), while the CPU
    time of a one-thread computation is its own; the minimum, because interference only ever
    adds (caches, memory bandwidth).
    """
    if device.type == "cuda":
        fn()
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    times, out = [], None
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock() - start)
    return min(times), out


def measure(
    m: int, r: int, device: torch.device, names: list[str], ensemble: int, matrix=test_matrix
) -> list[dict]:
    """One row per projection for a given (m, r)."""
    w, values = matrix(m, device)
    values = values.double()
    optimal = (values[r:].square().sum() / values.square().sum()).sqrt().item()
    rows = []
    for name in names:
        slow = device.type == "cpu" and (m > 4096 or (name == "exact" and m >= 4096))
        reps = 1 if slow else 3
        seconds, out = timed(
            lambda n=name: project(n, w, r, torch.Generator().manual_seed(1), ensemble),
            reps,
            device,
        )
        # in float64: a float32 norm over m² = 2.7·10⁸ entries loses whole percents
        err = ((w - out).double().norm() / w.double().norm()).item()
        rows.append(
            {
                "m": m,
                "r": r,
                "projection": name,
                "t": ensemble if name == "nystrom" else "",
                "seconds": seconds,
                "rel_error": err,
                "vs_optimal": err / optimal,
            }
        )
    exact = next((row["seconds"] for row in rows if row["projection"] == "exact"), None)
    default = next(
        (row["seconds"] for row in rows if row["projection"] == PROJECTION_DEFAULT), None
    )
    for row in rows:
        row["speedup"] = exact / row["seconds"] if exact else float("nan")
        row["vs_default"] = row["seconds"] / default if default else float("nan")
    return rows


def _ratio(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}x"


def table(rows: list[dict]) -> str:
    """Markdown table of the measured rows."""
    lines = [
        f"| m | r | projection | t | seconds | time / {PROJECTION_DEFAULT} | speed-up vs exact "
        "| rel. error | error / optimal |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['m']} | {row['r']} | {row['projection']} | {row['t']} | {row['seconds']:.3f} | "
            f"{row['vs_default']:.2f}x | {_ratio(row['speedup'], 1)} | {row['rel_error']:.4f} | "
            f"{row['vs_optimal']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the grid and the ensemble sweep; print and write the perf.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: on a shared machine, multi-threaded LAPACK "
        "under oversubscription is erratic, and the ratios compare like with like)",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated m values (default: 512,2048,4096)",
    )
    parser.add_argument(
        "--no-wide",
        action="store_true",
        help=f"skip the m = {WIDE_M}, r = {DEEP_RANK} rows (2-LR's real deep tap)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [512, 2048, 4096]
    names = PROJECTIONS.names()
    rows = [
        row
        for m in sizes
        for r in (100, 500)
        for row in measure(m, r, device, names, ENSEMBLE_DEFAULT)
    ]
    wide = (
        []
        if args.no_wide
        else measure(WIDE_M, DEEP_RANK, device, WIDE_RULES, ENSEMBLE_DEFAULT, kron_test_matrix)
    )
    sweep_m = 4096 if 4096 in sizes else max(sizes)
    sweep = [row for t in (1, 2, 4, 8) for row in measure(sweep_m, 100, device, ["nystrom"], t)]
    exact_s = next(
        row["seconds"]
        for row in rows
        if row["m"] == sweep_m and row["r"] == 100 and row["projection"] == "exact"
    )
    default_s = next(
        row["seconds"]
        for row in rows
        if row["m"] == sweep_m and row["r"] == 100 and row["projection"] == PROJECTION_DEFAULT
    )
    for row in sweep:
        row["speedup"] = exact_s / row["seconds"]
        row["vs_default"] = row["seconds"] / default_s
    wide_text = [
        f"2-LR's deep tap at its real width, m = {WIDE_M}, r = {DEEP_RANK} (CIFAR ResNet18; "
        f"exact skipped, minutes of eigh): W = W₁ ⊗ W₁ for a {round(WIDE_M**0.5)}-sized W₁ as "
        "above (spectrum 1/(i·j), Haar ⊗ Haar eigenvectors), one timing each:",
        table(wide),
    ]
    text = "\n\n".join(
        [
            f"## Rank projection Π_r(W) on {device.type.upper()} (benchmarks/projection.py)",
            f"Device: {device.type} ({machine()}); "
            f"{'seconds of CPU time' if device.type == 'cpu' else 'wall seconds'}. W: symmetric PSD, spectrum 1/i, random eigenvectors; "
            "error = ‖W − Π(W)‖_F / ‖W‖_F; *optimal* = the exact best rank-r error. "
            f"Nyström: l = 2r sampled columns, ensemble t = {ENSEMBLE_DEFAULT} (the `--lr-nystrom-ensemble` default).",
            table(rows),
            *(wide_text if wide else []),
            f"Nyström ensemble size t at m = {sweep_m}, r = 100:",
            table(sweep),
        ]
    )
    print(text)
    write_section("projection" if device.type == "cpu" else "projection-cuda", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Rank projection Π_r(W): time and error of exact vs randomized vs ensembled Nyström.

Test matrix: a symmetric PSD W = Q diag(λ) Qᵀ with Haar-random Q and a power-law spectrum
λ_i = 1/i, a smooth stand-in for the LR branch's W between projections (the optimum error is
then known in closed form). For each m ∈ {512, 2048, 4096} (+16384 on CUDA) and r ∈ {100, 500}
it reports the fastest of three wall times of each projection, its relative Frobenius error
‖W − Π(W)‖/‖W‖ and that error over the optimal rank-r error; then a sweep of the Nyström
ensemble size t at m = 4096, r = 100, which chose the `--lr-nystrom-ensemble` default.
Writes the `projection` section of reports/perf.md. About 2 minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402

from robustbench_lr.lowrank.projection import PROJECTIONS, project  # noqa: E402
from robustbench_lr.methods.lowrank import BRANCH_OPTIONS  # noqa: E402

ENSEMBLE_DEFAULT = next(o.default for o in BRANCH_OPTIONS if o.name == "lr_nystrom_ensemble")


def test_matrix(m: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, λ): a PSD matrix with spectrum 1/i and random eigenvectors, and its eigenvalues."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(m, m, generator=gen).to(device))
    values = 1.0 / torch.arange(1, m + 1, dtype=torch.float32, device=device)
    w = (q * values) @ q.T
    return (w + w.T) / 2, values


def timed(fn, reps: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Fastest of `reps` calls in seconds (after one warm-up call on CUDA) and the last result.

    The minimum, not the median: on a shared machine other processes only ever add time.
    """
    if device.type == "cuda":
        fn()
    times, out = [], None
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), out


def measure(m: int, r: int, device: torch.device, names: list[str], ensemble: int) -> list[dict]:
    """One row per projection for a given (m, r)."""
    w, values = test_matrix(m, device)
    optimal = (values[r:].square().sum() / values.square().sum()).sqrt().item()
    rows = []
    for name in names:
        reps = 1 if name == "exact" and m >= 4096 and device.type == "cpu" else 3
        seconds, out = timed(
            lambda n=name: project(n, w, r, torch.Generator().manual_seed(1), ensemble),
            reps,
            device,
        )
        err = ((w - out).norm() / w.norm()).item()
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
    for row in rows:
        row["speedup"] = exact / row["seconds"] if exact else float("nan")
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the measured rows."""
    lines = [
        "| m | r | projection | t | seconds | speed-up vs exact | rel. error | error / optimal |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['m']} | {row['r']} | {row['projection']} | {row['t']} | {row['seconds']:.3f} | "
            f"{row['speedup']:.1f}x | {row['rel_error']:.4f} | {row['vs_optimal']:.3f} |"
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
        help="comma-separated m values (default: 512,2048,4096 [+16384 on CUDA])",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [512, 2048, 4096] + ([16384] if device.type == "cuda" else [])
    )
    names = PROJECTIONS.names()
    rows = [
        row
        for m in sizes
        for r in (100, 500)
        for row in measure(m, r, device, names, ENSEMBLE_DEFAULT)
    ]
    sweep_m = 4096 if 4096 in sizes else max(sizes)
    sweep = [row for t in (1, 2, 4, 8) for row in measure(sweep_m, 100, device, ["nystrom"], t)]
    exact_s = next(
        row["seconds"]
        for row in rows
        if row["m"] == sweep_m and row["r"] == 100 and row["projection"] == "exact"
    )
    for row in sweep:
        row["speedup"] = exact_s / row["seconds"]
    text = "\n\n".join(
        [
            "## Rank projection Π_r(W) (benchmarks/projection.py)",
            f"Device: {device.type} ({machine()}). W: symmetric PSD, spectrum 1/i, random eigenvectors; "
            "error = ‖W − Π(W)‖_F / ‖W‖_F; *optimal* = the exact best rank-r error. "
            f"Nyström: l = 2r sampled columns, ensemble t = {ENSEMBLE_DEFAULT} (the `--lr-nystrom-ensemble` default).",
            table(rows),
            f"Nyström ensemble size t at m = {sweep_m}, r = 100:",
            table(sweep),
        ]
    )
    print(text)
    write_section("projection", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A profile's bench, serial vs Ray, in one run, side by side.

`serial` is the default of `make bench`: one job at a time, torch at every core (1 x 2 threads
on these machines). `ray` runs the same graph on a local Ray cluster, one thread per job, as
many jobs at once as cores (2 x 1). Both start from empty folders, so both train and attack
everything; the ratio is what a user gains from `--executor ray` on one machine.

    python benchmarks/executors_wall.py [--profile cpu] [--in-place]   # cpu: about 30 minutes

`--in-place` makes the serial run `make bench` itself (reports/<profile>, checkpoints/, which
must then be empty for the timing to mean "from scratch"), so one session pays for the bench
once: the serial run regenerates the committed reports while it is timed.

The CPU results of the two runs differ in the last bits (torch's thread count changes float
summation order); `tests/test_bench_cluster.py` checks bit-equality at equal threads per job.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _report import machine, write_section

from robustbench_lr.bench import run_bench
from robustbench_lr.executors import EXECUTORS, connect_ray
from robustbench_lr.profiles import load_profile


def _wall(profile_name: str, executor, out: Path, checkpoints: Path) -> float:
    start = time.perf_counter()
    profile = load_profile(profile_name)
    run_bench(profile, out, checkpoints, "cpu", progress=False, executor=executor)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="the serial run writes reports/<profile> and checkpoints/, as make bench does",
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp) / "serial"
        if args.in_place:
            name = load_profile(args.profile).name
            if (
                any(Path("checkpoints").glob("*/"))
                or Path("reports", name, "bench_ledger.jsonl").exists()
            ):
                raise SystemExit(
                    "--in-place needs empty checkpoints/ and no reports/<profile> ledger"
                )
            serial_out, serial_ck = Path("reports") / name, Path("checkpoints")
        else:
            serial_out, serial_ck = here / "out", here / "ck"
        serial = _wall(args.profile, EXECUTORS.get("serial")(), serial_out, serial_ck)
        import ray

        connect_ray(num_cpus=cores)
        try:
            ray_root = Path(tmp) / "ray"
            parallel = _wall(
                args.profile, EXECUTORS.get("ray")(threads=1), ray_root / "out", ray_root / "ck"
            )
        finally:
            ray.shutdown()
    lines = [
        f"## `{args.profile}` bench: serial vs Ray (benchmarks/executors_wall.py)",
        "",
        f"Machine: {machine()}. Both from empty folders (training included), one after the other.",
        "",
        "| executor | jobs at once x torch threads | wall time | vs serial |",
        "|---|---|---:|---:|",
        f"| serial (`make bench`) | 1 x {cores} | {serial:.0f} s | 1.00 |",
        f"| ray | {cores} x 1 | {parallel:.0f} s | {serial / parallel:.2f}x faster |",
    ]
    print("\n".join(lines), flush=True)
    write_section(f"executors-{args.profile}", "\n".join(lines))


if __name__ == "__main__":
    main()

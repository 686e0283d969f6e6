"""Run one command under several CPU numeric environments and print where the outputs differ.

Each level is a set of environment variables read by torch, oneDNN and MKL before they compute
(`robustbench_lr/numerics.py`); the command runs once per level in a fresh folder (`{out}` in
the command is replaced by it), and the files it wrote are compared across levels: a
results CSV by the rows whose values differ from the first level's, any other file by digest.

    python benchmarks/numerics_levels.py -- robustbench-lr bench --profile smoke \\
        --out {out}/r --checkpoints {out}/ck

The `native-*` levels emulate other machines on this one: an AVX2-only CPU, an SSE4 one. The
`portable-*` levels add, on top of the pinned levers, what an AVX2-only CPU would imply
elsewhere (MKL's own instruction cap): equal digests there are the evidence that the pinned
setting does not depend on the CPU's extras. Wall times are side by side in one run; name the
CPU (`lscpu`) beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robustbench_lr import numerics  # noqa: E402  (after the path set-up above)

NATIVE = {numerics.MODE_ENV: "native"}
LEVELS: dict[str, dict[str, str]] = {
    "portable": {numerics.MODE_ENV: "portable"},
    "portable-on-avx2": {numerics.MODE_ENV: "portable", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "native": NATIVE,
    "native-avx2": {
        **NATIVE,
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "native-sse4": {**NATIVE, **numerics.PERTURBED},
    "portable-1-thread": {numerics.MODE_ENV: "portable", "OMP_NUM_THREADS": "1"},
}


def level_env(extra: dict[str, str]) -> dict[str, str]:
    """The parent's environment without any lever, plus the level's variables."""
    names = (*numerics.LEVERS, "MKL_ENABLE_INSTRUCTIONS", numerics.MODE_ENV)
    env = {k: v for k, v in os.environ.items() if k not in names}
    return {**env, "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"), **extra}


def outputs(folder: Path, pattern: str) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.glob(pattern)) if p.is_file()}


def differing_rows(first: Path, other: Path) -> str:
    """How many rows of a results CSV carry another value than the first level's."""
    from robustbench_lr import results

    def values(path: Path):
        frame = results.placeless(results.read(path))
        return frame.set_index(results.PLACELESS_KEY)["value"]

    a, b = values(first), values(other)
    joined = a.to_frame("a").join(b.to_frame("b"), how="outer")
    moved = ~((joined["a"] == joined["b"]) | (joined["a"].isna() & joined["b"].isna()))
    return f"{int(moved.sum())}/{len(joined)} rows differ"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(LEVELS), help="comma-separated level names")
    parser.add_argument("--files", default="**/*.csv", help="glob of outputs to compare")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ... ({out} = folder)")
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"]
    if not command:
        parser.error("give the command after --")
    names = args.levels.split(",")
    unknown = [n for n in names if n not in LEVELS]
    if unknown:
        parser.error(f"unknown levels {unknown}; valid choices: {', '.join(LEVELS)}")
    base = Path(tempfile.mkdtemp(prefix="levels-"))
    runs: dict[str, tuple[float, dict[str, Path]]] = {}
    for name in names:
        out = base / name
        out.mkdir()
        argv = [c.replace("{out}", str(out)) for c in command]
        start = time.perf_counter()
        done = subprocess.run(argv, env=level_env(LEVELS[name]), cwd=ROOT, capture_output=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(f"{name}: exit {done.returncode}\n{done.stderr.decode()[-2000:]}")
            return 1
        runs[name] = (seconds, outputs(out, args.files))
    first_name = names[0]
    first_seconds, first_files = runs[first_name]
    print(f"| level | seconds | vs {first_name} time | file | digest | vs {first_name} |")
    print("|---|---|---|---|---|---|")
    for name, (seconds, files) in runs.items():
        for rel, path in files.items():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            other = first_files.get(rel)
            if other is None:
                verdict = "missing at first level"
            elif path.name.startswith("results") and path.suffix == ".csv":
                verdict = differing_rows(other, path)
            else:
                same = hashlib.sha256(other.read_bytes()).hexdigest()[:12] == digest
                verdict = "same bytes" if same else "differs"
            ratio = seconds / first_seconds
            print(f"| {name} | {seconds:.1f} | {ratio:.2f}x | {rel} | {digest} | {verdict} |")
    print(f"\noutputs kept in {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

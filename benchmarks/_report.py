"""Shared by the benchmark scripts: each owns one marked section of reports/perf.md.

A section is the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`; writing it
replaces only that text (or appends the section), under a file lock and with an atomic
rename, so benchmarks run one after another or side by side never clobber each other.
"""

from __future__ import annotations

import fcntl
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from robustbench_lr.files import atomic_write_text

PERF = Path(__file__).resolve().parent.parent / "reports" / "perf.md"
TITLE = "# Performance\n\nWritten by `make perf` (benchmarks/*.py); each script owns one section.\n"


def machine() -> str:
    """One line saying where the numbers were measured (they only compare within a machine)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    cpu = f"{platform.processor() or platform.machine()} x{os.cpu_count()}"
    load = f"load average {os.getloadavg()[0]:.1f}"  # timings on a shared machine are only as good as this
    return (
        f"{cpu}, {torch.get_num_threads()} torch threads, {load}, {gpu}, torch {torch.__version__}"
    )


def wall_clock(device: str | torch.device) -> Callable[[], float]:
    """Wall time in seconds, synchronized with the GPU first on CUDA (its work is asynchronous)."""
    on_cuda = torch.device(device).type == "cuda"

    def now() -> float:
        if on_cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    return now


def write_section(name: str, markdown: str, path: Path = PERF) -> Path:
    """Replace (or append) the section `name` of `path` with `markdown`, atomically."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else TITLE
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        atomic_write_text(path, text)
    return path

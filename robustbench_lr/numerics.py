"""The CPU numeric environment: which code paths compute the numbers, pinned for portability,
and the fingerprint that tells the regression gate which comparison it may make.

Why pin. torch (ATen), oneDNN (convolutions) and MKL (matrix products) each pick kernels by the
CPU's instruction set, and float32 sums then round differently: the same seed trained 21 digits
models to clean accuracies up to 16 points apart on an AVX-512 Xeon and an AVX2-only EPYC.
Each library has a documented switch that caps its code path, read once, at its first use:
`ATEN_CPU_CAPABILITY` (ATen's vectorized kernels), `ONEDNN_MAX_CPU_ISA` (oneDNN's JIT
kernels) and `MKL_CBWR` (MKL's conditional numerical reproducibility). Capped at AVX2 (the
floor this suite supports; MKL at `COMPATIBLE`, the branch MKL documents as the same on Intel
and non-Intel CPUs), every machine with AVX2 runs the same kernels. Measured on one
Sapphire Rapids (AVX-512, AMX): every lever changes the weights on its own; with all three
pinned the weights are the same bytes whatever the other levels are, at no measurable cost
(`benchmarks/numerics_levels.py`).

What is not claimed. oneDNN sizes some loop blocks from the cache sizes, which one machine cannot
emulate, so the comparison key keeps the CPU vendor: runs on another vendor's CPU are compared
with a measured tolerance, not bit for bit (see `comparison_key`).

`ROBUSTBENCH_LR_NUMERICS=native` (set before Python starts) opts out for speed: each library then
picks its fastest path, and the fingerprint names the CPU model so that only the same CPU
compares exactly. A lever set explicitly in the environment always wins over the pinning, and
the fingerprint records what is in force.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import MutableMapping
from functools import cache
from pathlib import Path
from typing import Any

MODE_ENV = "ROBUSTBENCH_LR_NUMERICS"
MODES = ("portable", "native")
DEFAULT_MODE = "portable"
# The pinned code path: what every AVX2 machine can run.
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}
LEVERS = tuple(PORTABLE)
# A code path every x86-64 CPU has and that differs from the portable one in all three
# libraries: re-running a job under it measures how far rounding alone moves a number.
PERTURBED = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "SSE4_2"}
# CPU flags that select code paths (as /proc/cpuinfo spells them).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile")


class NumericsModeError(ValueError):
    """`ROBUSTBENCH_LR_NUMERICS` holds a value that is not a mode."""


def mode(environ: MutableMapping[str, str] | None = None) -> str:
    """The requested mode; an unknown value raises, naming the valid ones."""
    env = os.environ if environ is None else environ
    value = env.get(MODE_ENV, DEFAULT_MODE)
    if value not in MODES:
        raise NumericsModeError(
            f"{MODE_ENV}={value!r} is not a numerics mode; valid choices: {', '.join(MODES)}"
        )
    return value


def apply(environ: MutableMapping[str, str] | None = None) -> None:
    """Pin the levers the portable mode asks for, leaving any the user set.

    Called when the package is imported, so it runs before torch computes anything in every
    entry point (CLI, API, bench workers, Ray and submitit workers, which import the package to
    unpickle their task); child processes inherit the variables. An invalid mode is left for
    `mode()` to report where an error can be shown.
    """
    env = os.environ if environ is None else environ
    if env.get(MODE_ENV, DEFAULT_MODE) == "portable":
        for name, value in PORTABLE.items():
            env.setdefault(name, value)


def levers(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The three levers as the environment sets them ('' = the library's own choice)."""
    env = os.environ if environ is None else environ
    return {name: env.get(name, "") for name in LEVERS}


@cache
def _cpu() -> dict[str, Any]:
    """Vendor, model and the instruction-set flags that select kernels (Linux /proc/cpuinfo)."""
    info = {"vendor": "", "model": platform.processor() or platform.machine(), "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields = dict(re.findall(r"^(vendor_id|model name|flags)\s*:\s*(.*)$", text, re.M))
    present = set(fields.get("flags", "").split())
    info["vendor"] = fields.get("vendor_id", "")
    info["model"] = fields.get("model name", info["model"])
    info["flags"] = [flag for flag in ISA_FLAGS if flag in present]
    return info


@cache
def _library_versions() -> dict[str, str]:
    """MKL and oneDNN versions as torch's build summary names them."""
    import torch

    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    onednn = re.search(r"MKL-DNN v([\w.]+)", config)
    return {"mkl": mkl.group(1) if mkl else "", "onednn": onednn.group(1) if onednn else ""}


def fingerprint(device: str = "cpu") -> dict[str, Any]:
    """Everything that decides how this process rounds, as plain JSON values.

    CPU: the CPU, torch/MKL/oneDNN versions, the thread count and the code paths in force
    (ATen's capability as torch reports it, not only as requested). CUDA adds the card, the
    CUDA and cuDNN versions and the TF32 and determinism flags.
    """
    import torch

    record: dict[str, Any] = {
        "mode": mode() if os.environ.get(MODE_ENV, DEFAULT_MODE) in MODES else "invalid",
        "cpu": dict(_cpu()),
        "torch": torch.__version__,
        **_library_versions(),
        "threads": torch.get_num_threads(),
        "levers": levers(),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        record["cuda"] = {
            "name": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda or "",
            "cudnn": str(torch.backends.cudnn.version() or ""),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        }
    return record


def is_portable(record: dict[str, Any]) -> bool:
    """Whether the record's code paths are the pinned ones (ATen as torch reported it)."""
    pinned = record.get("levers") == PORTABLE
    return pinned and str(record.get("aten_capability", "")).lower() == "avx2"


def comparison_key(record: dict[str, Any]) -> str:
    """A short id equal for two records exactly when their numbers may be compared bit for bit.

    Portable: the pinned path, the library versions, the thread count and the CPU vendor (see
    the module docstring for why the vendor stays). Native: the whole CPU (model and flags) and
    the levers as set. CUDA runs are not bit-reproducible across runs at all, so their key
    carries the card and is never treated as exact by the gate (`regress`).
    """
    cpu = record.get("cpu", {})
    base = {k: record.get(k) for k in ("torch", "mkl", "onednn", "threads", "mkldnn_enabled")}
    if is_portable(record):
        facts = {**base, "path": "portable", "vendor": cpu.get("vendor", "")}
    else:
        facts = {
            **base,
            "path": "native",
            "cpu": [cpu.get("vendor", ""), cpu.get("model", ""), cpu.get("flags", [])],
            "levers": record.get("levers"),
            "aten": record.get("aten_capability"),
        }
    prefix = facts["path"]
    if "cuda" in record:
        facts["cuda"] = record["cuda"]
        prefix = "cuda"
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:10]
    return f"{prefix}-{digest}"


def current_key(device: str = "cpu") -> str:
    """`comparison_key` of this process."""
    return comparison_key(fingerprint(device))


def row_key(trained: str, evaluated: str) -> str:
    """The key of a result row: a number depends on where its model was trained and where it
    was evaluated; one key when both are the same, both otherwise ('' = not recorded)."""
    return evaluated if trained in ("", evaluated) else f"{trained}+{evaluated}"


def summary(record: dict[str, Any]) -> str:
    """One line for logs and reports: the path, the CPU, the threads."""
    cpu = record.get("cpu", {})
    flags = "/".join(cpu.get("flags", []))
    return (
        f"{comparison_key(record)} ({record.get('mode')}; ATen {record.get('aten_capability')}, "
        f"oneDNN cap {record['levers'].get('ONEDNN_MAX_CPU_ISA') or 'native'}, MKL_CBWR "
        f"{record['levers'].get('MKL_CBWR') or 'auto'}; {cpu.get('model', '?')} [{flags}]; "
        f"{record.get('threads')} threads; torch {record.get('torch')})"
    )

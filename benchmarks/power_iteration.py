"""SN / SRN power iteration, `torch` vs `batched`: operators per training step, and CPU time.

On a GPU the SN and SRN steps are launch-bound (3.2x and 3.5x N-LR's step on an
H100), so the number that matters is how many kernels a step launches. On CPU its stand-in is
the number of leaf aten operators one training step runs (torch.profiler; an operator that
calls other aten operators is counted through them, so composites are not counted twice):
forward, loss, backward, SGD step and the method's `after_step`, on a digits ResNet18 at width
0.25 and batch 128, after two warm-up steps. The step's CPU time (fastest of 5; CPU time, as
the machine is shared) is printed too but is secondary: on CPU the per-operator overhead is
small next to the convolutions.
Writes the `power-iteration` section of reports/perf.md. About 30 seconds on one CPU core.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402

from robustbench_lr import models  # noqa: E402
from robustbench_lr.data import load  # noqa: E402
from robustbench_lr.methods import METHODS, Progress, TrainContext  # noqa: E402
from robustbench_lr.methods.power_iteration import (  # noqa: E402
    POWER_ITERATIONS,
    Batched,
    normalized_layers,
)

BATCH = 128
CASES = [("nlr", {})] + [
    (method, {"power_iteration": name}) for method in ("sn", "srn") for name in POWER_ITERATIONS
]


def setup(method: str, options: dict, data):
    """Model, aux, optimizer and options built as `train()` builds them (CPU, seed 0)."""
    torch.manual_seed(0)
    model = models.build("resnet18", data.spec, 0.25)
    spec = METHODS[method]
    opts = spec.resolve(options)
    batch = (data.x_train[:BATCH], data.y_train[:BATCH])
    ctx = TrainContext(model, "resnet18", data.spec, batch, 1, 1, 0, torch.device("cpu"))
    aux = spec.prepare(ctx, opts)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    return model, aux, optimizer, opts


def train_step(method: str, model, aux, optimizer, opts, x, y) -> None:
    """One step of `train()`'s loop for a method without taps or penalties."""
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    METHODS[method].after_step(model, aux, Progress(0, 1, 1), opts)


# Operators that only make tensor metadata or alias storage: no kernel on a GPU.
NO_KERNEL = {
    "aten::empty",
    "aten::empty_strided",
    "aten::empty_like",
    "aten::view",
    "aten::_unsafe_view",
    "aten::as_strided",
    "aten::resize_",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::expand",
    "aten::t",
    "aten::transpose",
    "aten::permute",
    "aten::unbind",
    "aten::select",
    "aten::slice",
    "aten::alias",
    "aten::detach",
    "aten::reshape",
    "aten::flatten",
    "aten::to",
    "aten::lift_fresh",
    "aten::result_type",
    "aten::resolve_conj",
    "aten::resolve_neg",
    "aten::mT",
    "aten::matrix_H",
    "aten::expand_as",
}


def _inside_foreach(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::_foreach_"):
            return True
        parent = parent.cpu_parent
    return False


def kernel_ops(prof) -> Counter:
    """Operators of a profile that would each launch a kernel on a GPU, by name.

    Aten operators that call no other kernel-launching aten operator (so composites are not
    counted twice), minus the metadata-only ones; a `_foreach_*` operator counts once, as its
    CUDA multi-tensor kernel does (on CPU it loops over per-tensor operators).
    """
    found = Counter()
    for e in prof.events():
        if not e.name.startswith("aten::") or e.name in NO_KERNEL or _inside_foreach(e):
            continue
        if e.name.startswith("aten::_foreach_") or not any(
            c.name.startswith("aten::") and c.name not in NO_KERNEL for c in e.cpu_children
        ):
            found[e.name] += 1
    return found


def power_step_ops(model, aux) -> int:
    """Kernel ops of the power-iteration step alone: what torch's forward runs per layer, or
    the batched strategy's `step()`."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        if isinstance(aux, Batched):
            aux.step()
        else:
            for norm, original in normalized_layers(model):
                norm._power_method(original.float().flatten(1), 1)
    return sum(kernel_ops(prof).values())


def measure(method: str, options: dict, data) -> dict:
    model, aux, optimizer, opts = setup(method, options, data)
    x, y = data.x_train[:BATCH], data.y_train[:BATCH]
    for _ in range(2):
        train_step(method, model, aux, optimizer, opts, x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(method, model, aux, optimizer, opts, x, y)
    ops = kernel_ops(prof)
    power = power_step_ops(model, aux) if options else 0
    times = []
    for _ in range(5):
        start = time.process_time()
        train_step(method, model, aux, optimizer, opts, x, y)
        times.append(time.process_time() - start)
    label = method + (f" ({options['power_iteration']})" if options else "")
    return {
        "label": label,
        "ops": sum(ops.values()),
        "power": power,
        "by_name": ops,
        "seconds": min(times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load("digits", train_limit=BATCH)
    rows = [measure(method, options, data) for method, options in CASES]
    base = rows[0]
    lines = [
        "| method | kernel ops / step | over N-LR | of which the power step | CPU ms / step |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['ops']} | {row['ops'] - base['ops']:+d} | {row['power']} | "
            f"{1000 * row['seconds']:.1f} |"
        )
    text = "\n\n".join(
        [
            "## SN / SRN power iteration on CPU (benchmarks/power_iteration.py)",
            f"Measured on {machine()}. One training step (forward, cross-entropy, backward, "
            f"SGD, `after_step`) of a digits ResNet18 w0.25 at batch {BATCH}, profiled with "
            "torch.profiler after two warm-up steps. *Kernel ops* = aten operators that call no "
            "other kernel-launching one, metadata-only operators (views, empty, ...) left out, "
            "a `_foreach_*` counted once: the CPU stand-in for kernel launches on a GPU. "
            "*Power step*: those of the u, v update alone (21 weight layers in 12 distinct "
            "shapes). `torch`: each layer's parametrization steps u, v in its forward; "
            "`batched`: one bmm per shape group after the optimizer step "
            "(`--power-iteration batched`). CPU ms: process CPU time of one step, fastest of 5.",
            "\n".join(lines),
        ]
    )
    print(text)
    write_section("power-iteration", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

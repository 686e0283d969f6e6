"""One training step, run eagerly or captured by torch.compile, and its device-side epoch tally.

How a step *runs* (op by op, or as compiled graphs) is independent of what it computes (the
method's hooks) and of the loop around it, and a GPU trains a small model launch- and sync-bound
(N-LR ResNet18 at batch 128: 7,690 img/s, ~25 TFLOP/s of bf16 on an H100): the step's shape is
where the speed is.

The step is three callables, each given to torch.compile in the compiled modes: `forward` (the
method's objective under CUDA's bf16 autocast, its penalty, the summed loss, the numbers to log),
`optimizer.step` and the method's `after_step`; `loss.backward()` runs between them (dynamo
cannot trace a `.backward()` call). Hooks torch.compile cannot capture (a CPU generator,
torch.svd_lowrank, an attack's inner autograd.grad) graph-break and run eagerly: slower, not
wrong.

No step reads a number back to the host: the sums stay on the device (`EpochTally`) until the
loop reads them (every `CHECK_EVERY` steps and at the epoch's end), which is also when a
non-finite loss is noticed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustbench_lr.methods import Batch, Method, Progress
from robustbench_lr.models import StagedNet
from robustbench_lr.registry import Registry

DEFAULT_STEP_MODE = "eager"
# Steps between two reads of the tally (progress bar, non-finite check): one host sync per this
# many steps instead of several per step.
CHECK_EVERY = 50


@dataclass(frozen=True)
class StepMode:
    """How the step's callables run: `compile_options` for torch.compile, or None (eagerly)."""

    summary: str
    compile_options: dict[str, Any] | None

    def wrap(self, fn: Callable, **overrides: Any) -> Callable:
        """`fn` itself (eager) or torch.compile(fn) with this mode's options and `overrides`."""
        if self.compile_options is None:
            return fn
        return torch.compile(fn, **{**self.compile_options, **overrides})


STEP_MODES: Registry[StepMode] = Registry("step mode")
STEP_MODES.add(
    DEFAULT_STEP_MODE,
    StepMode("op by op: the reference, bit-for-bit repeatable on CPU (every stored result)", None),
)
STEP_MODES.add("compile", StepMode("torch.compile with inductor: fused kernels", {}))
STEP_MODES.add(
    "reduce-overhead",
    StepMode(
        "torch.compile with inductor and CUDA graphs: one graph launch per piece on a GPU",
        {"mode": "reduce-overhead"},
    ),
)
# torch's own debugging rung between eager and inductor: dynamo's capture and AOT autograd with
# no code generation. It checks that a method compiles and trains like eager in seconds on a
# CPU, where inductor takes minutes per model (the CPU tests use it).
STEP_MODES.add(
    "aot-eager",
    StepMode(
        "torch.compile's graph capture and AOT autograd without code generation (a check)",
        {"backend": "aot_eager"},
    ),
)


@dataclass
class StepStats:
    """What one step reports, all still on the device: the summed loss, the batch's correct
    predictions and the detached numbers to log (keyed as in the epoch's history)."""

    loss: torch.Tensor
    correct: torch.Tensor
    logged: dict[str, torch.Tensor]


class TrainStep:
    """One optimizer step of `method` on a batch, `forward` then `update`, in the given mode.

    Eager mode keeps the op order every stored checkpoint was trained with (byte-identical).
    """

    def __init__(
        self,
        mode: StepMode,
        method: Method,
        model: StagedNet,
        aux: nn.Module,
        optimizer: torch.optim.Optimizer,
        opts: dict[str, Any],
        device: torch.device,
    ) -> None:
        if mode.compile_options is not None:
            # Dynamo caches compiled code per code object, at most `recompile_limit` variants:
            # the same closures of an earlier run in this process (the bench trains dozens of
            # models) would fill it, and the rest would fall back to eager without a word.
            torch._dynamo.reset()
        self.aux = aux
        self.optimizer = optimizer

        def forward(batch: Batch) -> StepStats:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = method.objective(model, batch, opts)
            acts = {k: v.float() for k, v in out.acts.items()}
            terms = method.penalty(aux, acts, batch.progress, opts)
            losses = {**out.extra.losses, **terms.losses}
            loss = out.loss + sum(losses.values(), torch.zeros((), device=device))
            logged = {"loss": out.loss, **losses, **out.extra.logs, **terms.logs}
            correct = (out.logits.detach().argmax(1) == batch.y).sum()
            return StepStats(loss, correct, {k: v.detach() for k, v in logged.items()})

        def after_step(progress: Progress) -> None:
            method.after_step(model, aux, progress, opts)

        # Static shapes: a run has two batch sizes (full and the epoch's tail), and a static
        # graph per size beats one dynamic graph (CUDA graphs record per shape anyway).
        self._forward = mode.wrap(forward, dynamic=False)
        self._optimizer_step = mode.wrap(optimizer.step, dynamic=False)
        # The hooks read the step count (every-k-steps schedules): let it become symbolic
        # instead of compiling once per step.
        self._after_step = mode.wrap(after_step)

    def forward(self, batch: Batch) -> StepStats:
        """The step's loss and what it logs; nothing learns yet."""
        for p in self.aux.parameters():
            p.grad = None
        return self._forward(batch)

    def update(self, stats: StepStats, progress: Progress) -> None:
        """Backward from `stats.loss`, the optimizer step, then the method's after_step (apart
        from `forward`, so the loop counts a step's loss before a hook fails on spoiled weights)."""
        self.optimizer.zero_grad(set_to_none=True)
        stats.loss.backward()
        self._optimizer_step()
        self._after_step(progress)


class EpochTally:
    """Device-side sums of an epoch's steps: images seen, correct ones, n-weighted logs, and the
    first step whose loss was not finite. The float64 sums add `value · n` in step order, the
    arithmetic of host-side Python floats, so the stored history keeps its bytes.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seen = 0
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.sums: dict[str, torch.Tensor] = {}
        self.bad_step = torch.zeros((), dtype=torch.int64, device=device)  # 0: none yet
        self.bad_loss = torch.zeros((), device=device)

    def add(self, stats: StepStats, n: int, step: int) -> None:
        """Count one step of `n` images (no host sync)."""
        self.seen += n
        self.correct += stats.correct
        for key, value in stats.logged.items():
            scaled = value.double() * n
            total = self.sums.get(key)
            self.sums[key] = scaled + 0.0 if total is None else total + scaled
        first = (self.bad_step == 0) & ~torch.isfinite(stats.loss.detach())
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_loss = torch.where(first, stats.loss.detach().float(), self.bad_loss)

    def check(self, epoch: int) -> None:
        """Raise FloatingPointError naming the epoch and step if a loss was not finite (syncs)."""
        step = int(self.bad_step)
        if step:
            raise FloatingPointError(
                f"loss became {float(self.bad_loss)} at epoch {epoch + 1}, step {step}"
            )

    def means(self) -> dict[str, float]:
        """Per-image means of the logged numbers, in first-seen order (syncs)."""
        return {k: float(v) / self.seen for k, v in self.sums.items()}

    def accuracy(self) -> float:
        """Training accuracy in percent (syncs)."""
        return 100.0 * int(self.correct) / self.seen

"""`robustbench-lr train`: train (or resume) one model and write its checkpoint."""

from __future__ import annotations

import argparse

from robustbench_lr.commands.argtypes import checked_by
from robustbench_lr.commands.common import (
    Flag,
    add_flags,
    add_run_flags,
    json_line,
    load_options,
    settings_flags,
)
from robustbench_lr.config import TrainConfig, from_fields
from robustbench_lr.data import dataset_names
from robustbench_lr.methods import METHODS, all_options
from robustbench_lr.models import ARCHS
from robustbench_lr.step import DEFAULT_STEP_MODE, STEP_MODES
from robustbench_lr.train import train

HELP = "train a model with one method; re-running the same command resumes or skips it"
# The `TrainConfig` fields with a flag of their name (the data limits are `add_run_flags`').
RECIPE = ("epochs", "seed", "width", "batch_size", "lr", "weight_decay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    datasets = "dataset: " + ", ".join(dataset_names()) + f" (default: {d.dataset})"
    step_modes = (
        "how each training step runs (not part of the run's identity; default: "
        f"{DEFAULT_STEP_MODE}): " + "; ".join(f"{n}: {STEP_MODES[n].summary}" for n in STEP_MODES)
    )
    add_flags(
        parser,
        [
            Flag("--dataset", datasets, None, d.dataset),
            Flag("--arch", f"architecture: {', '.join(ARCHS.names())}", None, d.arch),
            Flag("--method", f"training method: {', '.join(METHODS.names())}", None, d.method),
            *settings_flags(TrainConfig, RECIPE),
            Flag("--out", "checkpoint root (default: checkpoints/)", None, "checkpoints"),
            Flag.switch("--no-progress", "hide the progress bars"),
            Flag("--step-mode", step_modes, None, DEFAULT_STEP_MODE, choices=STEP_MODES.names()),
        ],
    )
    add_run_flags(parser, training=True)
    group = parser.add_argument_group(
        "method options (each applies only to the methods that name it)"
    )
    options = [
        Flag(o.flag, f"{o.help} (default: {o.default})".replace("%", "%%"), checked_by(o.type))
        for o in all_options()
    ]
    add_flags(group, options)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the flags describe; validates names and method options early."""
    ARCHS.get(args.arch)
    method = METHODS.get(args.method)
    given = {o.name: v for o in all_options() if (v := getattr(args, o.name, None)) is not None}
    return from_fields(TrainConfig, vars(args), method_options=method.resolve(given))


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    result = train(
        cfg,
        args.out,
        args.device,
        load_options(args),
        progress=not args.no_progress,
        step_mode=args.step_mode,
    )
    if result.rebuilt:
        status = "rebuilt model file and meta.json from the train state (they did not check out)"
    elif result.epochs_run == 0:
        status = "already complete"
    else:
        status = f"trained {result.epochs_run} epoch(s)"
    print(f"{result.folder}: {status}, clean test accuracy {result.clean_acc:.2f}%")
    print(json_line({"checkpoint": str(result.folder), "clean_acc": result.clean_acc}))
    return 0

"""Flags shared by the commands that evaluate a model on a test subset: the model (a trained
`--checkpoint`, your own `--model MODULE:FACTORY` or a `--robustbench` zoo entry), its subset
and where the rows go, loaded as one `target.Target` (`load_target_from`)."""

from __future__ import annotations

import argparse
from typing import Any

from robustbench_lr import results
from robustbench_lr.attacks import DEFAULT_BATCH
from robustbench_lr.attacks.precision import CPU_DEFAULT, CUDA_DEFAULT, PRECISIONS, choose
from robustbench_lr.commands.argtypes import count, dataset, factory, model_name, results_file, seed
from robustbench_lr.commands.common import Flag, add_flags, add_run_flags, load_options
from robustbench_lr.devices import use_device
from robustbench_lr.experiments import Outcome
from robustbench_lr.external import DEFAULT_MODEL_DIR, ExternalTargetSpec
from robustbench_lr.external_build import resolve
from robustbench_lr.target import DEFAULT_N, Target, load_target

DEFAULT_RESULTS = "reports/results.csv"
# The model flags that describe another kind of model than the one named.
_FOREIGN = {
    "checkpoint": ("name", "weights", "model_dir", "threat"),
    "model": ("model_dir", "threat"),
    "robustbench": ("weights",),
}


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model evaluated: exactly one of --checkpoint, --model, --robustbench (`model_spec`)."""
    group = parser.add_argument_group(
        "model", "one of --checkpoint, --model MODULE:FACTORY or --robustbench NAME"
    )
    own = (
        "your own model: an importable callable returning an nn.Module that takes images "
        "in [0, 1] and returns logits (normalization is the model's); needs --dataset"
    )
    weights = (
        "--model's weights: .safetensors, or a state dict saved by torch.save, read with "
        "weights_only=True (default: the factory's own)"
    )
    zoo = "a RobustBench zoo model (e.g. Wong2020Fast), read from --model-dir; needs --dataset"
    model_dir = (
        "RobustBench's model folder, DIR/<dataset>/<threat>/<NAME>.pt (default: models); "
        "--download fetches missing files"
    )
    data = (
        "the dataset --model / --robustbench is evaluated on (its test split); beside "
        "--checkpoint, npz:PATH says where its npz lies now (same content only)"
    )
    name = "--model / --robustbench's name in result rows (default: the factory's or zoo name)"
    add_flags(
        group,
        [
            Flag("--checkpoint", "trained checkpoint folder (holds meta.json)"),
            Flag("--model", own, factory, metavar="MODULE:FACTORY"),
            Flag("--weights", weights, metavar="FILE"),
            Flag("--robustbench", zoo, metavar="NAME"),
            Flag("--model-dir", model_dir, metavar="DIR"),
            Flag("--threat", "RobustBench threat model (default: Linf)", choices=("Linf", "L2")),
            Flag("--dataset", data, dataset, metavar="NAME"),
            Flag("--name", name, model_name),
        ],
    )


def model_spec(args: argparse.Namespace) -> str | ExternalTargetSpec:
    """The checkpoint folder, or the external model the model flags name; a ValueError naming
    the flags when they do not describe exactly one model."""
    given = [flag for flag in ("checkpoint", "model", "robustbench") if getattr(args, flag)]
    if not given:
        raise ValueError(
            "the following arguments are required: --checkpoint (or --model MODULE:FACTORY or "
            "--robustbench NAME, with --dataset)"
        )
    if len(given) > 1:
        raise ValueError(f"--{given[0]} and --{given[1]} name two models; give one")
    kind = given[0]
    stray = [dest for dest in _FOREIGN[kind] if getattr(args, dest) is not None]
    if stray:
        raise ValueError(f"--{stray[0].replace('_', '-')} does not apply to --{kind}")
    if kind == "checkpoint":
        if args.dataset is not None and not args.dataset.startswith("npz:"):
            raise ValueError(
                f"--dataset {args.dataset} does not apply to --checkpoint: it reads the dataset "
                "it was trained on; beside it --dataset takes only npz:PATH, where that npz lies now"
            )
        return args.checkpoint
    if args.dataset is None:
        raise ValueError(f"--{kind} needs --dataset NAME: the data it is evaluated on")
    return ExternalTargetSpec(
        dataset=args.dataset,
        factory=args.model or "",
        weights=args.weights or "",
        robustbench=args.robustbench or "",
        threat=args.threat or "Linf",
        model_dir=args.model_dir or DEFAULT_MODEL_DIR,
        download=args.download,
        name=args.name or "",
    )


def add_eval_flags(
    parser: argparse.ArgumentParser,
    n_default: int | None = DEFAULT_N,
    batch_default: int = DEFAULT_BATCH,
) -> None:
    """The evaluation flags; `n_default` and `batch_default` are the command's settings' own."""
    add_model_flags(parser)
    source = (
        "black-box: craft on this checkpoint (of the target's dataset), evaluate the target "
        "(default: white-box)"
    )
    n = (
        "uniformly sampled test subset size; all if fewer "
        f"(default: {n_default if n_default is not None else 'the whole test set'})"
    )
    precision = (
        "precision attacks craft in; every robust/fooled verdict is strict float32 "
        f"(default: {CPU_DEFAULT} on CPU, {CUDA_DEFAULT} on CUDA)"
    )
    batch = "images per forward pass (default: %(default)s)"
    out = f"results CSV to append to (default: {DEFAULT_RESULTS})"
    add_flags(
        parser,
        [
            Flag("--source", source),
            Flag("--n", n, count, n_default),
            Flag("--seed", "seed of the test subset (default: 0)", seed, 0),
            Flag("--batch-size", batch, count, batch_default),
            Flag("--craft-precision", precision, choices=PRECISIONS.names()),
            Flag("--out", out, results_file, DEFAULT_RESULTS),
        ],
    )
    add_run_flags(parser)


def load_target_from(args: argparse.Namespace, **subset: Any) -> Target:
    """The target the eval flags name, on their subset unless `subset` names another (`evaluate`:
    the whole test split); CPU runs bit-for-bit repeatable (`use_device`).

    Every command that loads a model to attack comes here, so this is also where
    `--craft-precision` takes effect (`precision.choose`; commands without it: the default).
    """
    device = use_device(args.device)
    choose(getattr(args, "craft_precision", None))
    spec = model_spec(args)
    origin = spec if isinstance(spec, str) else resolve(spec)
    subset = subset or {"n": args.n, "seed": args.seed, "source": args.source}
    return load_target(origin, device=device, options=load_options(args), **subset)


def record(outcome: Outcome, out: str, **append: Any) -> int:
    """Print an experiment's summary lines, append its rows to the results file `out` (with
    `results.append`'s keywords `append`) and say how many: how every evaluating command ends."""
    print("\n".join(outcome.lines))
    results.append(out, outcome.rows, **append)
    print(f"{len(outcome.rows)} rows -> {out}")
    return 0

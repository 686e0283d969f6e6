"""Flags shared by commands that evaluate a model on a test subset.

`attack`, `minrho`, `audit` and `analyze` use them: the model (a trained `--checkpoint`, your
own `--model MODULE:FACTORY`, or a `--robustbench` zoo entry), an optional black-box source,
the seeded uniform subset (`--n`, `--seed`), the results file, the device and the precision
attacks craft in (`--craft-precision`). What they load is one `target.Target`
(`load_target_from`); `evaluate` takes the model flags too.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robustbench_lr.attacks import DEFAULT_BATCH
from robustbench_lr.attacks.precision import CPU_DEFAULT, CUDA_DEFAULT, PRECISIONS
from robustbench_lr.commands.argtypes import count, dataset, factory, model_name, seed
from robustbench_lr.commands.common import add_run_flags, load_options
from robustbench_lr.target import DEFAULT_N, Target

if TYPE_CHECKING:  # external imports torch; the parser is built without it
    from robustbench_lr.external import ExternalTarget, ExternalTargetSpec

DEFAULT_RESULTS = "reports/results.csv"
# The flags that describe an external model, and the kind of model each belongs to.
_EXTERNAL_ONLY = {"dataset": "--dataset", "name": "--name"}
_FACTORY_ONLY = {"weights": "--weights"}
_ZOO_ONLY = {"model_dir": "--model-dir", "threat": "--threat"}


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model evaluated: exactly one of --checkpoint, --model, --robustbench (`model_spec`)."""
    group = parser.add_argument_group(
        "model", "one of --checkpoint, --model MODULE:FACTORY or --robustbench NAME"
    )
    group.add_argument(
        "--checkpoint", default=None, help="trained checkpoint folder (holds meta.json)"
    )
    group.add_argument(
        "--model",
        type=factory,
        default=None,
        metavar="MODULE:FACTORY",
        help="your own model: an importable callable returning an nn.Module that takes images "
        "in [0, 1] and returns logits (normalization is the model's); needs --dataset",
    )
    group.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="--model's weights: .safetensors, or a state dict saved by torch.save, read with "
        "weights_only=True (default: the factory's own)",
    )
    group.add_argument(
        "--robustbench",
        default=None,
        metavar="NAME",
        help="a RobustBench zoo model (e.g. Wong2020Fast), read from --model-dir; needs --dataset",
    )
    group.add_argument(
        "--model-dir",
        default=None,
        metavar="DIR",
        help="RobustBench's model folder, DIR/<dataset>/<threat>/<NAME>.pt (default: models); "
        "--download fetches missing files",
    )
    group.add_argument(
        "--threat",
        default=None,
        choices=("Linf", "L2"),
        help="RobustBench threat model (default: Linf)",
    )
    group.add_argument(
        "--dataset",
        type=dataset,
        default=None,
        metavar="NAME",
        help="the dataset --model / --robustbench is evaluated on (its test split); beside "
        "--checkpoint, npz:PATH says where its npz lies now (same content only)",
    )
    group.add_argument(
        "--name",
        type=model_name,
        default=None,
        help="--model / --robustbench's name in result rows (default: the factory's or zoo name)",
    )


def model_spec(args: argparse.Namespace) -> str | ExternalTargetSpec:
    """The checkpoint folder, or the external model the model flags name; a ValueError naming
    the flags when they do not describe exactly one model."""
    from robustbench_lr.external import DEFAULT_MODEL_DIR, ExternalTargetSpec

    given = [flag for flag in ("checkpoint", "model", "robustbench") if getattr(args, flag)]
    if not given:
        raise ValueError(
            "the following arguments are required: --checkpoint (or --model MODULE:FACTORY or "
            "--robustbench NAME, with --dataset)"
        )
    if len(given) > 1:
        raise ValueError(f"--{given[0]} and --{given[1]} name two models; give one")
    kind = given[0]
    foreign = {
        "checkpoint": {"name": "--name", **_FACTORY_ONLY, **_ZOO_ONLY},
        "model": _ZOO_ONLY,
        "robustbench": _FACTORY_ONLY,
    }[kind]
    stray = [flag for dest, flag in foreign.items() if getattr(args, dest) is not None]
    if stray:
        raise ValueError(f"{stray[0]} does not apply to --{kind}")
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


def model_origin(args: argparse.Namespace) -> str | ExternalTarget:
    """What `target.load_target` takes: the checkpoint folder, or the external model built.

    Every command that loads a model to attack comes here first, so this is also where
    `--craft-precision` takes effect (`precision.choose`; commands without it: the default).
    """
    from robustbench_lr.attacks.precision import choose
    from robustbench_lr.external_build import resolve

    choose(getattr(args, "craft_precision", None))

    spec = model_spec(args)
    return spec if isinstance(spec, str) else resolve(spec)


def add_eval_flags(
    parser: argparse.ArgumentParser,
    n_default: int | None = DEFAULT_N,
    batch_default: int = DEFAULT_BATCH,
) -> None:
    """The model flags, --source, --n, --seed, --batch-size, --craft-precision, --out, --device
    and the data flags; `n_default` and `batch_default` are the command's settings' own."""
    add_model_flags(parser)
    parser.add_argument(
        "--source",
        default=None,
        help="black-box: craft on this checkpoint (of the target's dataset), evaluate the target "
        "(default: white-box)",
    )
    parser.add_argument(
        "--n",
        type=count,
        default=n_default,
        help="uniformly sampled test subset size; all if fewer "
        f"(default: {n_default if n_default is not None else 'the whole test set'})",
    )
    parser.add_argument("--seed", type=seed, default=0, help="seed of the test subset (default: 0)")
    parser.add_argument(
        "--batch-size",
        type=count,
        default=batch_default,
        help="images per forward pass (default: %(default)s)",
    )
    parser.add_argument(
        "--craft-precision",
        default=None,
        choices=PRECISIONS.names(),
        help="precision attacks craft in; every robust/fooled verdict is strict float32 "
        f"(default: {CPU_DEFAULT} on CPU, {CUDA_DEFAULT} on CUDA)",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_RESULTS,
        help=f"results CSV to append to (default: {DEFAULT_RESULTS})",
    )
    add_run_flags(parser)


def load_target_from(args: argparse.Namespace) -> Target:
    """The target the eval flags name; CPU runs bit-for-bit repeatable (`use_device`)."""
    from robustbench_lr.devices import use_device
    from robustbench_lr.target import load_target

    device = use_device(args.device)
    return load_target(
        model_origin(args),
        n=args.n,
        seed=args.seed,
        source=args.source,
        device=device,
        options=load_options(args),
    )

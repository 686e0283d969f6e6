"""`robustbench-lr analyze KIND`: run a registered representation analysis on a checkpoint.

The command is the face that loads: the model flags name the model, `--n/--seed` its test
subset, and the analysis entry whether the training split comes along (`Analysis.needs_train`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr import results
from robustbench_lr.analysis import ANALYSES, AnalysisOptions
from robustbench_lr.commands.argtypes import comma_list, count, results_file, seed
from robustbench_lr.commands.common import Flag, add_flags, add_run_flags, load_options
from robustbench_lr.commands.evalflags import DEFAULT_RESULTS, add_model_flags, model_spec
from robustbench_lr.config import from_fields
from robustbench_lr.external_build import resolve

HELP = "representation analyses of a checkpoint or an external model (rows go to the results file)"


def _dim(text: str) -> int:
    """`full` (no reduction, Table 5's first column) is stored as 0 (analysis.compression.FULL)."""
    if text == "full":
        return 0
    try:
        return count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text} is neither 'full' nor an integer >= 1") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """KIND plus the flags every analysis shares; analysis-specific knobs go through --option."""
    kinds = "; ".join(f"{name}: {ANALYSES[name].summary}" for name in ANALYSES)
    parser.add_argument(
        "kind", choices=ANALYSES.names(), metavar="KIND", help=f"which analysis ({kinds})"
    )
    add_model_flags(parser)
    out = f"results file to append to; figures go beside it (default: {DEFAULT_RESULTS})"
    tap = (
        "representation tap (default: the analysis' own, usually the layer before the last "
        "FC); for --model / --robustbench, any submodule's dotted path, e.g. layer4.1"
    )
    n = (
        "the seeded uniform subset of n test images that `attack --n N --seed S` uses "
        "(cushion: a stratified subset of n training images; default: the whole set)"
    )
    dims = "comma-separated target dimensions for analyses that reduce (e.g. full,10,5)"
    option = (
        "analysis-specific setting (repeatable), e.g. --option k=512 (rank); attacks=deepfool,ifsgm, "
        "eps=8/255, steps=20, source=CHECKPOINT for black-box (maxmargin, stability); "
        "bins_per_decade=2 (stability); labels=DATASET (transfer)"
    )
    add_flags(
        parser,
        [
            Flag("--out", out, results_file, DEFAULT_RESULTS),
            Flag("--tap", tap),
            Flag("--n", n, count),
            Flag("--seed", "seed of any randomized step (default: 0)", seed, 0),
            Flag("--dims", dims, comma_list(_dim), ()),
            Flag.pairs("--option", option),
        ],
    )
    add_run_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Load the target, run the analysis, append its rows, and print its summary and the files
    it wrote."""
    options = from_fields(
        AnalysisOptions,
        vars(args),
        dims=tuple(args.dims),
        load=load_options(args),
        extra=dict(args.option),
        results=Path(args.out),
    )
    out = options.results
    spec = model_spec(args)
    analysis = ANALYSES[args.kind]
    analysis.check_options(options.extra)
    if analysis.suite_models_only and not isinstance(spec, str):
        # The hybrids count the parameters of the stages after the tap, the cushion rebuilds
        # the architecture freshly initialized, the transfer reads the checkpoint's dataset.
        takes = [k for k in ANALYSES.names() if not ANALYSES[k].suite_models_only]
        raise ValueError(
            f"analysis {args.kind} needs a trained --checkpoint of the suite's architectures; "
            f"--model and --robustbench models take: {', '.join(takes)}"
        )
    origin = Path(spec) if isinstance(spec, str) else resolve(spec)
    outcome = analysis.run(analysis.load(origin, options), options)
    results.append(out, outcome.rows)
    for line in outcome.lines:
        print(line)
    print(f"{len(outcome.rows)} rows -> {out}")
    for path in outcome.files:
        print(f"wrote {path}")
    return 0

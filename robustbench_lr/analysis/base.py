"""The analysis plug-in: a named function from a loaded target to rows of the results file.

Every representation analysis of the paper (Section 4 of SPEC) takes the model under test on its
seeded test subset (`target.Target`) and returns tidy rows (and maybe a figure). It never loads
the model it describes: the faces (`robustbench-lr analyze KIND`, `robustbench_lr.analyze`, the
bench's analysis jobs) load it, so every face hands an analysis the same images for the same
`--n/--seed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustbench_lr.data import LoadOptions
from robustbench_lr.devices import use_device
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.experiments import Outcome
from robustbench_lr.models import ARCHS, StagedNet, TapRole, last_tap
from robustbench_lr.settings import accepted, from_text
from robustbench_lr.target import Target, load_target

# How an `--option` value is read: its text as the value, or ValueError saying what is valid.
OptionParser = Callable[[str], Any]


def number(kind: Any) -> OptionParser:
    """One value of a numeric settings type (`settings.Count`, `settings.Budget`, ...)."""

    def parse(text: str) -> Any:
        try:
            return from_text(kind, text)
        except ValueError:
            raise ValueError(accepted(kind)) from None

    return parse


def listed(parse: OptionParser, words: str) -> OptionParser:
    """A comma-separated, non-empty list of `parse`'s values (`words` says what each is)."""

    def parse_all(text: str) -> list[Any]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            if parts:
                return [parse(part) for part in parts]
        except (ValueError, KeyError):
            pass
        raise ValueError(f"comma-separated, each {words}")

    return parse_all


@dataclass(frozen=True)
class AnalysisOptions:
    """The flags every analysis shares, plus free-form `--option KEY=VALUE` pairs in `extra`.

    `tap=None` means the analysis' own default tap; `n=None` the checkpoint's whole test set
    (else the seeded uniform subset of n images that `attack --n` draws); `dims` lists target
    dimensions for analyses that reduce (PCA), empty when not given. `n`, `seed`, `device`
    and `load` also say which target a face loads; the analyses that take a further
    subset (cushion's training images, transfer's stratified splits) read them again.
    `results` is the results file the rows are bound for: figures go beside it, and an
    analysis that draws every model of a dataset (rank's Fig. 2) reads the rows already there.
    A face sets it where it writes (the bench: its report folder's, when the job runs).
    """

    tap: str | None = None
    n: int | None = None
    seed: int = 0
    dims: tuple[int, ...] = ()
    device: str = "auto"
    load: LoadOptions = field(default_factory=LoadOptions)
    extra: Mapping[str, str] = field(default_factory=dict)
    results: Path | None = None

    def get(self, key: str, kind: Callable[[str], Any], default: Any) -> Any:
        """An `extra` value converted by `kind`, or `default` when it was not given."""
        return kind(self.extra[key]) if key in self.extra else default


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: `run(target, options)`, an experiment (`experiments.Outcome`).

    `target` is the model under test on the test subset `options` names; its training split is
    one image unless `needs_train`, so large datasets cost memory only where they are read.
    `run` must not write to the results file itself (the face appends its rows); it may write
    figures beside `options.results` (analysis/plotting.py) and list them in `Outcome.files`.

    `crafts_adversarial`: the analysis attacks the model, so a bench runs it on the attacks'
    test subset (the same images as the attack rows) rather than the whole test set. `boxes`:
    the runs a bench gives it — `white` (the analysed model's own gradients), `black` (examples
    crafted on the N-LR model, `--option source=`) and `matched` (Table 6's N-LR protocol,
    `--option stop_on=`); only analyses that craft examples have more than `white`.
    `suite_models_only`: it needs one of the suite's architectures or a checkpoint folder, so
    it cannot read an external (`--model` / `--robustbench`) network. `options`: the
    `--option` keys it reads (`AnalysisOptions.get`), so a misspelt one is refused instead of
    silently leaving its default in force.
    """

    name: str
    summary: str
    run: Callable[[Target, AnalysisOptions], Outcome]
    crafts_adversarial: bool = False
    boxes: tuple[str, ...] = ("white",)
    suite_models_only: bool = False
    needs_train: bool = False
    options: Mapping[str, OptionParser] = field(default_factory=dict)

    def check_options(self, extra: Mapping[str, Any]) -> None:
        """Refuse an `--option` key this analysis does not read, naming the ones it does, and
        a value its parser refuses, saying what it takes."""
        for key, value in extra.items():
            if key not in self.options:
                problem = f"is not an option of analysis {self.name}"
                raise InvalidArgument("option", key, list(self.options) or "none", problem)
            try:
                self.options[key](str(value))
            except ValueError as err:
                raise InvalidArgument(f"option {key}", value, str(err)) from None

    def load(self, origin: Any, options: AnalysisOptions) -> Target:
        """`origin` (a checkpoint folder or an external model) as the target this analysis
        reads; a bench job loads through its target spec instead."""
        return load_analysed(origin, options, self.needs_train)


def load_analysed(origin: Any, options: AnalysisOptions, train: bool = False) -> Target:
    """`origin` on the test subset `options` names, with the training split only when `train`."""
    return load_target(
        origin,
        n=options.n,
        seed=options.seed,
        device=use_device(options.device),
        options=options.load,
        train=train,
    )


def analysis_tap(
    model: StagedNet, options: AnalysisOptions, arch: str, default: TapRole = last_tap
) -> str:
    """The tap `--tap` asked for, else the architecture's `default` (by default the
    representation before the last FC, where the paper reads it). An external model
    (`external.TappedModel`) has no default: its taps are its submodules' dotted paths."""
    known = model.tap_names  # a zoo network has hundreds of submodules: the error shows 20
    more = f", ... ({len(known)} in all)" if len(known) > 20 else ""
    taps = f"--tap MODULE.PATH (tap= in Python), one of: {', '.join(known[:20])}{more}"
    if options.tap is None and arch not in ARCHS:
        problem = f"leaves {arch}, not one of the suite's architectures, with no default tap"
        raise InvalidArgument("tap", None, taps, problem)
    name = options.tap or default(arch)
    if name not in known:
        raise InvalidArgument("tap", name, taps, "is not a submodule of this model")
    return name

"""What every bench stage plans with: the `Job`, the `BenchContext`, the `STAGES` registry, the
model under test as a picklable spec (`TargetSpec`: the profile's models are listed as such, and
a job carries one), and the one job function a worker runs for every job that evaluates a model
(`run_experiment`: load the target, run the experiment).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.data import LoadOptions
from robustbench_lr.devices import resolve_device, use_device
from robustbench_lr.experiments import Experiment, Outcome
from robustbench_lr.external import ExternalTargetSpec
from robustbench_lr.external_build import resolve
from robustbench_lr.files import file_digest
from robustbench_lr.profiles import Profile
from robustbench_lr.registry import Registry
from robustbench_lr.target import load_target

log = logging.getLogger(__name__)


RESULTS_FILE = "results.csv"


BENCH_LOCK = ".bench.lock"


@dataclass(frozen=True)
class Job:
    """One unit of bench work.

    `key` names it in the ledger; `spec` is the canonical text of its settings (a changed
    setting re-runs it); `inputs` are the checkpoint folders it reads (for a training job, the
    one it writes), whose commit points must be unchanged for its rows to stay valid. `run`
    gets the report folder (for figures and audit reports) and returns the job's rows.
    """

    stage: str
    key: str
    spec: str
    inputs: tuple[Path, ...]
    run: Callable[[Path], Outcome]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:20]


@dataclass
class BenchContext:
    """What planners need: the profile, where things go, and shared loaded data."""

    profile: Profile
    out_dir: Path
    ckpt_root: Path
    device: str
    load_options: LoadOptions

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS_FILE

    def folder(self, cfg: TrainConfig) -> Path:
        return checkpoint_dir(self.ckpt_root, cfg)

    def targets(self) -> list[TargetSpec]:
        """Every model the experiments run on, by name (`target_of` says how a job loads it):
        the trained ones, then the external ones."""
        trained = [TargetSpec(str(self.folder(cfg)), cfg=cfg) for cfg in self.profile.models]
        external = [
            TargetSpec(f"{spec.kind}:{spec.label}", external=spec)
            for spec in self.profile.external_models
        ]
        return trained + external

    def source_of(self, target: TargetSpec) -> str | None:
        """The folder black-box examples for `target` are crafted on, or None: for a trained
        model `Profile.black_box_source` (by default the source method's model of another
        seed); for an external one, the profile's first source-method model of its dataset (no
        seed of the suite is shared with a model trained elsewhere)."""
        if target.cfg is not None:
            source = self.profile.black_box_source(target.cfg)
        else:
            method, dataset = self.profile.attacks.blackbox_source, target.external.dataset
            kin = [m for m in self.profile.models if (m.method, m.dataset) == (method, dataset)]
            source = kin[0] if kin else None
        return str(self.folder(source)) if source is not None else None


Planner = Callable[[BenchContext], list[Job]]


STAGES: Registry[Planner] = Registry("bench stage")


def settings_text(settings: Any, ctx: BenchContext) -> str:
    """Canonical text of a job's settings, with the device it runs on (bf16 CUDA != CPU)."""
    return json.dumps(
        {"settings": settings, "device": resolve_device(ctx.device).type},
        sort_keys=True,
        default=_plain,
    )


def _plain(value: Any) -> Any:
    """JSON for the settings dataclasses a job carries (Sweep, Search, AnalysisOptions, ...),
    less the fields marked `{"spec": False}`: what another field already names."""
    if is_dataclass(value):
        hidden = {each.name for each in fields(value) if not each.metadata.get("spec", True)}
        return {name: item for name, item in asdict(value).items() if name not in hidden}
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a plain job setting")


@dataclass(frozen=True)
class TargetSpec:
    """A `target.Target` by name: a model the bench evaluates, as plain data a job carries
    instead of loaded tensors.

    The model is one of the profile's trained configs (`cfg`) or an external model
    (`external`: a user's factory and weights, a RobustBench entry), which has no training
    job. `checkpoint` is the trained model's folder, or the external model's label its job keys
    carry ("external:<name>" / "robustbench:<name>"); `weights` is then the digest of its
    weights file, so a changed file changes the job's spec and re-runs it. `BenchContext.targets`
    lists the models by name only; `target_of` adds what a job loads: the black-box `source`,
    the subset size `n`, the device and data options, and `train` (keep the training split, for
    the analyses whose entry says `needs_train`). `cfg` stays out of the job's spec text and
    out of equality: the folder it names already says which model it is.
    """

    checkpoint: str
    source: str | None = None
    n: int | None = None
    device: str = ""
    data_root: str = ""
    download: bool = False
    external: ExternalTargetSpec | None = None
    weights: str = ""
    train: bool = False
    cfg: TrainConfig | None = field(default=None, compare=False, metadata={"spec": False})


def run_experiment(
    experiment: Experiment, target: TargetSpec, settings: tuple[Any, ...], out: Path
) -> Outcome:
    """Every bench job that evaluates a model: load `target` once, run `experiment` with each of
    `settings` on it. Settings with a `results` field (the analyses', the audit's) get the
    report's results file, beside which their figures and audit.md go: the report folder is
    where the job runs, not part of what it computes, so it stays out of the job's spec."""
    loaded = load_target(
        target.checkpoint if target.external is None else resolve(target.external),
        n=target.n,
        source=target.source,
        device=use_device(target.device),
        options=LoadOptions(data_root=target.data_root, download=target.download),
        train=target.train,
    )
    outcome = Outcome()
    for each in settings:
        if "results" in {f.name for f in fields(each)}:
            each = replace(each, results=out / RESULTS_FILE)
        outcome.add(experiment(loaded, each))
    return outcome


def target_of(
    ctx: BenchContext, target: TargetSpec, source: str | None, n: int | None, train: bool = False
) -> TargetSpec:
    """`target` (as `BenchContext.targets` lists it) as a job loads it: with `source` (None:
    white-box), `n` test images (None: the whole split), the context's device and data options,
    and an external model's weights digest."""
    return replace(
        target,
        source=source,
        n=n,
        device=ctx.device,
        data_root=ctx.load_options.data_root,
        download=ctx.load_options.download,
        weights=_weights_digest(target.external) if target.external else "",
        train=train,
    )


def _weights_digest(spec: ExternalTargetSpec) -> str:
    """The digest of the file an external model's weights come from ("" if none is on disk:
    the factory's own weights, or a zoo model RobustBench is yet to download)."""
    if spec.factory:
        path = Path(spec.weights)
    else:  # RobustBench's layout (`zoo.model_files`; an ensemble's parts are not digested)
        path = Path(spec.model_dir) / spec.dataset / spec.threat / f"{spec.robustbench}.pt"
    return file_digest(path) if spec.weights or not spec.factory and path.is_file() else ""


def make_job(
    ctx: BenchContext,
    stage: str,
    key: str,
    target: TargetSpec,
    experiment: Experiment,
    *settings: Any,
    reads: tuple[str, ...] = (),
) -> Job:
    """The job running `experiment` on `target` with each of `settings` (`run_experiment`): the
    target and the settings are its spec; the checkpoints the target names, and those `reads`
    names (an analysis' companions), are its inputs. The experiment itself is no part of the
    spec: the key names it, and the ledger's code identity covers its code."""
    inputs = [*([target.checkpoint] if target.external is None else []), target.source, *reads]
    spec = settings_text([stage, [target, *settings]], ctx)
    work = partial(run_experiment, experiment, target, settings)
    return Job(stage, key, spec, tuple(Path(f) for f in inputs if f), work)


def track_targets(ctx: BenchContext, grid: Any) -> Iterator[tuple[TargetSpec, str]]:
    """Each model a track's grid (corruptions, L2, shifts) covers, with its dataset: none while
    the track is off, else the models of its `datasets` (all when empty). One selection for every
    track, so the key means the same in each `[section]` of a profile."""
    if grid.enabled:
        for target in ctx.targets():
            dataset = target.cfg.dataset if target.cfg is not None else target.external.dataset
            if not grid.datasets or dataset in grid.datasets:
                yield target, dataset

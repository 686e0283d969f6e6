"""`make bench`: train what is missing, run every experiment not yet done, render everything.

The bench is a list of `Job`s grouped into stages (train, attacks, minrho, audit, analyses).
Each job's rows go to its own shard `<out>/jobs/<key digest>.csv`, and the ledger
(`ledger.py`, `<out>/bench_ledger.jsonl`) records, per job, what it read and wrote. A job counts
as done only while all of that still holds; anything else is re-run and the summary says why.
`results.csv` is then merged from the shards of the profile's done jobs, in plan order, by this
one writer. A kill at any moment loses at most the jobs that were running: shards are written to
temporary names and renamed, ledger lines are appended and fsynced. Training resumes inside a
model from its last epoch (see `train.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from tqdm import tqdm

from robustbench_lr import checkpoints, locks, perturbed, results
from robustbench_lr.attacks.search import SearchSettings
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.corruptions import C_FOLDERS
from robustbench_lr.data import Data, LoadOptions, load
from robustbench_lr.devices import resolve_device, use_device
from robustbench_lr.executors import Executor, Finished, Resources, SerialExecutor, Task
from robustbench_lr.experiments import Outcome, Rows
from robustbench_lr.experiments.attack import Sweep, run_step_curve, run_sweep
from robustbench_lr.experiments.corruption import CorruptionSettings, run_corruptions
from robustbench_lr.experiments.minrho import MinRho, run_search
from robustbench_lr.files import atomic_write_text, file_digest, remove_stale_temporaries
from robustbench_lr.ledger import SHARDS_DIR, CheckpointDigests, Ledger, code_identity
from robustbench_lr.profiles import Profile, selects
from robustbench_lr.registry import Registry
from robustbench_lr.target import ModelOrigin, Target, load_target

if TYPE_CHECKING:
    from robustbench_lr.analysis import AnalysisOptions
    from robustbench_lr.external import ExternalModelSpec

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

    def black_box_source(self, cfg: TrainConfig) -> str | None:
        """The folder black-box examples for `cfg` are crafted on (`Profile.black_box_source`:
        by default the source method's model of another seed), or None."""
        source = self.profile.black_box_source(cfg)
        return str(self.folder(source)) if source is not None else None

    def folder(self, cfg: TrainConfig) -> Path:
        return checkpoint_dir(self.ckpt_root, cfg)

    def subjects(self) -> list[Subject]:
        """Every model the experiments run on: the trained ones, then the external ones."""
        trained = [Subject(str(self.folder(cfg)), cfg=cfg) for cfg in self.profile.models]
        external = [
            Subject(f"{spec.kind}:{spec.label}", external=spec)
            for spec in self.profile.external_models
        ]
        return trained + external

    def source_of(self, subject: Subject) -> str | None:
        """The black-box source folder of `subject`: `black_box_source` for a trained model;
        for an external one, the profile's first source-method model of its dataset (no seed
        of the suite is shared with a model trained elsewhere)."""
        if subject.cfg is not None:
            return self.black_box_source(subject.cfg)
        method, dataset = self.profile.attacks.blackbox_source, subject.external.dataset
        sources = [m for m in self.profile.models if (m.method, m.dataset) == (method, dataset)]
        return str(self.folder(sources[0])) if sources else None


Planner = Callable[[BenchContext], list[Job]]
STAGES: Registry[Planner] = Registry("bench stage")


@STAGES.register("train")
def plan_training(ctx: BenchContext) -> list[Job]:
    """One job per model: train (or resume) it, then record its clean accuracy (Tables 7-8)."""
    return [
        Job(
            "train",
            f"train:{ctx.folder(cfg)}:{cfg.epochs}",
            _spec(cfg.to_dict(), ctx),
            (ctx.folder(cfg),),
            partial(_train_job, cfg, str(ctx.ckpt_root), ctx.device, ctx.load_options),
        )
        for cfg in ctx.profile.models
    ]


_DATA: dict[tuple, Data] = {}


def _data_for(cfg: TrainConfig, options: LoadOptions) -> Data:
    """Each dataset loaded once per process (many models of a bench share it)."""
    options = replace(options, svhn_extra=cfg.svhn_extra)
    key = (cfg.dataset, cfg.train_limit, cfg.test_limit, options)
    if key not in _DATA:
        _DATA[key] = load(cfg.dataset, options, cfg.train_limit, cfg.test_limit)
    return _DATA[key]


def _train_job(
    cfg: TrainConfig, root: str, device: str, options: LoadOptions, _out: Path
) -> Outcome:
    from robustbench_lr.train import train

    data = _data_for(cfg, options)
    result = train(cfg, root, device, options, False, data)
    meta = checkpoints.verify(result.folder)
    row = results.make_row(
        **results.model_fields(meta, result.folder),
        experiment="clean",
        attack="clean",
        metric="clean_acc",
        value=meta["clean_acc"],
        n=len(data.y_test),
    )
    done = "already complete" if result.epochs_run == 0 else f"{result.epochs_run} epoch(s)"
    return Outcome([row], [f"{result.folder}: {done}, clean {result.clean_acc:.2f}%"])


@STAGES.register("numerics")
def plan_numerics(ctx: BenchContext) -> list[Job]:
    """With `numerics_spread = true`, on the CPU: each trained model trained again under a
    perturbed code path (`perturbed.py`); how far its clean accuracy moves is its numerics
    spread, a leaderboard column."""
    if not ctx.profile.numerics_spread or resolve_device(ctx.device).type != "cpu":
        return []
    return [
        Job(
            "numerics",
            f"numerics:{ctx.folder(cfg)}:{cfg.epochs}",
            _spec(cfg.to_dict(), ctx),
            (ctx.folder(cfg),),
            partial(_numerics_job, cfg, str(ctx.ckpt_root), ctx.load_options.data_root),
        )
        for cfg in ctx.profile.models
    ]


def _numerics_job(cfg: TrainConfig, root: str, data_root: str, _out: Path) -> Outcome:
    folder = checkpoint_dir(root, cfg)
    meta = checkpoints.verify(folder)
    other = perturbed.retrain(cfg, root, data_root)
    move = abs(other["clean_acc"] - meta["clean_acc"])
    values = dict(zip(perturbed.METRICS, (other["clean_acc"], move), strict=True))
    rows = [
        results.make_row(
            **results.model_fields(meta, folder),
            experiment=perturbed.EXPERIMENT,
            attack=perturbed.ATTACK,
            metric=metric,
            value=value,
        )
        for metric, value in values.items()
    ]
    return Outcome(
        rows, [f"{folder}: perturbed path clean {other['clean_acc']:.2f}% ({move:.2f} pp)"]
    )


def _spec(settings: Any, ctx: BenchContext) -> str:
    """Canonical text of a job's settings, with the device it runs on (bf16 CUDA != CPU)."""
    return json.dumps(
        {"settings": settings, "device": resolve_device(ctx.device).type},
        sort_keys=True,
        default=_plain,
    )


def _plain(value: Any) -> Any:
    """JSON for the settings dataclasses a job carries (Sweep, Search, AnalysisOptions, ...)."""
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a plain job setting")


@dataclass(frozen=True)
class TargetSpec:
    """A `target.Target` by name: plain data a job carries instead of loaded tensors.

    `checkpoint` is a checkpoint folder, or for an external model (`external`) the label its
    job keys carry; `weights` is then the digest of its weights file, so a changed file
    changes the job's spec and re-runs it.
    """

    checkpoint: str
    source: str | None
    n: int | None
    device: str
    data_root: str
    download: bool
    external: ExternalModelSpec | None = None
    weights: str = ""

    def origin(self) -> str | ModelOrigin:
        """What `load_target`, the audit and the analyses take: the folder, or the model."""
        if self.external is None:
            return self.checkpoint
        from robustbench_lr.external import resolve

        return resolve(self.external)

    def load(self) -> Target:
        return load_target(
            self.origin(),
            n=self.n,
            source=self.source,
            device=use_device(self.device),
            options=LoadOptions(data_root=self.data_root, download=self.download),
        )


@dataclass(frozen=True)
class Subject:
    """A model the bench evaluates: one of the profile's trained configs, or an external model
    (a user's factory and weights, a RobustBench entry), which has no training job."""

    label: str  # the checkpoint folder, or "external:<name>" / "robustbench:<name>"
    cfg: TrainConfig | None = None
    external: ExternalModelSpec | None = None


def _target(ctx: BenchContext, subject: Subject, source: str | None, n: int | None) -> TargetSpec:
    opts = ctx.load_options
    weights = _weights_digest(subject.external) if subject.external else ""
    return TargetSpec(
        subject.label,
        source,
        n,
        ctx.device,
        opts.data_root,
        opts.download,
        subject.external,
        weights,
    )


def _weights_digest(spec: ExternalModelSpec) -> str:
    """The digest of the file an external model's weights come from ("" if none is on disk:
    the factory's own weights, or a zoo model RobustBench is yet to download)."""
    if spec.factory:
        path = Path(spec.weights)
    else:  # RobustBench's layout (`zoo.model_files`; an ensemble's parts are not digested)
        path = Path(spec.model_dir) / spec.dataset / spec.threat / f"{spec.robustbench}.pt"
    return file_digest(path) if spec.weights or not spec.factory and path.is_file() else ""


def _job(stage: str, key: str, work: Callable[[Path], Outcome], ctx: BenchContext) -> Job:
    """A job running `work` (a partial of plain data): its settings are its spec, and the
    checkpoints its target names are its inputs."""
    target = next(a for a in work.args if isinstance(a, TargetSpec))
    inputs = [*([target.checkpoint] if target.external is None else []), target.source]
    inputs = [folder for folder in inputs if folder]
    spec = _spec([work.func.__name__, list(work.args)], ctx)
    return Job(stage, key, spec, tuple(map(Path, inputs)), work)


def _sweep_job(target: TargetSpec, sweeps: tuple[Sweep, ...], _out: Path) -> Outcome:
    loaded, outcome = target.load(), Outcome()
    for sweep in sweeps:
        outcome.add(run_sweep(loaded, sweep))
    return outcome


def _search_job(target: TargetSpec, search: MinRho, _out: Path) -> Outcome:
    return run_search(target.load(), search)


@STAGES.register("attacks")
def plan_attacks(ctx: BenchContext) -> list[Job]:
    """IFSGM white-box and black-box grids (Tables 1-2), random noise (Table 4), step curves (Fig. 11).

    Black-box examples are crafted on the profile's source model (`Profile.black_box_source`:
    an independently seeded N-LR by default, so N-LR's own black-box rows are the N-LR -> N-LR
    control; the paper's same-seed protocol is `blackbox_protocol = "same-seed"`).
    """
    grid = ctx.profile.attacks
    lists = {"eps": grid.ifsgm_eps, "steps": grid.ifsgm_steps}
    runs = {"ifsgm-white": (Sweep("ifsgm", lists),)}
    if grid.noise_p:
        runs["noise"] = (Sweep("noise", {"p": grid.noise_p}, draws=grid.noise_draws),)
    jobs = []
    for subject in ctx.subjects():
        folder, source = subject.label, ctx.source_of(subject)
        targets = {name: _target(ctx, subject, None, ctx.profile.n) for name in runs}
        if grid.blackbox and source is not None:
            runs_here = {**runs, "ifsgm-black": runs["ifsgm-white"]}
            targets["ifsgm-black"] = _target(ctx, subject, source, ctx.profile.n)
        else:
            runs_here = runs
        for name, sweeps in runs_here.items():
            work = partial(_sweep_job, targets[name], sweeps)
            jobs.append(_job("attacks", f"attack:{name}:{folder}", work, ctx))
        if grid.curves:  # Fig. 11: the curves alone (the grid above scores the attack itself)
            target = _target(ctx, subject, None, ctx.profile.n)
            work = partial(_curve_job, target, grid.curve_eps, max(grid.ifsgm_steps))
            jobs.append(_job("attacks", f"attack:step-curve:{folder}", work, ctx))
        if subject.external is not None:  # a trained model's clean row comes from training
            work = partial(_clean_job, _target(ctx, subject, None, None))
            jobs.append(_job("attacks", f"clean:{folder}", work, ctx))
    return jobs


def _clean_job(target: TargetSpec, _out: Path) -> Outcome:
    """An external model's clean accuracy on the whole test split (a `clean` row, as training
    writes for the suite's own models), and for a zoo model the zoo's reported accuracies
    (`zoo-reported` rows; none when RobustBench's model_info record is not on disk)."""
    from robustbench_lr.evaluation import accuracy

    loaded = target.load()
    acc = accuracy(loaded.model, loaded.x, loaded.y)
    rows = [
        results.make_row(
            **loaded.columns,
            experiment="clean",
            attack="clean",
            metric="clean_acc",
            value=acc,
            n=len(loaded.y),
        )
    ]
    reported = loaded.meta.get("zoo", {})
    rows += [
        results.make_row(
            **loaded.columns,
            experiment=results.ZOO_REPORTED,
            attack="robustbench",
            metric=m,
            value=v,
        )
        for m in results.ZOO_REPORTED_METRICS
        if (v := reported.get(m)) is not None
    ]
    return Outcome(rows, [f"{loaded.checkpoint}: clean {acc:.2f}%"])


def _curve_job(target: TargetSpec, eps: float, steps: int, _out: Path) -> Outcome:
    return run_step_curve(target.load(), "ifsgm", eps, steps)


def _corruption_job(target: TargetSpec, settings: CorruptionSettings, _out: Path) -> Outcome:
    return run_corruptions(target.load(), settings)


@STAGES.register("corruptions")
def plan_corruptions(ctx: BenchContext) -> list[Job]:
    """Accuracy under common corruptions on every model (`experiments.corruption`): generated
    from each model's test subset, or read from the CIFAR-10-C / -100-C files under --data-root."""
    grid = ctx.profile.corruptions
    if not grid.enabled:
        return []
    settings = CorruptionSettings(
        **({"corruptions": grid.corruptions} if grid.corruptions else {}),
        **({"severities": grid.severities} if grid.severities else {}),
        source=grid.source,
        seed=grid.seed,
        data_root=ctx.load_options.data_root,
    )
    n = grid.n or ctx.profile.n
    # The published files exist for some datasets only: the profile's other models (SVHN,
    # CIFAR-100 coarse) are left out of a `files` track rather than failing their jobs.
    return [
        _job(
            "corruptions",
            f"corruptions:{subject.label}",
            partial(_corruption_job, _target(ctx, subject, None, n), settings),
            ctx,
        )
        for subject in ctx.subjects()
        if grid.source == "generate" or _dataset_of(subject) in C_FOLDERS
        if not grid.datasets or _dataset_of(subject) in grid.datasets
    ]


def _dataset_of(subject: Subject) -> str:
    return subject.cfg.dataset if subject.cfg is not None else subject.external.dataset


@STAGES.register("minrho")
def plan_minrho(ctx: BenchContext) -> list[Job]:
    """Minimum-perturbation searches, white-box and black-box (Tables 3 and 10, Fig. 4a/9)."""
    grid = ctx.profile.attacks
    if not grid.minrho:
        return []
    search = MinRho(grid.minrho, SearchSettings(per_sample=grid.curves, **grid.minrho_options))
    jobs = []
    for subject in ctx.subjects():
        # The selector names training fields: an external model takes part only without one.
        if not (selects(grid.minrho_only, subject.cfg) if subject.cfg else not grid.minrho_only):
            continue
        folder = subject.label
        white = partial(_search_job, _target(ctx, subject, None, grid.minrho_n), search)
        jobs.append(_job("minrho", f"minrho:white:{folder}", white, ctx))
        source = ctx.source_of(subject)
        if grid.blackbox and source is not None:
            black = partial(_search_job, _target(ctx, subject, source, grid.minrho_n), search)
            jobs.append(_job("minrho", f"minrho:black:{folder}", black, ctx))
    return jobs


def _audit_job(target: TargetSpec, options: dict[str, Any], out: Path) -> Outcome:
    """The audit of one model; its Markdown report goes into the report folder."""
    from robustbench_lr.audit import AuditOptions, audit_checkpoint

    done = audit_checkpoint(
        target.origin(),
        AuditOptions(**options),
        source=target.source,
        device=target.device,
        load_options=LoadOptions(data_root=target.data_root, download=target.download),
    )
    atomic_write_text(out / done.filename, done.markdown)
    report = done.report
    lines = [f"{check.status.upper():4s}  {check.name}: {check.detail}" for check in report.checks]
    return Outcome(done.rows, lines)


@STAGES.register("audit")
def plan_audit(ctx: BenchContext) -> list[Job]:
    """The robustness audit on every model: gradient-masking checks and the worst case per example."""
    profile = ctx.profile
    if not profile.audit:
        return []
    options = {
        "eps": profile.audit_eps,
        "n": profile.audit_n,
        "queries": profile.attacks.square_queries,
        **profile.audit_options,
    }
    jobs = []
    for subject in ctx.subjects():
        target = _target(ctx, subject, ctx.source_of(subject), profile.audit_n)
        work = partial(_audit_job, target, options)
        jobs.append(_job("audit", f"audit:{subject.label}", work, ctx))
    return jobs


def _analysis_job(kind: str, target: TargetSpec, options: AnalysisOptions, out: Path) -> Outcome:
    # Figures go beside the results file, i.e. into the report folder.
    from robustbench_lr.analysis import ANALYSES

    origin = target.origin()
    checkpoint = Path(origin) if isinstance(origin, str) else origin
    result = ANALYSES.get(kind).run(checkpoint, out / RESULTS_FILE, options)
    return Outcome(result.rows, result.lines)


@STAGES.register("analyses")
def plan_analyses(ctx: BenchContext) -> list[Job]:
    """Every analysis of the profile on every model (rows and figures under <out>/)."""
    from robustbench_lr.analysis import ANALYSES, AnalysisOptions

    jobs = []
    for subject in ctx.subjects():
        cfg, folder = subject.cfg, subject.label
        extras = {"white": dict(ctx.profile.analysis_options)}
        source = ctx.source_of(subject)
        if ctx.profile.attacks.blackbox and source is not None:
            extras["black"] = {**ctx.profile.analysis_options, "source": source}
        is_source = cfg is not None and cfg.method == ctx.profile.attacks.blackbox_source
        lr_partner = ctx.profile.partner(cfg, ctx.profile.matched_partner) if is_source else None
        if lr_partner is not None:  # Table 6's N-LR protocol (D.5): stop once 1-LR is fooled
            extras["matched"] = {
                **ctx.profile.analysis_options,
                "stop_on": str(ctx.folder(lr_partner)),
            }
        tap = subject.external.tap or None if subject.external else None
        for kind in ctx.profile.analyses:
            analysis = ANALYSES.get(kind)
            if subject.external is not None and (analysis.suite_models_only or tap is None):
                continue  # needs the suite's architecture, or a tap the entry did not name
            # Analyses that attack use the attacks' test subset (profile `n`, the same images);
            # the others describe the representation on the whole test set.
            n = ctx.profile.n if analysis.crafts_adversarial else None
            for box, extra in extras.items():
                if box not in analysis.boxes:
                    continue
                options = AnalysisOptions(
                    tap=tap, n=n, device=ctx.device, load=ctx.load_options, extra=extra
                )
                companions = [extra[k] for k in ("source", "stop_on") if k in extra]
                work = partial(_analysis_job, kind, _target(ctx, subject, None, n), options)
                job = _job("analyses", f"analysis:{kind}:{box}:{folder}", work, ctx)
                jobs.append(replace(job, inputs=(*job.inputs, *map(Path, companions))))
    return jobs


@dataclass
class BenchSummary:
    """What a bench run did: jobs run/skipped per stage (and why run), models trained, files."""

    ran: dict[str, int]
    skipped: dict[str, int]
    reasons: dict[str, Counter]
    trained: int
    files: list[Path]
    seconds: dict[str, float]
    reused: list[str]
    failed: dict[str, str] = field(default_factory=dict)  # job key -> the worker's traceback


class BenchJobsFailed(RuntimeError):
    """Some jobs raised; every job not depending on them ran, and their rows are merged."""

    def __init__(self, summary: BenchSummary) -> None:
        self.summary = summary
        keys = ", ".join(sorted(summary.failed))
        super().__init__(
            f"{len(summary.failed)} job(s) failed or were skipped for a failed dependency: {keys}; "
            "tracebacks are in bench.log; re-run to retry only these"
        )


@dataclass(frozen=True)
class StageCounts:
    """Per stage: jobs running, done and failed, for the driver's one progress bar."""

    by_stage: dict[str, Counter]
    running: set[str] = field(default_factory=set)

    def start(self, stage: str, key: str) -> None:
        self.running.add(key)
        self.by_stage[stage]["running"] += 1

    def finish(self, stage: str, key: str, ok: bool) -> None:
        if key in self.running:  # a job skipped for a failed dependency never started
            self.running.discard(key)
            self.by_stage[stage]["running"] -= 1
        self.by_stage[stage]["done" if ok else "failed"] += 1

    def text(self) -> str:
        """E.g. "train 2 running 5 done | attacks 1 running 0 done 1 failed"."""
        parts = []
        for stage, c in self.by_stage.items():
            if c["running"] or c["done"] or c["failed"]:
                failed = f" {c['failed']} failed" if c["failed"] else ""
                parts.append(f"{stage} {c['running']} running {c['done']} done{failed}")
        return " | ".join(parts)


@dataclass(frozen=True)
class JobDone:
    """What a worker hands back (rows stay in the shard it wrote)."""

    inputs: dict[str, str | None]
    rows: int
    lines: list[str]
    unchanged: bool = False
    device: str = ""  # where it ran, as the worker saw it (Ray sets CUDA_VISIBLE_DEVICES)


def run_bench(
    profile: Profile,
    out_dir: Path,
    ckpt_root: Path = Path("checkpoints"),
    device: str = "auto",
    load_options: LoadOptions | None = None,
    progress: bool = True,
    stages: list[str] | None = None,
    reuse_results: bool = False,
    executor: Executor | None = None,
    job_gpus: float = 0.25,
) -> BenchSummary:
    """Run every job of `profile` that is not validly done, merge the results, render them.

    The report folder is locked for the whole run (a second bench on it fails at once).
    `reuse_results` accepts rows that other code made (the report then says so); checkpoints
    and settings must still match. `executor` runs the job graph (default: serial, in this
    process); a non-training job asks for `job_gpus` of a GPU where there is one. A job that
    raises does not stop the others: `BenchJobsFailed` names it after the rest is merged.
    """
    ctx = BenchContext(
        profile, Path(out_dir), Path(ckpt_root), device, load_options or LoadOptions()
    )
    selected = stages or STAGES.names()
    for stage in selected:
        STAGES.get(stage)
    with locks.exclusive(ctx.out_dir, BENCH_LOCK):
        for folder in (ctx.out_dir, ctx.out_dir / SHARDS_DIR):
            remove_stale_temporaries(folder)
        summary = _run_locked(
            ctx, selected, progress, reuse_results, executor or SerialExecutor(), job_gpus
        )
    if summary.failed:
        raise BenchJobsFailed(summary)
    return summary


def _run_locked(
    ctx: BenchContext,
    selected: list[str],
    progress: bool,
    reuse: bool,
    executor: Executor,
    job_gpus: float,
) -> BenchSummary:
    from robustbench_lr.report import render_report

    ledger = Ledger(ctx.out_dir)
    digests = CheckpointDigests()
    planned = plan(ctx)
    jobs = {job.key: job for stage in selected for job in planned[stage]}
    needs = dependencies(planned)
    on_gpu = resolve_device(ctx.device).type == "cuda"
    tasks: list[Task] = []
    reasons: dict[str, Counter] = {stage: Counter() for stage in selected}
    why_of: dict[str, str] = {}
    for job in jobs.values():  # plan order: every training job before what reads its model
        why = ledger.why_not_done(job, digests, reuse)
        deps = tuple(key for key in needs[job.key] if key in {t.key for t in tasks})
        if why is None and not deps:
            continue
        # Rows whose only doubt is a model being rebuilt stay valid if it comes back the same.
        recheck = ledger.why_not_done(job, digests, reuse, inputs=False) is None
        expected = ledger.jobs[job.key]["inputs"] if recheck else None
        why_of[job.key] = why or "model being rebuilt"
        reasons[job.stage][why_of[job.key]] += 1
        gpus = (1.0 if job.stage == "train" else job_gpus) if on_gpu else 0.0
        work = partial(
            _execute, job.run, job.inputs, ledger.shard(job), ctx.out_dir, expected, ctx.device
        )
        tasks.append(Task(job.key, work, deps, Resources(1.0, gpus), job.stage))
    ran = {stage: 0 for stage in selected}
    failed: dict[str, str] = {}
    bar = tqdm(total=len(tasks), desc=f"bench {ctx.profile.name}", unit="job", disable=not progress)
    counts = StageCounts({stage: Counter() for stage in selected})

    def started(task: Task) -> None:
        counts.start(task.stage, task.key)
        bar.set_postfix_str(counts.text())

    def finished(done: Finished) -> None:
        job = jobs[done.key]
        bar.update()
        counts.finish(job.stage, job.key, done.error is None)
        if done.error is not None:
            failed[job.key] = done.error
            _log(ctx, f"{job.key}: FAILED on {done.host or '-'}\n{done.error}")
        elif done.value.unchanged:
            reasons[job.stage][why_of[job.key]] -= 1  # its model came back the same
        else:
            digests.forget_all()
            ledger.commit(job, done.value.inputs, done.seconds)
            ran[job.stage] += 1
            lines = "".join(f"  {line}\n" for line in done.value.lines)
            _log(
                ctx,
                f"{lines}{job.key}: {done.value.rows} rows, {done.host}, {done.value.device}, "
                f"{done.seconds:.1f} s",
            )
        bar.set_postfix_str(counts.text())

    try:
        executor.run(tasks, finished, started)
    finally:
        bar.close()
    ledger.compact()
    every = [job for stage_jobs in planned.values() for job in stage_jobs]
    done_jobs = [job for job in every if ledger.why_not_done(job, digests, reuse) is None]
    _merge(ctx.results_path, [ledger.shard(job) for job in done_jobs])
    _write_cost(ctx, ledger, done_jobs)
    reused = [job.key for job in done_jobs if ledger.jobs[job.key]["code"] != code_identity()]
    seconds: dict[str, float] = {}
    for job in done_jobs:
        seconds[job.stage] = seconds.get(job.stage, 0.0) + ledger.jobs[job.key]["seconds"]
    files = render_report(ctx.profile, ctx.out_dir, {"seconds": seconds, "reused": reused})
    skipped = {
        stage: len(planned[stage]) - ran[stage] - sum(1 for k in failed if jobs[k].stage == stage)
        for stage in selected
    }
    return BenchSummary(
        ran,
        skipped,
        {stage: +counts for stage, counts in reasons.items()},
        ran.get("train", 0),
        files,
        seconds,
        reused,
        failed,
    )


def plan(ctx: BenchContext) -> dict[str, list[Job]]:
    """Every stage's jobs, in plan order (training first)."""
    return {stage: STAGES.get(stage)(ctx) for stage in STAGES.names()}


def dependencies(planned: dict[str, list[Job]]) -> dict[str, tuple[str, ...]]:
    """Each job's prerequisites: the training jobs of the checkpoints it reads (a training job
    has none). The graph every executor runs, and `benchmarks/makespan.py` models."""
    trainer_of = {job.inputs[0]: job.key for job in planned["train"]}
    return {
        job.key: tuple(
            trainer_of[f] for f in job.inputs if f in trainer_of and job.stage != "train"
        )
        for jobs in planned.values()
        for job in jobs
    }


def _log(ctx: BenchContext, text: str) -> None:
    with (ctx.out_dir / "bench.log").open("a") as handle:
        handle.write(text.rstrip("\n") + "\n")


def _execute(
    run: Callable[[Path], Outcome],
    inputs: tuple[Path, ...],
    shard: Path,
    out_dir: Path,
    expected: dict[str, str] | None,
    device: str,
) -> JobDone:
    """A job on a worker: skip it when its rows are still valid, else run it and write its
    shard (write-then-rename); the driver then commits it to the ledger."""
    digests = CheckpointDigests()
    before = {str(folder): digests.get(folder) for folder in inputs}
    if expected is not None and before == expected:
        return JobDone(before, 0, [], unchanged=True)
    torch.manual_seed(0)
    outcome = run(out_dir)
    _write_rows(shard, outcome.rows)
    digests.forget_all()
    after = {str(folder): digests.get(folder) for folder in inputs}
    missing = [folder for folder, digest in after.items() if digest is None]
    if missing:
        raise checkpoints.CheckpointError(
            f"{missing[0]} is not a consistent checkpoint after the job ran"
        )
    return JobDone(after, len(outcome.rows), outcome.lines, device=_device_label(device))


def _device_label(device: str) -> str:
    """ "cpu", or "cuda" with the GPUs this worker was given (Ray's CUDA_VISIBLE_DEVICES)."""
    if resolve_device(device).type != "cuda":
        return "cpu"
    return f"cuda (GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '0')})"


def _write_rows(path: Path, rows: Rows) -> None:
    results.write(
        path, pd.DataFrame([results.make_row(**r) for r in rows], columns=results.COLUMNS)
    )


def _write_cost(ctx: BenchContext, ledger: Ledger, done: list[Job]) -> None:
    """`cost.csv`: each trained model's training cost (its meta.json) and the ledger's attack
    and audit seconds per model (`cost.py`)."""
    from robustbench_lr import cost

    rows = []
    for cfg in ctx.profile.models:
        folder = ctx.folder(cfg)
        if (folder / checkpoints.META_FILE).exists():
            rows += cost.training_rows(checkpoints.read_meta(folder), folder)
    seconds = [(job.stage, ledger.shard(job), ledger.jobs[job.key]["seconds"]) for job in done]
    cost.write(ctx.out_dir / cost.COST_FILE, rows + cost.job_rows(seconds))


def _merge(results_path: Path, shards: list[Path]) -> None:
    """`results.csv` = the done jobs' rows in plan order; a later job's row replaces an
    earlier one with the same key (what appending them one by one would leave)."""
    frames = [results.read(shard) for shard in shards]
    frames = [f for f in frames if not f.empty]
    merged = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=results.COLUMNS)
    )
    results.write(results_path, merged.drop_duplicates(subset=results.KEY, keep="last"))


# The threat tracks' stages register themselves on import (after every name above exists).
from robustbench_lr import tracks  # noqa: E402, F401

"""`make bench`: train what is missing, run every experiment not yet done, render everything.

The bench is a list of `Job`s grouped into stages (train, attacks, minrho, audit, analyses).
Each job's rows go to its own shard `<out>/jobs/<key digest>.csv`, and the ledger
(`<out>/bench_state.json`) records, per job, what it read and wrote: the settings that planned
it, the code that ran it, the commit point (meta.json digest) of every checkpoint it read, and
its shard's digest. A job counts as done only while all of that still holds; anything else is
re-run and the summary says why. `results.csv` is then merged from the shards of the profile's
done jobs, in plan order, by this one writer. A kill at any moment loses at most the job that
was running: shards and the ledger are written to temporary names and renamed. Training
resumes inside a model from its last epoch (see `train.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from robustbench_lr import __version__, checkpoints, locks, results
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.data import Data, LoadOptions, load
from robustbench_lr.devices import resolve_device
from robustbench_lr.files import (
    atomic_write,
    atomic_write_json,
    file_digest,
    remove_stale_temporaries,
)
from robustbench_lr.profiles import Profile, selects
from robustbench_lr.registry import Registry

log = logging.getLogger(__name__)

STATE_FILE = "bench_state.json"
RESULTS_FILE = "results.csv"
SHARDS_DIR = "jobs"
LEDGER_FORMAT = "robustbench-lr-ledger/2"
BENCH_LOCK = ".bench.lock"

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Job:
    """One unit of bench work.

    `key` names it in the ledger; `spec` is the canonical text of its settings (a changed
    setting re-runs it); `inputs` are the checkpoint folders it reads (for a training job, the
    one it writes), whose commit points must be unchanged for its rows to stay valid. `run`
    gets a scratch CSV path (commands write their rows there; figures and reports go beside
    it, in the report folder) and returns the job's rows.
    """

    stage: str
    key: str
    spec: str
    inputs: tuple[Path, ...]
    run: Callable[[Path], Rows]

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
    _data: dict[tuple, Data] = field(default_factory=dict)

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS_FILE

    def data_for(self, cfg: TrainConfig) -> Data:
        """Load each dataset once per bench (many models share it)."""
        key = (cfg.dataset, cfg.train_limit, cfg.test_limit, cfg.svhn_extra)
        if key not in self._data:
            self._data[key] = load(cfg.dataset, self.load_options, cfg.train_limit, cfg.test_limit)
        return self._data[key]

    def other_nlr_folder(self, cfg: TrainConfig) -> str | None:
        """The black-box source folder for `cfg`, unless `cfg` is that N-LR model itself."""
        source = self.nlr_source(cfg)
        return str(self.folder(source)) if source is not None and source != cfg else None

    def folder(self, cfg: TrainConfig) -> Path:
        return checkpoint_dir(self.ckpt_root, cfg)

    def nlr_source(self, cfg: TrainConfig) -> TrainConfig | None:
        """The N-LR model of the same dataset/arch/width/seed (the paper's black-box source)."""
        return self.partner(cfg, "nlr")

    def partner(self, cfg: TrainConfig, method: str) -> TrainConfig | None:
        """The profile's `method` model of the same dataset, arch, width and seed as `cfg`."""
        for other in self.profile.models:
            if (
                other.method == method
                and other.dataset == cfg.dataset
                and other.arch == cfg.arch
                and other.width == cfg.width
                and other.seed == cfg.seed
            ):
                return other
        return None


Planner = Callable[[BenchContext], list[Job]]
STAGES: Registry[Planner] = Registry("bench stage")


@STAGES.register("train")
def plan_training(ctx: BenchContext) -> list[Job]:
    """One job per model: train (or resume) it, then record its clean accuracy (Tables 7-8)."""
    from robustbench_lr.train import train

    def job(cfg: TrainConfig) -> Callable[[Path], Rows]:
        def run(_scratch: Path) -> Rows:
            data = ctx.data_for(cfg)
            result = train(cfg, ctx.ckpt_root, ctx.device, ctx.load_options, False, data)
            meta = checkpoints.verify(result.folder)
            return [
                results.make_row(
                    **results.model_fields(meta, result.folder),
                    experiment="clean",
                    attack="clean",
                    metric="clean_acc",
                    value=meta["clean_acc"],
                    n=len(data.y_test),
                )
            ]

        return run

    return [
        Job(
            "train",
            f"train:{ctx.folder(cfg)}:{cfg.epochs}",
            _spec(cfg.to_dict(), ctx),
            (ctx.folder(cfg),),
            job(cfg),
        )
        for cfg in ctx.profile.models
    ]


def _spec(settings: Any, ctx: BenchContext) -> str:
    """Canonical text of a job's settings, with the device it runs on (bf16 CUDA != CPU)."""
    return json.dumps(
        {"settings": settings, "device": resolve_device(ctx.device).type}, sort_keys=True
    )


def _command_job(stage: str, key: str, argv: list[str], inputs: list[str], ctx) -> Job:
    """A job that runs a CLI command in-process, its rows going to the job's scratch CSV."""
    return Job(
        stage,
        key,
        _spec(argv, ctx),
        tuple(Path(p) for p in inputs),
        lambda scratch: _command([*argv, "--out", str(scratch)], ctx.out_dir / "bench.log"),
    )


def _command(argv: list[str], log_path: Path) -> Rows:
    """Run a CLI command in-process (so the bench computes exactly what a user's command does).

    The command writes its rows to the file its `--out` names (the job's scratch CSV, read
    back here); its printed lines go to the bench log.
    """
    import contextlib

    from robustbench_lr.cli import build_parser

    args = build_parser().parse_args(argv)
    with log_path.open("a") as handle, contextlib.redirect_stdout(handle):
        print("$ robustbench-lr " + " ".join(argv))
        status = args.handler(args)
    if status:
        raise RuntimeError(
            f"`robustbench-lr {' '.join(argv)}` exited with {status}; see {log_path}"
        )
    return results.read(args.out).to_dict("records")


def _common_flags(ctx: BenchContext) -> list[str]:
    opts = ctx.load_options
    flags = ["--device", ctx.device, "--data-root", opts.data_root]
    return flags + (["--download"] if opts.download else [])


def _eps_list(values: tuple[float, ...]) -> str:
    return ",".join(repr(v) for v in values)


@STAGES.register("attacks")
def plan_attacks(ctx: BenchContext) -> list[Job]:
    """IFSGM white-box and black-box grids (Tables 1-2), random noise (Table 4), step curves (Fig. 11).

    Black-box examples are crafted on the N-LR model of the same dataset, arch, width and seed
    (the paper's protocol); a profile without that N-LR model gets no black-box rows.
    """
    grid, n = ctx.profile.attacks, str(ctx.profile.n)
    jobs = []
    for cfg in ctx.profile.models:
        folder = str(ctx.folder(cfg))
        base = ["attack", "--checkpoint", folder, "--n", n, *_common_flags(ctx)]
        ifsgm = [
            "--attack",
            "ifsgm",
            "--eps",
            _eps_list(grid.ifsgm_eps),
            "--steps",
            ",".join(map(str, grid.ifsgm_steps)),
        ]
        runs = {"ifsgm-white": base + ifsgm}
        source = ctx.nlr_source(cfg)
        if grid.blackbox and source is not None:
            runs["ifsgm-black"] = base + ifsgm + ["--source", str(ctx.folder(source))]
        if grid.noise_p:
            runs["noise"] = base + [
                "--attack",
                "noise",
                "--p",
                _eps_list(grid.noise_p),
                "--noise-draws",
                str(grid.noise_draws),
            ]
        if grid.curves:
            runs["step-curve"] = base + [
                "--attack",
                "ifsgm",
                "--eps",
                repr(grid.curve_eps),
                "--steps",
                str(max(grid.ifsgm_steps)),
                "--per-step",
            ]
        for name, argv in runs.items():
            inputs = [folder, *([str(ctx.folder(source))] if name == "ifsgm-black" else [])]
            jobs.append(_command_job("attacks", f"attack:{name}:{folder}", argv, inputs, ctx))
    return jobs


@STAGES.register("minrho")
def plan_minrho(ctx: BenchContext) -> list[Job]:
    """Minimum-perturbation searches, white-box and black-box (Tables 3 and 10, Fig. 4a/9)."""
    grid = ctx.profile.attacks
    if not grid.minrho:
        return []
    jobs = []
    for cfg in ctx.profile.models:
        if not selects(grid.minrho_only, cfg):
            continue
        folder = str(ctx.folder(cfg))
        argv = [
            "minrho",
            "--checkpoint",
            folder,
            "--attack",
            ",".join(grid.minrho),
            "--n",
            str(grid.minrho_n),
            *grid.minrho_flags,
            *_common_flags(ctx),
            *(["--per-sample"] if grid.curves else []),
        ]
        jobs.append(_command_job("minrho", f"minrho:white:{folder}", argv, [folder], ctx))
        source = ctx.other_nlr_folder(cfg)
        if grid.blackbox and source is not None:
            black = argv + ["--source", source]
            jobs.append(
                _command_job("minrho", f"minrho:black:{folder}", black, [folder, source], ctx)
            )
    return jobs


@STAGES.register("audit")
def plan_audit(ctx: BenchContext) -> list[Job]:
    """The robustness audit on every model (issue 8): gradient-masking checks and the worst case per example."""
    if not ctx.profile.audit:
        return []
    jobs = []
    for cfg in ctx.profile.models:
        folder = str(ctx.folder(cfg))
        argv = [
            "audit",
            "--checkpoint",
            folder,
            "--eps",
            repr(ctx.profile.audit_eps),
            "--n",
            str(ctx.profile.audit_n),
            "--queries",
            str(ctx.profile.attacks.square_queries),
            *_common_flags(ctx),
        ]
        source = ctx.other_nlr_folder(cfg)
        if source is not None:
            argv += ["--source", source]
        inputs = [folder, *([source] if source else [])]
        jobs.append(_command_job("audit", f"audit:{folder}", argv, inputs, ctx))
    return jobs


@STAGES.register("analyses")
def plan_analyses(ctx: BenchContext) -> list[Job]:
    """Every analysis of the profile on every model (rows and figures under <out>/)."""
    from robustbench_lr.analysis import ANALYSES, AnalysisOptions

    jobs = []
    for cfg in ctx.profile.models:
        folder = ctx.folder(cfg)
        extras = {"white": dict(ctx.profile.analysis_options)}
        source = ctx.other_nlr_folder(cfg)
        if ctx.profile.attacks.blackbox and source is not None:
            extras["black"] = {**ctx.profile.analysis_options, "source": source}
        lr_partner = ctx.partner(cfg, "1lr") if cfg.method == "nlr" else None
        if lr_partner is not None:  # Table 6's N-LR protocol (D.5): stop once 1-LR is fooled
            extras["matched"] = {
                **ctx.profile.analysis_options,
                "stop_on": str(ctx.folder(lr_partner)),
            }
        for kind in ctx.profile.analyses:
            analysis = ANALYSES.get(kind)
            # Analyses that attack use the attacks' test subset (profile `n`, the same images);
            # the others describe the representation on the whole test set.
            n = ctx.profile.n if kind in ADVERSARIAL_ANALYSES else None
            for box, extra in extras.items():
                if box != "white" and kind not in RUNS_PER_BOX[box]:
                    continue
                options = AnalysisOptions(
                    n=n, device=ctx.device, load=ctx.load_options, extra=extra
                )
                run = partial(_analysis_rows, analysis, folder, options)
                others = [Path(extra[k]) for k in ("source", "stop_on") if k in extra]
                jobs.append(
                    Job(
                        "analyses",
                        f"analysis:{kind}:{box}:{folder}",
                        _spec({"kind": kind, "n": n, "extra": extra}, ctx),
                        (folder, *others),
                        run,
                    )
                )
    return jobs


def _analysis_rows(analysis, folder: Path, options, scratch: Path) -> Rows:
    # Figures go beside the scratch file, i.e. into the report folder.
    return analysis.run(folder, scratch, options).rows


# Analyses that craft adversarial examples: they use the attacks' test subset and have a
# black-box (transfer) run; Table 6's also has the N-LR row's matched protocol.
ADVERSARIAL_ANALYSES = ("maxmargin", "stability")
RUNS_PER_BOX = {"black": ADVERSARIAL_ANALYSES, "matched": ("maxmargin",)}


@cache
def code_identity() -> str:
    """What "the code that ran it" means in the ledger: package version, torch, and a digest of
    every source and data file of the package (a changed attack re-runs the attacks)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".toml", ".csv") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"{__version__}+torch{torch.__version__}+{digest.hexdigest()[:16]}"


class Ledger:
    """`bench_state.json`: per job, what it read and wrote, so "done" can be re-checked."""

    def __init__(self, path: Path, out_dir: Path) -> None:
        self.path, self.out_dir = path, out_dir
        self.jobs: dict[str, dict[str, Any]] = {}
        self.note = ""
        if path.exists():
            try:
                raw = json.loads(path.read_text())
            except json.JSONDecodeError:
                raw = {}
            if isinstance(raw, dict) and raw.get("format") == LEDGER_FORMAT:
                self.jobs = raw.get("jobs", {})
            else:
                self.note = "its ledger was written by an older version or is unreadable"

    def shard(self, job: Job) -> Path:
        return self.out_dir / SHARDS_DIR / f"{job.digest}.csv"

    def why_not_done(self, job: Job, digests: CheckpointDigests, reuse: bool) -> str | None:
        """None when `job`'s recorded rows are still valid; else the reason to re-run it."""
        entry = self.jobs.get(job.key)
        if entry is None:
            return self.note or "not run yet"
        if entry["spec"] != job.spec:
            return "settings changed"
        if entry["code"] != code_identity() and not reuse:
            return "code changed"
        for folder, recorded in entry["inputs"].items():
            if digests.get(Path(folder)) != recorded:
                return "checkpoint missing or changed"
        shard = self.shard(job)
        if not shard.exists() or file_digest(shard) != entry["shard"]:
            return "rows missing or changed"
        return None

    def commit(self, job: Job, inputs: dict[str, str], seconds: float) -> None:
        self.jobs[job.key] = {
            "stage": job.stage,
            "spec": job.spec,
            "code": code_identity(),
            "inputs": inputs,
            "shard": file_digest(self.shard(job)),
            "seconds": round(seconds, 3),
        }
        atomic_write_json(self.path, {"format": LEDGER_FORMAT, "jobs": self.jobs})


class CheckpointDigests:
    """Digest of each checkpoint's verified commit point (None: missing or inconsistent)."""

    def __init__(self) -> None:
        self._known: dict[Path, str | None] = {}

    def get(self, folder: Path) -> str | None:
        if folder not in self._known:
            try:
                checkpoints.verify(folder)
                self._known[folder] = file_digest(folder / checkpoints.META_FILE)
            except checkpoints.CheckpointError:
                self._known[folder] = None
        return self._known[folder]

    def forget(self, folder: Path) -> None:
        self._known.pop(folder, None)


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


def run_bench(
    profile: Profile,
    out_dir: Path,
    ckpt_root: Path = Path("checkpoints"),
    device: str = "auto",
    load_options: LoadOptions | None = None,
    progress: bool = True,
    stages: list[str] | None = None,
    reuse_results: bool = False,
) -> BenchSummary:
    """Run every job of `profile` that is not validly done, merge the results, render them.

    The report folder is locked for the whole run (a second bench on it fails at once).
    `reuse_results` accepts rows that other code made (the report then says so); checkpoints
    and settings must still match.
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
        for scratch in ctx.out_dir.glob(".pending-*.csv"):  # a killed job's partial rows
            scratch.unlink()
        return _run_locked(ctx, selected, progress, reuse_results)


def _run_locked(
    ctx: BenchContext, selected: list[str], progress: bool, reuse: bool
) -> BenchSummary:
    from robustbench_lr.report import render_report

    ledger = Ledger(ctx.out_dir / STATE_FILE, ctx.out_dir)
    digests = CheckpointDigests()
    plan = {stage: STAGES.get(stage)(ctx) for stage in STAGES.names()}
    ran: dict[str, int] = {}
    skipped: dict[str, int] = {}
    reasons: dict[str, Counter] = {}
    trained = 0
    for stage in selected:
        jobs = plan[stage]
        why = {job.key: ledger.why_not_done(job, digests, reuse) for job in jobs}
        todo = [job for job in jobs if why[job.key] is not None]
        reasons[stage] = Counter(why[job.key] for job in todo)
        skipped[stage], ran[stage] = len(jobs) - len(todo), 0
        for job in tqdm(
            todo, desc=f"bench {ctx.profile.name}: {stage}", unit="job", disable=not progress
        ):
            seconds = _run_job(job, ledger, digests, ctx)
            log.info("%s done in %.1f s", job.key, seconds)
            ran[stage] += 1
            trained += stage == "train"
    done = [
        job
        for jobs in plan.values()
        for job in jobs
        if ledger.why_not_done(job, digests, reuse) is None
    ]
    _merge(ctx.results_path, [ledger.shard(job) for job in done])
    reused = [job.key for job in done if ledger.jobs[job.key]["code"] != code_identity()]
    seconds: dict[str, float] = {}
    for job in done:
        seconds[job.stage] = seconds.get(job.stage, 0.0) + ledger.jobs[job.key]["seconds"]
    state = {"seconds": seconds, "reused": reused}
    files = render_report(ctx.profile, ctx.out_dir, state)
    return BenchSummary(ran, skipped, reasons, trained, files, seconds, reused)


def _run_job(job: Job, ledger: Ledger, digests: CheckpointDigests, ctx: BenchContext) -> float:
    """Run one job, write its shard, then commit it to the ledger (the job's commit point)."""
    scratch = ctx.out_dir / f".pending-{job.digest}.csv"
    scratch.unlink(missing_ok=True)
    started = time.time()
    torch.manual_seed(0)
    rows = job.run(scratch)
    _write_rows(ledger.shard(job), rows)
    scratch.unlink(missing_ok=True)
    if job.stage == "train":
        for folder in job.inputs:
            digests.forget(folder)
    inputs = {str(folder): digests.get(folder) for folder in job.inputs}
    missing = [folder for folder, digest in inputs.items() if digest is None]
    if missing:
        raise checkpoints.CheckpointError(
            f"{job.key}: checkpoint {missing[0]} is not a consistent checkpoint after the job ran"
        )
    seconds = time.time() - started
    ledger.commit(job, inputs, seconds)
    return seconds


def _write_rows(path: Path, rows: Rows) -> None:
    frame = pd.DataFrame([results.make_row(**r) for r in rows], columns=results.COLUMNS)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, na_rep="nan"))


def _merge(results_path: Path, shards: list[Path]) -> None:
    """`results.csv` = the done jobs' rows in plan order; a later job's row replaces an
    earlier one with the same key (what appending them one by one would leave)."""
    frames = [results.read(shard) for shard in shards]
    frames = [f for f in frames if not f.empty]
    merged = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=results.COLUMNS)
    )
    merged = merged.drop_duplicates(subset=results.KEY, keep="last")
    atomic_write(results_path, lambda tmp: merged.to_csv(tmp, index=False, na_rep="nan"))

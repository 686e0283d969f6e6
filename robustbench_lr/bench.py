"""`make bench`: train what is missing, run every experiment not yet done, render everything.

The bench is a list of `Job`s grouped into stages (train, attacks, analyses, audit). Each job
returns result rows; the rows are appended to `<out>/results.csv` and the job's key is added to
a ledger (`<out>/bench_state.json`) right after, both atomically. Re-running after an
interruption skips every job in the ledger, so a finished bench re-run only re-renders.
Training resumes inside a model from its last epoch (see `train.py`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from robustbench_lr import checkpoints, results
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.data import Data, LoadOptions, load
from robustbench_lr.io import atomic_write_json
from robustbench_lr.profiles import Profile, selects
from robustbench_lr.registry import Registry

log = logging.getLogger(__name__)

STATE_FILE = "bench_state.json"
RESULTS_FILE = "results.csv"


@dataclass(frozen=True)
class Job:
    """One unit of bench work: a stable key for the ledger and a function returning rows."""

    stage: str
    key: str
    run: Callable[[], list[dict[str, Any]]]


@dataclass
class BenchContext:
    """What planners need: the profile, where things go, and shared loaded data."""

    profile: Profile
    out_dir: Path
    ckpt_root: Path
    device: str
    load_options: LoadOptions
    progress: bool
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

    def job(cfg: TrainConfig) -> Callable[[], list[dict[str, Any]]]:
        def run() -> list[dict[str, Any]]:
            result = train(
                cfg,
                ctx.ckpt_root,
                ctx.device,
                ctx.load_options,
                progress=False,
                data=ctx.data_for(cfg),
            )
            meta = checkpoints.read_meta(result.folder)
            data = ctx.data_for(cfg)
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
        Job("train", f"train:{ctx.folder(cfg)}:{cfg.epochs}", job(cfg))
        for cfg in ctx.profile.models
    ]


def _command(argv: list[str], log_path: Path) -> list[dict[str, Any]]:
    """Run a CLI command in-process (so the bench computes exactly what a user's command does).

    The command appends its own rows to the results file; its printed lines go to the bench log.
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
    return []


def _common_flags(ctx: BenchContext) -> list[str]:
    opts = ctx.load_options
    flags = ["--out", str(ctx.results_path), "--device", ctx.device, "--data-root", opts.data_root]
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
    log_path = ctx.out_dir / "bench.log"
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
            jobs.append(
                Job("attacks", f"attack:{name}:{folder}", lambda a=argv: _command(a, log_path))
            )
    return jobs


@STAGES.register("minrho")
def plan_minrho(ctx: BenchContext) -> list[Job]:
    """Minimum-perturbation searches, white-box and black-box (Tables 3 and 10, Fig. 4a/9)."""
    grid = ctx.profile.attacks
    if not grid.minrho:
        return []
    log_path = ctx.out_dir / "bench.log"
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
        jobs.append(Job("minrho", f"minrho:white:{folder}", lambda a=argv: _command(a, log_path)))
        source = ctx.other_nlr_folder(cfg)
        if grid.blackbox and source is not None:
            black = argv + ["--source", source]
            jobs.append(
                Job("minrho", f"minrho:black:{folder}", lambda a=black: _command(a, log_path))
            )
    return jobs


@STAGES.register("audit")
def plan_audit(ctx: BenchContext) -> list[Job]:
    """The robustness audit on every model (issue 8): gradient-masking checks and the worst case per example."""
    if not ctx.profile.audit:
        return []
    log_path = ctx.out_dir / "bench.log"
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
        jobs.append(Job("audit", f"audit:{folder}", lambda a=argv: _command(a, log_path)))
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
                run = partial(_analysis_rows, analysis, folder, ctx.results_path, options)
                jobs.append(Job("analyses", f"analysis:{kind}:{box}:{folder}", run))
    return jobs


def _analysis_rows(analysis, folder: Path, results_path: Path, options) -> list[dict[str, Any]]:
    return analysis.run(folder, results_path, options).rows


# Analyses that craft adversarial examples: they use the attacks' test subset and have a
# black-box (transfer) run; Table 6's also has the N-LR row's matched protocol.
ADVERSARIAL_ANALYSES = ("maxmargin", "stability")
RUNS_PER_BOX = {"black": ADVERSARIAL_ANALYSES, "matched": ("maxmargin",)}


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"done": [], "seconds": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        log.warning("%s is corrupt; starting the ledger afresh", path)
        return {"done": [], "seconds": {}}


@dataclass
class BenchSummary:
    """What a bench run did: jobs run/skipped per stage, models trained, files written."""

    ran: dict[str, int]
    skipped: dict[str, int]
    trained: int
    files: list[Path]
    seconds: dict[str, float]


def run_bench(
    profile: Profile,
    out_dir: Path,
    ckpt_root: Path = Path("checkpoints"),
    device: str = "auto",
    load_options: LoadOptions | None = None,
    progress: bool = True,
    stages: list[str] | None = None,
) -> BenchSummary:
    """Run every stage of `profile` that is not done yet, then render tables, figures and README."""
    from robustbench_lr.report import render_report

    ctx = BenchContext(
        profile, Path(out_dir), Path(ckpt_root), device, load_options or LoadOptions(), progress
    )
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    state_path = ctx.out_dir / STATE_FILE
    state = _read_state(state_path)
    if not ctx.results_path.exists():
        state = {"done": [], "seconds": {}}  # no results: nothing can be considered done
    done = set(state["done"])
    ran: dict[str, int] = {}
    skipped: dict[str, int] = {}
    trained_before = sum(1 for cfg in profile.models if _finished(ctx.folder(cfg)))
    for stage in stages or STAGES.names():
        jobs = STAGES.get(stage)(ctx)
        todo = [j for j in jobs if j.key not in done]
        skipped[stage] = len(jobs) - len(todo)
        ran[stage] = 0
        started = time.time()
        for job in tqdm(
            todo, desc=f"bench {profile.name}: {stage}", unit="job", disable=not progress
        ):
            torch.manual_seed(0)
            rows = job.run()
            results.append(ctx.results_path, rows)
            done.add(job.key)
            state["done"] = sorted(done)
            state["seconds"][stage] = state["seconds"].get(stage, 0.0) + (time.time() - started)
            started = time.time()
            atomic_write_json(state_path, state)
            ran[stage] += 1
    trained = sum(1 for cfg in profile.models if _finished(ctx.folder(cfg))) - trained_before
    files = render_report(profile, ctx.out_dir, state)
    return BenchSummary(ran, skipped, trained, files, dict(state["seconds"]))


def _finished(folder: Path) -> bool:
    try:
        return bool(checkpoints.read_meta(folder).get("finished"))
    except checkpoints.CheckpointError:
        return False

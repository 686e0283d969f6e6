"""One training loop for every method: it calls the method's hooks and never its name.

Recipe (paper, Appendix C): SGD momentum 0.9, weight decay 5e-4, lr 0.1, batch 128, the lr
divided by 10 at 150/350 and 250/350 of the run. On CUDA: bf16 autocast and channels_last.
On CPU: deterministic algorithms, so the same seed gives the same bytes. A checkpoint is
written after every epoch; re-running the same command resumes from the last one. How each step
runs (eagerly, or compiled) and why no step waits for the GPU: robustbench_lr/step.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from robustbench_lr import checkpoints, faults, locks, models
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.cost import TrainingMeter, save_training
from robustbench_lr.cost import training as cost_record
from robustbench_lr.data import (
    Data,
    LoadOptions,
    augment_batch,
    check_same_content,
    dataset_label,
    load,
    npz_location,
)
from robustbench_lr.devices import use_device
from robustbench_lr.evaluation import accuracy
from robustbench_lr.files import remove_stale_temporaries
from robustbench_lr.methods import METHODS, Batch, Progress, TrainContext
from robustbench_lr.step import CHECK_EVERY, DEFAULT_STEP_MODE, STEP_MODES, EpochTally, TrainStep

log = logging.getLogger(__name__)
TRAIN_LOCK = ".train.lock"


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """The paper's step schedule scaled to `cfg.epochs`: x0.1 at 150/350 and at 250/350."""
    milestones = [round(cfg.epochs * 150 / 350), round(cfg.epochs * 250 / 350)]
    return cfg.lr * 0.1 ** sum(epoch >= m for m in milestones)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Shuffled index batches of one epoch, a pure function of (seed, epoch) so resumes replay it.

    A trailing batch of one sample is dropped (batch norm cannot train on it).
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen)
    return [b for b in order.split(batch_size) if len(b) > 1]


@dataclass
class TrainResult:
    """Where the checkpoint went and how it did."""

    folder: Path
    clean_acc: float
    epochs_run: int  # epochs trained by this call (0 when the checkpoint was already complete)
    # The model file and meta.json were rewritten from the train state (their commit point
    # did not check out), so "already complete" would hide that they had been damaged.
    rebuilt: bool = False


def train(
    cfg: TrainConfig,
    out_root: str | Path = "checkpoints",
    device: str = "auto",
    load_options: LoadOptions | None = None,
    progress: bool = True,
    data: Data | None = None,
    step_mode: str = DEFAULT_STEP_MODE,
) -> TrainResult:
    """Train (or resume, or skip if finished) the model described by `cfg`.

    `data` may be passed to reuse already-loaded tensors (the bench trains many models on one
    dataset); otherwise it is loaded from `cfg`. `step_mode` (a `step.STEP_MODES` name) says how
    each step runs; like `device` it is not part of the config: it changes rounding, not the
    run, so a checkpoint resumes or counts as complete in any mode.
    """
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {cfg.epochs}")
    STEP_MODES.get(step_mode)  # an unknown name fails before any work, listing the modes
    method = METHODS.get(cfg.method)
    opts = method.resolve(cfg.method_options)
    # Store fully resolved options, so a run started with defaults left implicit (in code) and
    # one started from the CLI (which resolves them) are recognised as the same run.
    cfg = replace(cfg, method_options=opts)
    folder = checkpoint_dir(out_root, cfg)
    if data is None:
        data = load(
            cfg.dataset,
            # The config is the one place that says whether SVHN's extra split is in.
            replace(load_options or LoadOptions(), svhn_extra=cfg.svhn_extra),
            cfg.train_limit,
            cfg.test_limit,
        )
    if not epoch_batches(len(data.y_train), cfg.batch_size, cfg.seed, 0):
        raise ValueError(
            f"{len(data.y_train)} training image(s) at batch size {cfg.batch_size} leave no "
            "batch of two or more images to train on"
        )
    check_structure(cfg, method, opts, data)
    with locks.exclusive(folder, TRAIN_LOCK):
        removed = remove_stale_temporaries(folder)
        if removed:
            log.info("removed %d temporary file(s) a killed run left in %s", len(removed), folder)
        complete = _committed_complete(folder, cfg, data)
        if complete is not None:
            return TrainResult(folder, complete, 0)
        return _train_locked(
            cfg, folder, method, opts, data, use_device(device), progress, step_mode
        )


def check_structure(cfg: TrainConfig, method, opts: dict, data: Data) -> None:
    """Build the network once, with the method's structure and checks, before any file exists:
    an option naming a tap the architecture lacks (`--lr-rank TAP=R`) must not leave a folder
    and its lock behind a refused command. The global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        probe = models.build(cfg.arch, data.spec, cfg.width)
        method.structure(probe, cfg.arch, opts)
        method.check(probe, cfg.arch, opts)


def _committed_complete(folder: Path, cfg: TrainConfig, data: Data) -> float | None:
    """The clean accuracy of a finished run whose commit point checks out for this very config
    and data; else None (the caller rebuilds from the train state)."""
    try:
        meta = checkpoints.verify(folder)
    except checkpoints.CheckpointError:
        return None
    if checkpoints.stored_config(meta["config"]) != cfg.as_stored():
        return None  # load_train_state names the difference
    check_same_content(meta.get("data_fingerprint"), data, cfg.dataset, folder)
    return meta["clean_acc"] if meta.get("finished") else None


def _resume_point(folder: Path, cfg: TrainConfig, data: Data) -> checkpoints.TrainState | None:
    """The train state to resume from, or None to start afresh (a torn state file is dropped)."""
    try:
        saved = checkpoints.load_train_state(folder, cfg)
    except checkpoints.CorruptFileError as err:
        log.warning("%s; training %s from the start", err, folder)
        return None
    if saved is not None:
        check_same_content(saved.data_fingerprint, data, cfg.dataset, folder)
    return saved


def _seconds_so_far(folder: Path) -> float:
    """The training seconds `cost.json` holds for the epochs a resumed run keeps (0 if none)."""
    try:
        return float(cost_record(folder).get("train_seconds", 0.0))
    except (TypeError, ValueError):
        return 0.0


def _train_locked(
    cfg: TrainConfig,
    folder: Path,
    method,
    opts: dict,
    data: Data,
    dev: torch.device,
    progress: bool,
    step_mode: str,
) -> TrainResult:
    """Resume (or start) the run and commit every epoch; the caller holds the folder's lock."""
    saved = _resume_point(folder, cfg, data)
    meter = TrainingMeter(dev, _seconds_so_far(folder) if saved is not None else 0.0)
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.arch, data.spec, cfg.width)
    method.structure(model, cfg.arch, opts)
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    batches0 = epoch_batches(len(y_train), cfg.batch_size, cfg.seed, -1)
    ctx = TrainContext(
        model,
        cfg.arch,
        data.spec,
        (x_train[batches0[0]], y_train[batches0[0]]),
        cfg.epochs,
        len(epoch_batches(len(y_train), cfg.batch_size, cfg.seed, 0)),
        cfg.seed,
        dev,
    )
    aux = method.prepare(ctx, opts).to(dev)
    optimizer = torch.optim.SGD(
        [{"params": list(model.parameters())}, *method.aux_param_groups(aux, opts)],
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    history: list[dict[str, float]] = []
    start = 0
    if saved is not None:
        model.load_state_dict(saved.model)
        aux.load_state_dict(saved.aux)
        checkpoints.restore_optimizer(optimizer, saved.optimizer)
        history, start = saved.history, saved.epoch
        log.info("resuming %s from epoch %d", folder, start)

    def commit(epoch: int) -> None:
        checkpoints.save(
            folder,
            cfg,
            data,
            model,
            aux,
            optimizer,
            epoch,
            history,
            {
                "method_options": opts,
                "method_info": method.describe(model, aux, opts),
                "tap_sizes": models.tap_sizes(model, data.spec.channels, data.spec.size),
                "device": dev.type,
                "dataset_label": dataset_label(cfg.dataset),
                **npz_location(cfg.dataset),
                # A compiled mode rounds differently (fused kernels), which a reader comparing
                # two checkpoints of one config needs to know; eager (every stored checkpoint)
                # keeps the meta.json bytes it always had.
                **({} if step_mode == DEFAULT_STEP_MODE else {"step_mode": step_mode}),
            },
        )
        save_training(folder, meter.record())

    taps = method.taps(cfg.arch, opts)
    run_step = TrainStep(STEP_MODES.get(step_mode), method, model, aux, optimizer, opts, dev)
    step = start * ctx.steps_per_epoch
    for epoch in range(start, cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, epoch)
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 7)
        batches = epoch_batches(len(y_train), cfg.batch_size, cfg.seed, epoch)
        tally = EpochTally(dev)
        bar = tqdm(
            # One copy of the epoch's indices to the device: indexing with a host tensor each
            # step would copy from pageable memory, which waits for the GPU.
            torch.cat(batches).to(dev).split([len(b) for b in batches]),
            desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            leave=False,
        )
        for idx in bar:
            step += 1
            x, y = x_train[idx], y_train[idx]
            if data.spec.augment:
                x = augment_batch(x, gen)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            where = Progress(epoch, step, cfg.epochs)
            stats = run_step.forward(Batch(x, y, taps, where, gen))
            tally.add(stats, len(y), step)
            try:
                run_step.update(stats, where)
            except Exception:
                # A hook failing on weights that a non-finite loss already spoiled (the rank
                # projection's eigh): report the loss, the cause, with the hook's error as context.
                tally.check(epoch)
                raise
            if step % CHECK_EVERY == 0:
                tally.check(epoch)
                if progress:
                    bar.set_postfix(
                        loss=f"{tally.means()['loss']:.3f}", acc=f"{tally.accuracy():.1f}"
                    )
        tally.check(epoch)
        record = {
            "epoch": epoch + 1,
            "lr": lr_at(cfg, epoch),
            "train_acc": tally.accuracy(),
            **tally.means(),
            "test_acc": accuracy(model, data.x_test, data.y_test),
        }
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        commit(epoch + 1)
        faults.reached("epoch")  # tests kill a worker between two committed epochs
    if start >= cfg.epochs:
        # The train state is final but its commit point lags behind (a kill between renames)
        # or a vouched-for file went missing: rewrite the model and meta.json from it.
        commit(start)
    return TrainResult(folder, history[-1]["test_acc"], cfg.epochs - start, start >= cfg.epochs)

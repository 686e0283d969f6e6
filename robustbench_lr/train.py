"""One training loop for every method: it calls the method's hooks and never its name.

Recipe (paper, Appendix C): SGD momentum 0.9, weight decay 5e-4, lr 0.1, batch 128, the lr
divided by 10 at 150/350 and 250/350 of the run. On CUDA: bf16 autocast and channels_last.
On CPU: deterministic algorithms, so the same seed gives the same bytes. A checkpoint is
written after every epoch; re-running the same command resumes from the last one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from robustbench_lr import checkpoints, models
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.data import Data, LoadOptions, augment_batch, load
from robustbench_lr.devices import use_device
from robustbench_lr.evaluation import accuracy
from robustbench_lr.methods import METHODS, Progress, TrainContext

log = logging.getLogger(__name__)


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
    batches = list(order.split(batch_size))
    return [b for b in batches if len(b) > 1]


@dataclass
class TrainResult:
    """Where the checkpoint went and how it did."""

    folder: Path
    clean_acc: float
    epochs_run: int  # epochs trained by this call (0 when the checkpoint was already complete)


def train(
    cfg: TrainConfig,
    out_root: str | Path = "checkpoints",
    device: str = "auto",
    load_options: LoadOptions | None = None,
    progress: bool = True,
    data: Data | None = None,
) -> TrainResult:
    """Train (or resume, or skip if finished) the model described by `cfg`.

    `data` may be passed to reuse already-loaded tensors (the bench trains many models on one
    dataset); otherwise it is loaded from `cfg`.
    """
    dev = use_device(device)
    method = METHODS.get(cfg.method)
    opts = method.resolve(cfg.method_options)
    # Store fully resolved options, so a run started with defaults left implicit (in code) and
    # one started from the CLI (which resolves them) are recognised as the same run.
    cfg = replace(cfg, method_options=opts)
    folder = checkpoint_dir(out_root, cfg)
    saved = checkpoints.load_train_state(folder, cfg)
    if saved is not None and saved.epoch >= cfg.epochs:
        return TrainResult(folder, saved.history[-1]["test_acc"], 0)

    if data is None:
        data = load(
            cfg.dataset,
            load_options or LoadOptions(svhn_extra=cfg.svhn_extra),
            cfg.train_limit,
            cfg.test_limit,
        )
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

    taps = method.taps(cfg.arch, opts)
    step = start * ctx.steps_per_epoch
    for epoch in range(start, cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, epoch)
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 7)
        sums: dict[str, float] = {}
        seen = correct = 0
        bar = tqdm(
            epoch_batches(len(y_train), cfg.batch_size, cfg.seed, epoch),
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
            for p in aux.parameters():
                p.grad = None
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                logits, acts = model.run(x, taps)
                ce = F.cross_entropy(logits.float(), y)
            terms = method.penalty(
                aux,
                {k: v.float() for k, v in acts.items()},
                Progress(epoch, step, cfg.epochs),
                opts,
            )
            loss = ce + sum(terms.losses.values(), torch.zeros((), device=dev))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.after_step(model, aux, Progress(epoch, step, cfg.epochs), opts)
            with torch.no_grad():
                n = len(y)
                seen += n
                correct += (logits.argmax(1) == y).sum().item()
                for key, value in {"loss": ce, **terms.losses, **terms.logs}.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * n
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
        record = {
            "epoch": epoch + 1,
            "lr": lr_at(cfg, epoch),
            "train_acc": 100.0 * correct / seen,
            **{k: v / seen for k, v in sums.items()},
            "test_acc": accuracy(model, data.x_test, data.y_test),
        }
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        checkpoints.save(
            folder,
            cfg,
            data.spec,
            model,
            aux,
            optimizer,
            epoch + 1,
            history,
            {
                "method_options": opts,
                "method_info": method.describe(model, aux, opts),
                "tap_sizes": models.tap_sizes(model, data.spec.channels, data.spec.size),
                "device": dev.type,
            },
        )
    final = history[-1]["test_acc"] if history else math.nan
    return TrainResult(folder, final, cfg.epochs - start)

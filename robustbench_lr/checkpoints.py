"""Checkpoints: safetensors weights plus a JSON metadata file, atomic and resumable.

A checkpoint folder holds `model.safetensors` (the plain inference weights, parametrizations
materialized), `train_state.safetensors` (all an exact resume needs: training-module and
auxiliary state, optimizer momentum, the history) and `meta.json` (config, epoch, history, clean
accuracy, versions, the data's fingerprint, the sha256 of the two other files). No pickles.

`meta.json` is the one commit point: written last, it vouches by digest for its epoch's files. A
folder whose files disagree with it (a kill between two renames, a truncated or replaced file)
is not a checkpoint anyone may read (`verify`); `train` rebuilds it from the train state, which
carries its own epoch, history, identity and data fingerprint.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from robustbench_lr import __version__, models, numerics
from robustbench_lr.config import TrainConfig
from robustbench_lr.data import Data, DatasetSpec
from robustbench_lr.errors import RobustbenchLRError
from robustbench_lr.files import atomic_write, atomic_write_json, file_digest
from robustbench_lr.methods import METHODS

MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.safetensors"
META_FILE = "meta.json"
FORMAT = "robustbench-lr/2"  # /2: meta.json vouches for its files by digest


class CheckpointError(RobustbenchLRError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not match what was asked for."""


class CorruptFileError(CheckpointError):
    """A checkpoint file cannot be read at all (truncated, not safetensors, torn)."""


@torch.no_grad()
def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Inference weights with every parametrization (SN, SRN) materialized into plain tensors.

    Read in eval mode (no power-iteration step): the weights the test accuracy was measured
    with. Not deepcopy + `remove_parametrizations`: the copy shares torch's generated
    Parametrized* class, and removing its parametrization deletes the original's `weight` too.
    """
    was_training = model.training
    model.eval()
    state = {k: v for k, v in model.state_dict().items() if ".parametrizations." not in f".{k}"}
    for prefix, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for name in module.parametrizations.keys():
                state[f"{prefix}.{name}" if prefix else name] = getattr(module, name)
    model.train(was_training)
    return {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in state.items()
    }


def _identity(cfg: TrainConfig) -> dict[str, str]:
    return {
        "format": FORMAT,
        "dataset": cfg.dataset,
        "arch": cfg.arch,
        "width": f"{cfg.width:g}",
        "method": cfg.method,
    }


_META_KEY = "robustbench_lr"


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    # safetensors keeps its metadata in a hash map whose order varies between runs; a single
    # key holding sorted JSON keeps the file bytes identical for identical contents.
    packed = {_META_KEY: json.dumps(metadata, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=packed))


def _load_tensors(
    path: Path, header_only: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (none when `header_only`) and the stamped metadata of a safetensors file."""
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        tensors = {} if header_only else load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = json.loads((handle.metadata() or {}).get(_META_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptFileError(
            f"{path} is corrupt or truncated ({err}); re-run `robustbench-lr train` with the same flags to rebuild it"
        ) from None
    return tensors, metadata


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's meta.json; a clear error when it is not a checkpoint folder."""
    path = Path(folder) / META_FILE
    if not Path(folder).exists():
        raise CheckpointError(f"checkpoint folder {folder} is missing (no such folder)")
    if not path.exists():
        raise CheckpointError(
            f"{folder} is not a robustbench-lr checkpoint: {META_FILE} is missing"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is corrupt ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is corrupt (a JSON {type(meta).__name__}, not an object)")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} is corrupt: it holds no training config")
    return meta


def verify(folder: str | Path) -> dict[str, Any]:
    """The commit point of `folder` after checking every file it vouches for; else one line.

    Every reader goes through here, so weights out of step with their meta.json (an
    interrupted write, a truncated or swapped file) are never evaluated as that model.
    """
    folder = Path(folder)
    meta = read_meta(folder)
    vouched = meta.get("files")
    if not isinstance(vouched, dict) or not vouched:
        raise CheckpointError(f"{folder / META_FILE} names no files to vouch for; retrain it")
    for name, digest in sorted(vouched.items()):
        path = folder / name
        if not path.exists():
            raise CheckpointError(
                f"{path} is missing although {META_FILE} vouches for it; re-run `robustbench-lr train` with the same flags to rebuild it"
            )
        if file_digest(path) != digest:
            raise CheckpointError(
                f"{path} does not match its commit point {META_FILE} (interrupted write, truncated or replaced file); re-run `robustbench-lr train` with the same flags to rebuild it"
            )
    _check_record(folder, meta)
    return meta


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)  # NaN-safe, unlike ==


def _check_record(folder: Path, meta: dict[str, Any]) -> None:
    """meta.json's numbers are the ones its train state carries, or one line naming the first
    that differs: an edited copy (a clean accuracy typed in by hand) would otherwise be
    reported as measured."""
    if STATE_FILE not in meta["files"]:
        raise CheckpointError(f"{folder / META_FILE} does not vouch for {STATE_FILE}; retrain it")
    _, stamp = _load_tensors(folder / STATE_FILE, header_only=True)
    history = json.loads(stamp.get("history", "null"))
    expected = {
        "epoch": int(stamp.get("epoch", -1)),
        "history": history,
        "clean_acc": history[-1]["test_acc"] if history else None,
        "data_fingerprint": stamp.get("data_fingerprint", ""),
        "finished": int(stamp.get("epoch", -1)) >= int(meta.get("config", {}).get("epochs", 0)),
    }
    for key, value in expected.items():
        if _canonical(meta.get(key)) != _canonical(value):
            said = "a history" if key == "history" else f"{key} {meta.get(key)!r}"
            kept = "another" if key == "history" else repr(value)
            raise CheckpointError(
                f"{folder / META_FILE} reports {said} but its train state {STATE_FILE} (vouched "
                f"for by digest) records {kept}: meta.json was edited; re-run `robustbench-lr "
                "train` with the same flags to rewrite it from the train state"
            )


def environment() -> dict[str, str]:
    """Package versions and git revision recorded with every checkpoint and report."""
    import numpy
    import sklearn

    try:
        git = ["git", "rev-parse", "HEAD"]
        done = subprocess.run(
            git, capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent, check=False
        )
        rev = done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return {
        "robustbench_lr": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
        "git_revision": rev,
    }


@dataclass
class TrainState:
    """What a resume restores: the epoch reached, the history, and the tensors."""

    epoch: int
    history: list[dict[str, float]]
    model: dict[str, torch.Tensor]
    aux: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    data_fingerprint: str


def save(
    folder: Path,
    cfg: TrainConfig,
    data: Data,
    model: nn.Module,
    aux: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, float]],
    extra_meta: dict[str, Any],
) -> None:
    """Write one epoch's checkpoint: train state, then weights, then the commit point.

    A kill between two renames leaves a train state ahead of meta.json; `train` resumes from
    it and rewrites the rest, byte for byte what an uninterrupted run writes.
    """
    ident = _identity(cfg)
    state: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model.state_dict().items()}
    state.update({f"aux/{k}": v for k, v in aux.state_dict().items()})
    for index, param_state in optimizer.state_dict()["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                state[f"optim/{index}/{key}"] = value
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    stamp = {**ident, "epoch": str(epoch), "data_fingerprint": data.fingerprint}
    _save_tensors(folder / STATE_FILE, state, {**stamp, "history": json.dumps(history)})
    _save_tensors(folder / MODEL_FILE, plain_state_dict(model), stamp)
    meta = {
        "format": FORMAT,
        "files": {name: file_digest(folder / name) for name in (MODEL_FILE, STATE_FILE)},
        "data_fingerprint": data.fingerprint,
        "config": cfg.to_dict(),
        "dataset_spec": {**data.spec.__dict__},
        "epoch": epoch,
        "finished": epoch >= cfg.epochs,
        "history": history,
        "clean_acc": history[-1]["test_acc"] if history else None,
        "environment": environment(),
        "numerics": (record := numerics.fingerprint(str(extra_meta.get("device", "cpu")))),
        "numerics_key": numerics.comparison_key(record),
        **extra_meta,
    }
    atomic_write_json(folder / META_FILE, meta)


def stored_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A meta.json config as today's code would write it: options the method gained since take
    their defaults, which by rule (its tests compare bytes) are what it did before."""
    if stored.get("method") not in METHODS:
        return stored
    defaults = {o.name: o.default for o in METHODS[stored["method"]].options}
    given = stored.get("method_options") or {}
    completed = {**{k: v for k, v in defaults.items() if k not in given}, **given}
    return {**stored, "method_options": json.loads(json.dumps(completed))}


def load_train_state(folder: Path, cfg: TrainConfig) -> TrainState | None:
    """The saved train state of `folder` if it belongs to `cfg`; None when there is none yet."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    meta_path = folder / META_FILE
    if meta_path.exists():
        try:
            stored = stored_config(read_meta(folder)["config"])
        except CheckpointError:  # a commit point from an older format or a torn one: ignore it
            stored = cfg.as_stored()
        if stored != cfg.as_stored():
            diff = {k: (stored.get(k), v) for k, v in cfg.to_dict().items() if stored.get(k) != v}
            raise CheckpointError(
                f"{folder} holds a different run (stored vs asked: {diff}); use another --out or delete it"
            )
    tensors, metadata = _load_own(path, cfg)
    split: dict[str, dict[str, torch.Tensor]] = {"model": {}, "aux": {}, "optim": {}}
    for key, value in tensors.items():
        group, rest = key.split("/", 1)
        split[group][rest] = value
    return TrainState(
        int(metadata["epoch"]),
        json.loads(metadata["history"]),
        split["model"],
        split["aux"],
        split["optim"],
        metadata.get("data_fingerprint", ""),
    )


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, torch.Tensor]) -> None:
    """Put saved per-parameter optimizer tensors (momentum buffers) back in place."""
    state = optimizer.state_dict()
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in saved.items():
        index, name = key.split("/", 1)
        per_param.setdefault(int(index), {})[name] = value
    state["state"] = per_param
    optimizer.load_state_dict(state)


def _load_own(path: Path, cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """`_load_tensors(path)`, refused when its stamp names another model than `cfg`'s."""
    tensors, metadata = _load_tensors(path)
    expected = _identity(cfg)
    wrong = {k: (metadata.get(k), v) for k, v in expected.items() if metadata.get(k) != v}
    if wrong:
        detail = ", ".join(
            f"{k}: file has {have!r}, expected {want!r}" for k, (have, want) in wrong.items()
        )
        raise CheckpointError(f"{path} belongs to another model ({detail})")
    return tensors, metadata


def build_from_meta(meta: dict[str, Any]):
    """The inference architecture a checkpoint's meta.json describes, freshly initialized.

    The method's `structure` hook re-adds inference-time modules (Bottle-LR). Initialization
    draws from torch's global generator (the cushion analysis seeds it, Appendix E).
    """
    cfg = TrainConfig.from_dict(meta["config"])
    spec_raw = meta["dataset_spec"]
    spec = DatasetSpec(
        **{**spec_raw, "mean": tuple(spec_raw["mean"]), "std": tuple(spec_raw["std"])}
    )
    model = models.build(cfg.arch, spec, cfg.width)
    method = METHODS.get(cfg.method)
    method.structure(model, cfg.arch, method.resolve(cfg.method_options))
    return model


def load_model(folder: str | Path, device: torch.device | str = "cpu"):
    """`(model, meta)`: the inference model of a checkpoint folder with its weights (eval mode).

    A weights file from another arch/dataset, truncated or missing, is a `CheckpointError`.
    """
    folder = Path(folder)
    meta = verify(folder)
    cfg = TrainConfig.from_dict(meta["config"])
    model = build_from_meta(meta)
    tensors, _ = _load_own(folder / MODEL_FILE, cfg)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{folder / MODEL_FILE} does not fit {cfg.arch} on {cfg.dataset}: {str(err).splitlines()[0]}"
        ) from None
    return model.to(device).eval(), meta

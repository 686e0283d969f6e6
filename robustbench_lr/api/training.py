"""`train(...)` and `load(checkpoint)`: the `train` command and the checkpoint loader, in Python.

Training settings are `config.TrainConfig`'s fields with its defaults, and method options the
method's own `Option`s, so the API takes exactly what `robustbench-lr train` takes and the
checkpoint it writes is the one the command writes (same folder, same bytes, resumable by
either). Every name and value is checked before a folder is created.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from robustbench_lr.api import validate
from robustbench_lr.checkpoints import META_FILE, load_model, read_meta
from robustbench_lr.config import TrainConfig
from robustbench_lr.data import DEFAULT_DATA_ROOT, LoadOptions
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.methods import METHODS
from robustbench_lr.models import ARCHS
from robustbench_lr.settings import Boolean, NonNegative
from robustbench_lr.step import DEFAULT_STEP_MODE, STEP_MODES
from robustbench_lr.train import train as train_checkpoint

# TrainConfig fields `train` takes as keywords that declare no type of their own (the others'
# `setting` declarations check them, as they check the command's flags).
UNDECLARED = {"momentum": NonNegative, "svhn_extra": Boolean}
NAMED = ("dataset", "arch", "method", "method_options")


@dataclass(frozen=True)
class Checkpoint:
    """A trained checkpoint: its folder and meta.json (config, history, clean accuracy).

    Usable wherever a checkpoint path is (`os.fspath`), e.g. `load(ckpt)`, `analyze(kind, ckpt)`.
    """

    folder: Path
    meta: dict[str, Any]

    def __fspath__(self) -> str:
        return str(self.folder)

    @property
    def clean_acc(self) -> float:
        """Clean test accuracy (%) after the last epoch."""
        return float(self.meta["clean_acc"])


def train(
    method: str = TrainConfig.method,
    dataset: str = TrainConfig.dataset,
    arch: str = TrainConfig.arch,
    *,
    out: str | Path = "checkpoints",
    device: str = "auto",
    progress: bool = True,
    step_mode: str = DEFAULT_STEP_MODE,
    data_root: str | Path = DEFAULT_DATA_ROOT,
    download: bool = False,
    **options: Any,
) -> Checkpoint:
    """Train (or resume, or find finished) one model, as `robustbench-lr train` does.

    `options` are `TrainConfig` fields (`epochs`, `seed`, `width`, `batch_size`, `lr`, ...,
    defaults the paper's recipe) and the method's own options (`lambda_c`, `rank`, ...).
    """
    validate.name_in("method", method, METHODS.names())
    validate.name_in("arch", arch, ARCHS.names())
    dataset = validate.dataset_name(dataset)
    validate.name_in("step_mode", step_mode, STEP_MODES.names())
    validate.name_in("device", device, list(validate.DEVICES))
    config = {f.name for f in fields(TrainConfig)} - set(NAMED)
    own = {o.name for o in METHODS[method].options}
    settings = {k: v for k, v in options.items() if k in config}
    method_options = {k: v for k, v in options.items() if k in own and k not in config}
    stray = [k for k in options if k not in config and k not in own]
    if stray:
        valid = sorted(config | own)
        # The key as the value too: the close-match hint is looked up from the value.
        raise InvalidArgument(stray[0], stray[0], valid, f"is no option of method {method}")
    settings = _check_settings(settings)
    try:
        resolved = METHODS[method].resolve(method_options)
    except (TypeError, ValueError) as err:
        raise InvalidArgument("options", method_options, f"{method}'s options", str(err)) from err
    cfg = TrainConfig(
        dataset=dataset, arch=arch, method=method, method_options=resolved, **settings
    )
    load_options = LoadOptions(data_root=str(data_root), download=download)
    done = train_checkpoint(cfg, out, device, load_options, progress=progress, step_mode=step_mode)
    return Checkpoint(done.folder, read_meta(done.folder))


def _check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Each of `settings` checked by the type its `TrainConfig` field declares (a limit may be
    None: no limit)."""
    checked = {}
    for key, value in settings.items():
        kind = TrainConfig.__dataclass_fields__[key].metadata.get("kind") or UNDECLARED[key]
        none_ok = value is None and key.endswith("_limit")
        checked[key] = value if none_ok else validate.setting(key, kind, value)
    return checked


def checkpoint_folder(checkpoint: Any) -> Path:
    """The folder of a checkpoint given as a path or a `Checkpoint`, if it holds meta.json."""
    if not isinstance(checkpoint, (str, Path, Checkpoint)):
        raise InvalidArgument(
            "checkpoint", type(checkpoint).__name__, "a checkpoint folder or train()'s result"
        )
    folder = Path(checkpoint)
    if not (folder / META_FILE).is_file():
        raise InvalidArgument(
            "checkpoint", str(folder), f"a folder holding {META_FILE}", "is no checkpoint"
        )
    return folder


def load(checkpoint: str | Path | Checkpoint, device: str = "cpu") -> nn.Module:
    """The network of a checkpoint, in eval mode on `device`: it takes images in [0, 1]
    (its normalization is its first layer), so it can go straight into `benchmark`."""
    folder = checkpoint_folder(checkpoint)
    name = validate.device(device, nn.Module())
    model, _meta = load_model(folder, "cpu" if name == "auto" else name)
    return model

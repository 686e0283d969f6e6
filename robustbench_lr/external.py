"""Models from outside the suite: a user's own factory and weights, or a RobustBench zoo entry.

The attacks, the audit and the analyses only need a network from images in [0, 1] to logits and
its test set, so an external model becomes the same `target.Target` a checkpoint does, and every
command that takes `--checkpoint` takes it too.

Result rows name it by a digest of its weights (`checkpoint` = `external:<name>@<sha256[:12]>`,
`robustbench:` for a zoo model; `method` = `<name>@<sha256[:12]>`): the regression gate matches
rows on every key but `checkpoint`, so two runs of the same weights compare and two different
weights never do. Weights are read as safetensors or through `torch.load(weights_only=True)`;
a pickle of anything else is refused, never executed.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from robustbench_lr.data import DatasetSpec, LoadOptions, dataset_label, load
from robustbench_lr.errors import RobustbenchLRError
from robustbench_lr.target import Target

DEFAULT_MODEL_DIR = "models"  # RobustBench's own default (`robustbench.utils.load_model`)
THREATS = ("Linf", "L2")
_FACTORY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PROBE = 2  # images in the batch that checks a model takes the dataset's images


class ExternalModelError(RobustbenchLRError, ValueError):
    """An external model cannot be built, loaded or used; the message says why, on one line."""


def check_factory(text: str) -> str:
    """`MODULE:FACTORY` as written (`pkg.models:build`, `pkg.models:Net.small`); else ValueError."""
    if not _FACTORY.fullmatch(text):
        raise ValueError(f"{text!r} is not MODULE:FACTORY (e.g. mypkg.models:build)")
    return text


def check_name(text: str) -> str:
    """A model name for result rows and file names: 1-64 of [A-Za-z0-9_.-]; else ValueError."""
    if not _NAME.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a model name: 1-64 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit"
        )
    return text


@dataclass(frozen=True)
class ExternalTargetSpec:
    """What names an external model (command line or a profile's `[[models]]` entry), as plain
    data that `external_build.resolve` builds.

    Either `factory` (`MODULE:FACTORY`, optional `weights`) or `robustbench` (a zoo name, read
    from `model_dir/<dataset>/<threat>/<name>.pt`; `download` lets RobustBench fetch missing
    files). `tap` is the submodule analyses read.
    """

    dataset: str
    factory: str = ""
    weights: str = ""
    robustbench: str = ""
    threat: str = "Linf"
    model_dir: str = DEFAULT_MODEL_DIR
    download: bool = False
    name: str = ""
    tap: str = ""

    def __post_init__(self) -> None:
        if bool(self.factory) == bool(self.robustbench):
            raise ValueError("an external model has either a factory or a robustbench name")

    @property
    def label(self) -> str:
        """The name in result rows: `name`, else the factory's attribute or the zoo name."""
        return self.name or self.robustbench or self.factory.rsplit(":", 1)[1].rsplit(".", 1)[-1]

    @property
    def kind(self) -> str:
        """`external` or `robustbench`: the prefix of the `checkpoint` column."""
        return "robustbench" if self.robustbench else "external"


class TappedModel(nn.Module):
    """An external network with `StagedNet`'s reading interface, so analyses need no new code.

    Every submodule is a tap, named by its dotted path in `net` (`features.3`, `layer4.1`) and
    read with a forward hook on its last call; `forward` is `net`'s own.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def tap_names(self) -> list[str]:
        """Dotted paths of every submodule of the network."""
        return [name for name, _ in self.net.named_modules() if name]

    def run(
        self, x: torch.Tensor, taps: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits plus the outputs of the `taps` submodules, each flattened to (batch, m)."""
        modules = dict(self.net.named_modules())
        unknown = sorted(t for t in set(taps) if not t or t not in modules)
        if unknown:
            raise KeyError(f"unknown taps {unknown}; taps are the submodules of the model")
        found: dict[str, torch.Tensor] = {}

        def keep(name: str, module: nn.Module, inputs: Any, output: Any) -> None:
            if not torch.is_tensor(output):
                raise ValueError(f"tap {name!r} returns a {type(output).__name__}, not a tensor")
            found[name] = output.flatten(1)

        handles = [modules[t].register_forward_hook(partial(keep, t)) for t in dict.fromkeys(taps)]
        try:
            logits = self.net(x)
        finally:
            for handle in handles:
                handle.remove()
        return logits, found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True, eq=False)
class ExternalTarget:
    """A built external model with its weights loaded: what `target.load_target` takes besides
    a checkpoint folder.

    `str()` is its `checkpoint` column; `load` gives it a checkpoint-shaped `meta`, so code
    reading `target.meta` need not know where the model came from.
    """

    spec: ExternalTargetSpec
    model: TappedModel
    digest: str  # sha256 of the weights (`weights_digest`)
    arch: str  # the factory's attribute, or the zoo architecture's class
    details: dict[str, Any] = field(default_factory=dict)  # meta["external"] or meta["zoo"]

    def __str__(self) -> str:
        return f"{self.spec.kind}:{self.method}"

    @property
    def method(self) -> str:
        """The `method` column: name and weights, so only the same weights match in `regress`."""
        return f"{self.spec.label}@{self.digest[:12]}"

    def load(
        self,
        device: torch.device | str,
        options: LoadOptions | None,
        train: bool,
        test_limit: int | None,
    ) -> Target:
        """The model on `device` and the dataset's whole test split (`test_limit`: stratified)."""
        data = load(self.spec.dataset, options, None if train else 1, test_limit)
        check_takes(self.model, data.spec, self.spec)
        meta = {
            "format": self.spec.kind,
            "config": {
                "dataset": self.spec.dataset,
                "arch": self.arch,
                "width": 1.0,
                "method": self.method,
                "seed": 0,
            },
            "dataset_spec": {**data.spec.__dict__},
            "dataset_label": dataset_label(self.spec.dataset),
            "data_fingerprint": data.fingerprint,
            "clean_acc": None,
            "device": "",
            "zoo" if self.spec.robustbench else "external": self.details,
        }
        return Target(self.model.to(device).eval(), meta, str(self), data)


def import_factory(ref: str) -> Callable[[], Any]:
    """The callable `MODULE:FACTORY` names, imported; the working folder is importable (the
    console script, unlike `python -m`, does not put it on `sys.path`)."""
    module_name, attribute = check_factory(ref).split(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ExternalModelError(
            f"model factory {ref}: cannot import {module_name}: {err}"
        ) from None
    except Exception as err:  # the user's module may raise anything while it is imported
        raise ExternalModelError(
            f"model factory {ref}: importing {module_name} raised {_one_line(err)}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ExternalModelError(
                f"model factory {ref}: {module_name} has no attribute {part!r}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ExternalModelError(f"model factory {ref}: {attribute} is not callable")
    return obj


def build_network(ref: str) -> nn.Module:
    """Call the factory `ref` with no arguments; its result must be an `nn.Module`."""
    factory = import_factory(ref)
    try:
        net = factory()
    except Exception as err:  # the user's factory may raise anything
        raise ExternalModelError(f"model factory {ref} raised {_one_line(err)}") from None
    if not isinstance(net, nn.Module):
        raise ExternalModelError(
            f"model factory {ref} returned a {type(net).__name__}, not a torch.nn.Module"
        )
    return net


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a `.safetensors` file or a `torch.save`d one (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ExternalModelError(f"weights file {path} {what}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ExternalModelError(
                f"weights file {path} is not a readable safetensors file ({_one_line(err)})"
            ) from None
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols on stderr: one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's text is a page of advice (weights_only=False among it); the cause is one line.
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        cause = re.search(r"(WeightsUnpickler error:)\s*(.+?)\s*(?:\n\n|$)", str(err))
        what = f"it pickles {refused.group(1)}" if refused else _one_line(err)
        what = " ".join(cause.groups()) if cause and not refused else what
        raise ExternalModelError(
            f"weights file {path} is not a plain state dict: torch.load(weights_only=True) "
            f"refuses it ({what}); save model.state_dict() with torch.save, or as .safetensors"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ExternalModelError(
            f"weights file {path} is neither safetensors nor a PyTorch state dict "
            f"({_one_line(err)})"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise ExternalModelError(
            f"weights file {path} holds a {type(state).__name__} that is not a state dict "
            "(parameter name -> tensor)"
        )
    return dict(state)


def load_weights(net: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load `state` into `net` if every key and shape fits, else say which do not."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        f"{label} {_few(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shapes (file vs model)", shapes),
        )
        if keys
    ]
    if problems:
        raise ExternalModelError(f"{what} does not fit the model: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)


def weights_digest(net: nn.Module) -> str:
    """sha256 of a network's state (names, dtypes, shapes, bytes): the weights' identity.

    Of the loaded state, not a file: the same weights as safetensors or .pt are one model.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def check_takes(model: nn.Module, spec: DatasetSpec, model_spec: ExternalTargetSpec) -> None:
    """One forward pass on a batch of the dataset's shape: logits of its classes, or an error
    naming the sizes here rather than mid-attack."""
    shape = (spec.channels, spec.size, spec.size)
    where = model_spec.factory or f"RobustBench model {model_spec.robustbench}"
    device = next(model.parameters(), torch.empty(0)).device
    try:
        out = model.eval()(torch.zeros(_PROBE, *shape, device=device))
    except Exception as err:  # the user's forward may raise anything on a wrong input size
        raise ExternalModelError(
            f"{where} does not take {model_spec.dataset} images of shape {shape}: {_one_line(err)}"
        ) from None
    if not torch.is_tensor(out) or tuple(out.shape) != (_PROBE, spec.num_classes):
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ExternalModelError(
            f"{where} returns {got} for a batch of {_PROBE} {model_spec.dataset} images; "
            f"expected logits of shape ({_PROBE}, {spec.num_classes})"
        )
    if not bool(torch.isfinite(out).all()):  # scored, NaN reads as chance and robust = clean
        raise ExternalModelError(
            f"{where} returns non-finite logits (NaN or infinity) for a batch of {_PROBE} "
            f"{model_spec.dataset} images; expected finite logits"
        )


def _few(items: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"

"""RobustBench zoo models, built by the `robustbench` package from weights already on disk.

`robustbench.utils.load_model` reads `model_dir/<dataset>/<threat>/<name>.pt` (ensembles:
`<name>.pt_m<i>.pt`) and downloads what is missing; here it runs only once every file is there
unless `--download` is given, so offline a missing file is one line, not a network error. The
`zoo` extra needs torch>=2.6, whose `torch.load` defaults to weights_only=True: no pickle runs.

The zoo's own accuracies (leaderboard) come from RobustBench's `model_info` JSON, beside the
model folder as in RobustBench's checkout (`model_info`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import pickle
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from torch import nn

from robustbench_lr.external import DEFAULT_MODEL_DIR, ExternalModelError, ExternalTargetSpec

DATASETS = ("cifar10", "cifar100")  # RobustBench's datasets the suite has (no ImageNet)
# The model_info fields kept in meta["zoo"]: ours -> RobustBench's. Accuracies are percent.
_TEXT_FIELDS = {"paper": "name", "link": "link", "venue": "venue", "architecture": "architecture"}
_NUMBER_FIELDS = {
    "clean_acc": "clean_acc",
    "autoattack_acc": "autoattack_acc",
    "external_acc": "external",
}


def _robustbench() -> SimpleNamespace:
    """The parts of `robustbench` used here, imported without its import-time warnings.

    robustbench 1.1 imports `autoattack`, which its dependency `pyautoattack` ships under that
    other name: the alias makes it importable where only the PyPI release is installed.
    """
    if importlib.util.find_spec("autoattack") is None and importlib.util.find_spec("pyautoattack"):
        sys.modules["autoattack"] = importlib.import_module("pyautoattack")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import timm
            from robustbench import utils
            from robustbench.model_zoo import model_dicts
            from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as err:
        raise ExternalModelError(
            f"--robustbench needs the robustbench package ({err}): "
            "pip install 'robustbench-lr[zoo]'"
        ) from None
    return SimpleNamespace(
        timm=timm,
        utils=utils,
        models=model_dicts,
        dataset=BenchmarkDataset,
        threat=ThreatModel,
    )


def model_files(spec: ExternalTargetSpec, entry: dict[str, Any]) -> list[Path]:
    """Where `robustbench.utils.load_model` reads the zoo entry's weights from."""
    path = Path(spec.model_dir) / spec.dataset / spec.threat / f"{spec.robustbench}.pt"
    ids = entry.get("gdrive_id")
    if isinstance(ids, list):
        return [Path(f"{path}_m{i}.pt") for i in range(len(ids))]
    return [path]


def build(spec: ExternalTargetSpec) -> nn.Module:
    """The zoo model `spec.robustbench` with its weights (eval mode); offline unless download."""
    if spec.dataset not in DATASETS:
        raise ExternalModelError(
            f"RobustBench model {spec.robustbench}: dataset {spec.dataset!r} has no zoo here; "
            f"RobustBench models are of {', '.join(DATASETS)}"
        )
    rb = _robustbench()
    entries = rb.models[rb.dataset(spec.dataset)][rb.threat(spec.threat)]
    if spec.robustbench not in entries:
        close = difflib.get_close_matches(spec.robustbench, list(entries), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"{len(entries)} names exist"
        raise ExternalModelError(
            f"unknown RobustBench model {spec.robustbench!r} for {spec.dataset} {spec.threat}; "
            f"{hint}"
        )
    timm_name = f"{spec.robustbench.lower().replace('-', '_')}_{spec.dataset}_{spec.threat.lower()}"
    if rb.timm.is_model(timm_name) and not spec.download:
        raise ExternalModelError(
            f"RobustBench model {spec.robustbench} is served by timm from the Hugging Face hub, "
            "not from --model-dir; add --download (needs network)"
        )
    missing = [p for p in model_files(spec, entries[spec.robustbench]) if not p.is_file()]
    if missing and not spec.download:
        raise ExternalModelError(
            f"RobustBench model {spec.robustbench} not found: {missing[0]} is missing; pass "
            f"--model-dir DIR holding {spec.dataset}/{spec.threat}/{spec.robustbench}.pt "
            "(RobustBench's layout), or add --download to fetch it (needs network)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = rb.utils.load_model(
                spec.robustbench,
                model_dir=spec.model_dir,
                dataset=spec.dataset,
                threat_model=spec.threat,
            )
    except (RuntimeError, pickle.UnpicklingError, KeyError, ValueError, OSError) as err:
        text = " ".join(str(err).split())
        raise ExternalModelError(
            f"RobustBench model {spec.robustbench} from {spec.model_dir}: cannot load its "
            f"weights ({type(err).__name__}: {text})"
        ) from None
    return net.eval()


def model_info(
    name: str, dataset: str, threat: str = "Linf", model_dir: str | Path = DEFAULT_MODEL_DIR
) -> dict[str, Any]:
    """RobustBench's record of a zoo model (`meta["zoo"]`): paper, architecture, accuracies.

    Read from `<model_dir>/../model_info/<dataset>/<threat>/<name>.json`; accuracies become
    numbers (percent), absent ones None, so a model without a record still has every key.
    """
    path = Path(model_dir).parent / "model_info" / dataset / threat / f"{name}.json"
    record: dict[str, Any] = {}
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ExternalModelError(f"RobustBench model_info {path} is not JSON ({err})") from None
    info: dict[str, Any] = {
        "model_name": name,
        "dataset": dataset,
        "threat": threat,
        "model_info": str(path) if record else "",
    }
    for ours, theirs in _TEXT_FIELDS.items():
        info[ours] = str(record.get(theirs, ""))
    for ours, theirs in _NUMBER_FIELDS.items():
        info[ours] = _percent(record.get(theirs), path, theirs)
    return info


def _percent(value: Any, path: Path, key: str) -> float | None:
    """RobustBench writes accuracies as strings ("91.08"); "" or absent is None."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ExternalModelError(
            f"RobustBench model_info {path}: {key} = {value!r} is not a number"
        ) from None

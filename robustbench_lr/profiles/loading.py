"""From a profile file to a `Profile`: read the TOML, check it against the schema, build the
configs, and check what only the whole profile can tell (black-box sources, folders, names).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib
from pydantic import ValidationError

from robustbench_lr.config import TrainConfig
from robustbench_lr.external import DEFAULT_MODEL_DIR, ExternalTargetSpec
from robustbench_lr.methods import METHODS
from robustbench_lr.profiles.model import Profile, shipped_profiles
from robustbench_lr.profiles.rules import one_line, path_of
from robustbench_lr.profiles.schema import AUDIT_OPTIONS, Group, ProfileFile, Training, Zoo
from robustbench_lr.settings import adapter
from robustbench_lr.zoo import DATASETS as ZOO_DATASETS


class _Rejected(Exception):
    """What the schema cannot tell, found while building: `parse_profile` adds the source."""


def _training(table: Training, *extra: str) -> dict[str, Any]:
    """The training keys `table` sets (a key left out keeps TrainConfig's default)."""
    keys = (*Training.keys(), *extra)
    return {key: getattr(table, key) for key in keys if getattr(table, key) is not None}


def _group_configs(group: Group, index: int, top: ProfileFile) -> list[TrainConfig]:
    """One TrainConfig per method and seed of a [[models]] group."""
    stray = [m for m in group.method_options if m not in group.methods]
    if stray:
        raise _Rejected(
            f"{path_of(('models', index, 'method_options', stray[0]))}: the group does not train "
            f"method {stray[0]!r} (its methods: {', '.join(group.methods)})"
        )
    settings = {**_training(top), **_training(group, "width")}
    seeds = group.seeds or (TrainConfig.seed,)
    configs: list[TrainConfig] = []
    for method in group.methods:
        # A group's own [models.method_options.<method>] overrides the profile's.
        given = {**top.method_options.get(method, {}), **group.method_options.get(method, {})}
        options = METHODS.get(method).resolve(given)
        fixed = {"arch": group.arch, "method": method, "method_options": options}
        configs += [TrainConfig(**settings, **fixed, seed=seed) for seed in seeds]
    return configs


def _models(top: ProfileFile) -> tuple[TrainConfig, ...]:
    """Every group's configs; two groups training one checkpoint folder are an error.

    The folder is told by the fields `config.checkpoint_dir` names it from (that function is
    not called: for an npz it reads the file, which a profile check must not need).
    """
    owner: dict[tuple[Any, ...], int] = {}
    configs = []
    for index, group in enumerate(top.models):
        if not isinstance(group, Group):
            continue
        for cfg in _group_configs(group, index, top):
            folder = (cfg.dataset, cfg.arch, cfg.width, cfg.method, cfg.seed)
            first = owner.setdefault(folder, index)
            if first != index:
                raise _Rejected(
                    f"models[{first}] and models[{index}] both train {cfg.method} {cfg.arch} "
                    f"width {cfg.width:g} seed {cfg.seed} on {cfg.dataset!r} (one checkpoint "
                    "folder; merge the groups or tell them apart)"
                )
            configs.append(cfg)
    return tuple(configs)


def _beside(folder: Path | None, name: str) -> str:
    """`name` read from `folder` when it is relative (and not empty); else as written."""
    if not name or folder is None or Path(name).is_absolute():
        return name
    return os.path.normpath(folder / name)


def _external_models(top: ProfileFile, folder: Path | None) -> tuple[ExternalTargetSpec, ...]:
    """One spec per external [[models]] entry; its dataset is its own, else the profile's.

    A relative `weights` or `model_dir` is read from the profile file's `folder`, as a file
    named in a config is expected to be, so a profile and the weights beside it work from any
    working directory (a profile built in code, with no folder: from the working directory).

    Two entries of one name would share every row column the name fills; a zoo entry must be
    of a dataset RobustBench has. Nothing is imported or read here: the factory, the weights
    and the zoo files are the loader's (`external_build.resolve`).
    """
    specs: dict[str, tuple[int, ExternalTargetSpec]] = {}
    for index, entry in enumerate(top.models):
        if isinstance(entry, Group):
            continue
        dataset = next(d for d in (entry.dataset, top.dataset, TrainConfig.dataset) if d)
        common = {"dataset": dataset, "name": entry.name, "tap": entry.tap}
        if isinstance(entry, Zoo):
            if dataset not in ZOO_DATASETS:
                raise _Rejected(
                    f"models[{index}]: dataset {dataset!r} has no RobustBench models; "
                    f"set dataset to one of {', '.join(ZOO_DATASETS)}"
                )
            zoo = entry.robustbench
            spec = ExternalTargetSpec(
                robustbench=zoo.name,
                threat=zoo.threat,
                model_dir=_beside(folder, zoo.model_dir or DEFAULT_MODEL_DIR),
                download=zoo.download,
                **common,
            )
        else:
            own = entry.external
            weights = _beside(folder, own.weights)
            spec = ExternalTargetSpec(factory=own.factory, weights=weights, **common)
        first, _ = specs.setdefault(spec.label, (index, spec))
        if first != index:
            raise _Rejected(
                f"models[{first}] and models[{index}] are both named {spec.label!r}; "
                'give one a name = "..."'
            )
    return tuple(spec for _, spec in specs.values())


def _check_black_box_sources(profile: Profile) -> None:
    """Every model has a black-box source under the profile's protocol, so no black-box table
    silently loses a row (the source model itself is exempt under the same-seed protocol)."""
    grid = profile.attacks
    if not grid.blackbox:
        return
    for cfg in profile.models:
        exempt = grid.blackbox_protocol == "same-seed" and cfg.method == grid.blackbox_source
        if not exempt and profile.black_box_source(cfg) is None:
            fix = (
                f"add another seed to the {grid.blackbox_source} model"
                if grid.blackbox_protocol == "independent"
                else f"add a {grid.blackbox_source} model of seed {cfg.seed}"
            )
            raise _Rejected(
                f"[attacks] blackbox_protocol = {grid.blackbox_protocol!r}: the {cfg.method} "
                f"model ({cfg.dataset}, {cfg.arch}, width {cfg.width}, seed {cfg.seed}) has no "
                f"{grid.blackbox_source} model to craft its black-box examples on; {fix}, or "
                "set blackbox = false"
            )


# The top-level keys that are `Profile` fields of the same name and value.
_SAME_NAME = "name description n attacks tables corruptions l2 shifts numerics_spread".split()


def parse_profile(raw: dict[str, Any], source: str, folder: Path | None = None) -> Profile:
    """Check a profile's parsed TOML against the schema and build the `Profile`.

    Raises a one-line ValueError (UnknownNameError for an unknown registry name) that starts
    with `profile <source>:`; nothing else, whatever `raw` holds.
    """
    try:
        top = adapter(ProfileFile).validate_python(raw)
        audit, analyses = top.audit, top.analyses
        profile = Profile(
            **{key: getattr(top, key) for key in _SAME_NAME},
            models=_models(top),
            external_models=_external_models(top, folder),
            analyses=analyses.kinds,
            analysis_options=analyses.options,
            matched_partner=analyses.matched_partner,
            audit=audit.enabled,
            audit_n=audit.n,
            audit_eps=audit.eps,
            audit_options={k: v for k in AUDIT_OPTIONS if (v := getattr(audit, k)) is not None},
            source_path=source,
        )
        _check_black_box_sources(profile)
        return profile
    except ValidationError as err:
        kind, message = one_line(err, raw)
    except _Rejected as err:
        kind, message = ValueError, str(err)
    raise kind(" ".join(f"profile {source}: {message}".splitlines())) from None


def _read(name_or_path: str) -> tuple[str, str, Path]:
    """The TOML text of a shipped profile or a file, the source to name in errors, and the
    folder its relative file names are read from (`_external_models`)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"profile file {path} does not exist")
        return path.read_text(), str(path), path.parent
    if name_or_path not in shipped_profiles():
        raise ValueError(
            f"unknown profile {name_or_path!r}; valid choices: {', '.join(shipped_profiles())} or a path to a .toml file"
        )
    folder = resources.files("robustbench_lr.profiles")
    text = folder.joinpath(f"{name_or_path}.toml").read_text()
    return text, f"robustbench_lr/profiles/{name_or_path}.toml", Path(str(folder))


def load_profile(name_or_path: str) -> Profile:
    """Parse and validate a profile by shipped name or path (see the module docstring)."""
    text, source, folder = _read(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = f"profile {source}: not valid TOML: {err}"
        raise ValueError(" ".join(message.splitlines())) from None
    return parse_profile(raw, source, folder)

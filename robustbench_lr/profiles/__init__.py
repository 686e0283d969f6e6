"""Bench profiles: TOML files naming the models to train and the experiments to run on them.

Shipped profiles live beside this file (`smoke`, `cpu`, `paper`, `paper-fast`); a user's own
is passed by path. `load_profile` validates names against the registries up front, so a typo
fails before hours of training rather than after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from robustbench_lr.config import TrainConfig, parse_fraction


@dataclass(frozen=True)
class AttackGrid:
    """Which attacks the bench runs on every model (SPEC §3)."""

    ifsgm_eps: tuple[float, ...] = (8 / 255,)
    ifsgm_steps: tuple[int, ...] = (7, 20)
    blackbox: bool = True
    noise_p: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    noise_draws: int = 1
    minrho: tuple[str, ...] = ()
    minrho_n: int = 200
    # The search's own knobs (`robustbench-lr minrho` flags); the paper's D.3 uses α = 1/255.
    minrho_flags: tuple[str, ...] = ()
    # Which models get the searches, as TrainConfig field -> allowed values (empty: every model).
    # The paper's Tables 3 and 10 are ResNet18 only; the searches are the bench's costliest stage.
    minrho_only: dict[str, tuple[str, ...]] = field(default_factory=dict)
    curves: bool = False
    curve_eps: float = 8 / 255  # budget of the instantaneous/cumulative curves (Fig. 11)
    square_queries: int = 1000


@dataclass(frozen=True)
class Profile:
    """A parsed profile: the training configs and the experiment settings."""

    name: str
    description: str
    models: tuple[TrainConfig, ...]
    n: int
    attacks: AttackGrid
    analyses: tuple[str, ...]
    audit: bool
    audit_n: int
    audit_eps: float = 8 / 255
    # `--option KEY=VALUE` pairs handed to every analysis (e.g. the attacks' eps for Table 6).
    analysis_options: dict[str, str] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    source_path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with the package."""
    return sorted(
        p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml")
    )


def _read(name_or_path: str) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"profile file {path} does not exist")
        return tomllib.loads(path.read_text()), str(path)
    if name_or_path not in shipped_profiles():
        raise ValueError(
            f"unknown profile {name_or_path!r}; valid choices: {', '.join(shipped_profiles())} or a path to a .toml file"
        )
    text = resources.files(__name__).joinpath(f"{name_or_path}.toml").read_text()
    return tomllib.loads(text), f"robustbench_lr/profiles/{name_or_path}.toml"


def selects(only: dict[str, tuple[str, ...]], cfg: TrainConfig) -> bool:
    """Whether `cfg` passes a selector such as `{"arch": ("resnet18",)}` (empty: everything)."""
    return all(str(getattr(cfg, key)) in values for key, values in only.items())


def _selector(raw: dict[str, Any], source: str) -> dict[str, tuple[str, ...]]:
    fields = TrainConfig.__dataclass_fields__
    for key in raw:
        if key not in fields:
            raise ValueError(
                f"profile {source}: unknown model field {key!r} in a selector; valid choices: "
                + ", ".join(sorted(fields))
            )
    return {key: tuple(str(v) for v in values) for key, values in raw.items()}


def load_profile(name_or_path: str) -> Profile:
    """Parse and validate a profile by shipped name or path."""
    from robustbench_lr.analysis import ANALYSES
    from robustbench_lr.methods import METHODS
    from robustbench_lr.models import ARCHS

    raw, source = _read(name_or_path)
    try:
        method_options = raw.get("method_options", {})
        configs = []
        for group in raw["models"]:
            for method in group["methods"]:
                # A group's own [models.method_options.<method>] overrides the profile's.
                given = {
                    **method_options.get(method, {}),
                    **group.get("method_options", {}).get(method, {}),
                }
                options = METHODS.get(method).resolve(given)
                for seed in group.get("seeds", [0]):
                    configs.append(
                        TrainConfig(
                            dataset=group.get("dataset", raw.get("dataset", "digits")),
                            arch=ARCHS.get(group["arch"]) and group["arch"],
                            method=method,
                            epochs=int(group.get("epochs", raw.get("epochs", 8))),
                            seed=int(seed),
                            width=float(group.get("width", 1.0)),
                            lr=float(group.get("lr", raw.get("lr", 0.1))),
                            train_limit=group.get("train_limit", raw.get("train_limit")),
                            test_limit=group.get("test_limit", raw.get("test_limit")),
                            method_options=options,
                        )
                    )
        grid = raw.get("attacks", {})
        attacks = AttackGrid(
            ifsgm_eps=tuple(parse_fraction(e) for e in grid.get("ifsgm_eps", ["8/255"])),
            ifsgm_steps=tuple(int(s) for s in grid.get("ifsgm_steps", [7, 20])),
            blackbox=bool(grid.get("blackbox", True)),
            noise_p=tuple(float(p) for p in grid.get("noise_p", [0.4, 0.6, 0.8, 1.0])),
            noise_draws=int(grid.get("noise_draws", 1)),
            minrho=tuple(grid.get("minrho", [])),
            minrho_n=int(grid.get("minrho_n", 200)),
            minrho_flags=tuple(
                f"--{k.replace('_', '-')}={v}" for k, v in grid.get("minrho_options", {}).items()
            ),
            minrho_only=_selector(grid.get("minrho_only", {}), source),
            curves=bool(grid.get("curves", False)),
            curve_eps=parse_fraction(grid.get("curve_eps", "8/255")),
            square_queries=int(grid.get("square_queries", 1000)),
        )
        analyses = tuple(raw.get("analyses", {}).get("kinds", []))
        for kind in analyses:
            ANALYSES.get(kind)
        audit = raw.get("audit", {})
        return Profile(
            name=raw["name"],
            description=raw.get("description", ""),
            models=tuple(configs),
            n=int(raw.get("n", 500)),
            attacks=attacks,
            analyses=analyses,
            audit=bool(audit.get("enabled", False)),
            audit_n=int(audit.get("n", 200)),
            audit_eps=parse_fraction(audit.get("eps", "8/255")),
            analysis_options={
                k: str(v) for k, v in raw.get("analyses", {}).get("options", {}).items()
            },
            tables=tuple(raw.get("tables", [])),
            source_path=source,
            raw=raw,
        )
    except KeyError as err:
        raise ValueError(f"profile {source}: missing or unknown entry {err}") from None

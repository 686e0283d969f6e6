"""What a parsed profile is: the models and every experiment grid, as frozen dataclasses
whose defaults are the one place each default lives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from robustbench_lr.config import TrainConfig

if TYPE_CHECKING:  # the registries are imported when a profile is parsed, not with this module
    from robustbench_lr.external import ExternalModelSpec


@dataclass(frozen=True)
class AttackGrid:
    """Which attacks the bench runs on every model (SPEC §3)."""

    ifsgm_eps: tuple[float, ...] = (8 / 255,)
    ifsgm_steps: tuple[int, ...] = (7, 20)
    blackbox: bool = True
    # The method whose model of the same dataset, arch and width crafts the black-box examples
    # (the paper: "the N-LR model of the same architecture"), and which seed of it
    # (`BLACKBOX_PROTOCOLS`): by default another seed than the attacked model's.
    blackbox_source: str = "nlr"
    blackbox_protocol: str = "independent"
    noise_p: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    noise_draws: int = 1
    minrho: tuple[str, ...] = ()
    minrho_n: int = 200
    # The search's own knobs (`robustbench-lr minrho` flags); the paper's D.3 uses α = 1/255.
    minrho_options: dict[str, Any] = field(default_factory=dict)
    # Which models get the searches, as TrainConfig field -> allowed values (empty: every model).
    # The paper's Tables 3 and 10 are ResNet18 only; the searches are the bench's costliest stage.
    minrho_only: dict[str, tuple[str, ...]] = field(default_factory=dict)
    curves: bool = False
    curve_eps: float = 8 / 255  # budget of the instantaneous/cumulative curves (Fig. 11)
    square_queries: int = 1000


@dataclass(frozen=True)
class CorruptionGrid:
    """The common-corruptions track (`experiments.corruption`): off unless `enabled`; `source`
    `generate` corrupts each model's test subset, `files` reads CIFAR-10-C / CIFAR-100-C under
    --data-root; empty `corruptions` / `severities` mean all 15 / all 5; `n` None: profile n;
    `datasets` restricts the track to those datasets' models (empty: every model)."""

    enabled: bool = False
    source: str = "generate"
    n: int | None = None
    seed: int = 0
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class L2Grid:
    """The L2 track (`attacks.l2`): off unless `enabled`; each model of `datasets` (empty:
    every model) under `pgd-l2` (`pgd_steps`) and the authors' AutoAttack at L2 (`steps`
    APGD/FAB iterations, `targets`, `queries`), on `n` images (None: profile n), at its
    dataset's L2 ε (`data.l2_eps`). `audit`: also the gradient-masking audit in the L2 ball
    (`robustbench-lr audit --norm L2`) at these budgets; off by default, as it costs about
    as much as the L∞ audit."""

    enabled: bool = False
    audit: bool = False
    n: int | None = None
    pgd_steps: int = 20
    steps: int = 100
    targets: int = 9
    queries: int = 5000
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShiftGrid:
    """Natural distribution shifts (`shifts.py`): off unless `enabled`; the models of each
    shift's own dataset (and of `datasets`, when given) on `n` images (None: profile n) of
    every set in `shifts`, read under --data-root."""

    enabled: bool = False
    shifts: tuple[str, ...] = ("cifar10.1",)
    n: int | None = None
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A parsed profile: the training configs and the experiment settings."""

    name: str
    description: str = ""
    models: tuple[TrainConfig, ...] = ()
    # `[[models]]` entries naming a model the bench does not train: `external = {...}` (your
    # factory and weights) or `robustbench = {...}` (a zoo entry); `external_build.load_external_target`
    # loads each.
    external_models: tuple[ExternalModelSpec, ...] = ()
    n: int = 500
    attacks: AttackGrid = field(default_factory=AttackGrid)
    analyses: tuple[str, ...] = ()
    audit: bool = False
    audit_n: int = 200
    audit_eps: float = 8 / 255
    # The `[audit]` budget keys the profile set, as `AuditOptions` field -> value (each is the
    # `robustbench-lr audit --<field with dashes>` flag); the others keep AuditOptions' defaults.
    audit_options: dict[str, int] = field(default_factory=dict)
    # `--option KEY=VALUE` pairs handed to every analysis (e.g. the attacks' eps for Table 6).
    analysis_options: dict[str, str] = field(default_factory=dict)
    # Table 6's N-LR protocol (D.5): the black-box source's model is attacked until this
    # method's model of the same dataset, arch, width and seed is fooled.
    matched_partner: str = "1lr"
    tables: tuple[str, ...] = ()
    source_path: str = ""
    corruptions: CorruptionGrid = field(default_factory=CorruptionGrid)
    l2: L2Grid = field(default_factory=L2Grid)
    shifts: ShiftGrid = field(default_factory=ShiftGrid)
    # Retrain every model under a perturbed code path (`perturbed.py`): its numerics spread.
    numerics_spread: bool = False

    def partner(self, cfg: TrainConfig, method: str) -> TrainConfig | None:
        """This profile's `method` model of the same dataset, arch, width and seed as `cfg`."""
        return _same_seed(cfg, self._relatives(cfg, method))

    def black_box_source(self, cfg: TrainConfig) -> TrainConfig | None:
        """The model black-box examples for `cfg` are crafted on (`attacks.blackbox_protocol`),
        or None when that would be `cfg` itself (examples crafted on the attacked model are
        white-box, whatever a column says)."""
        relatives = self._relatives(cfg, self.attacks.blackbox_source)
        source = BLACKBOX_PROTOCOLS[self.attacks.blackbox_protocol].pick(cfg, relatives)
        return source if source is not None and source != cfg else None

    def _relatives(self, cfg: TrainConfig, method: str) -> list[TrainConfig]:
        """The `method` models of `cfg`'s dataset, arch and width, by seed."""
        return sorted(
            (
                m
                for m in self.models
                if (m.method, m.dataset, m.arch, m.width)
                == (method, cfg.dataset, cfg.arch, cfg.width)
            ),
            key=lambda m: m.seed,
        )


def _same_seed(cfg: TrainConfig, relatives: list[TrainConfig]) -> TrainConfig | None:
    return next((m for m in relatives if m.seed == cfg.seed), None)


def _next_seed(cfg: TrainConfig, relatives: list[TrainConfig]) -> TrainConfig | None:
    """The source model with the next seed after `cfg`'s, cyclically (seeds 0, 1: 0 -> 1 and
    1 -> 0), never `cfg`'s own seed."""
    others = [m for m in relatives if m.seed != cfg.seed]
    return next((m for m in others if m.seed > cfg.seed), others[0] if others else None)


@dataclass(frozen=True)
class BlackBoxProtocol:
    """Which seed of the source method crafts a model's black-box examples, and why."""

    pick: Callable[[TrainConfig, list[TrainConfig]], TrainConfig | None]
    description: str


# Measured on CIFAR-10: examples crafted on N-LR seed 0 leave 2.0 % accuracy on 1-LR
# seed 0, which shares its initialization, data order and warm-up epochs, but 27.0 % when
# crafted on N-LR seed 1; same-seed transfer makes LR look weaker than it is. So the default is
# an independently seeded source, and every model (N-LR too) gets black-box rows: N-LR's are
# the N-LR -> N-LR control that tells "robust to transfer" from "a different model".
BLACKBOX_PROTOCOLS: dict[str, BlackBoxProtocol] = {
    "independent": BlackBoxProtocol(
        _next_seed, "crafted on an independently seeded model (the next seed of the source)"
    ),
    "same-seed": BlackBoxProtocol(
        _same_seed, "crafted on the source model of the same seed (the paper's protocol)"
    ),
}


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with the package."""
    return sorted(
        p.name[:-5]
        for p in resources.files("robustbench_lr.profiles").iterdir()
        if p.name.endswith(".toml")
    )


def selects(only: dict[str, tuple[str, ...]], cfg: TrainConfig) -> bool:
    """Whether `cfg` passes a selector such as `{"arch": ("resnet18",)}` (empty: everything)."""
    return all(str(getattr(cfg, key)) in values for key, values in only.items())

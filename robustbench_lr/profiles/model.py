"""What a parsed profile is: the models to train, the external ones, and every experiment
setting. A setting's default is its schema key's (`schema.py`), so it lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from robustbench_lr.config import TrainConfig
from robustbench_lr.external import ExternalTargetSpec
from robustbench_lr.profiles.protocols import BLACKBOX_PROTOCOLS, same_seed
from robustbench_lr.profiles.schema import (
    Analyses,
    AttackGrid,
    Audit,
    CorruptionGrid,
    L2Grid,
    ProfileFile,
    ShiftGrid,
)


@dataclass(frozen=True)
class Profile:
    """A parsed profile: the training configs and the experiment settings."""

    name: str
    description: str = ProfileFile.description
    models: tuple[TrainConfig, ...] = ()
    # `[[models]]` entries naming a model the bench does not train: `external = {...}` (your
    # factory and weights) or `robustbench = {...}` (a zoo entry); `external_build.load_external_target`
    # loads each.
    external_models: tuple[ExternalTargetSpec, ...] = ()
    n: int = ProfileFile.n
    attacks: AttackGrid = field(default_factory=AttackGrid)
    analyses: tuple[str, ...] = Analyses.kinds
    audit: bool = Audit.enabled
    audit_n: int = Audit.n
    audit_eps: float = Audit.eps
    # The `[audit]` budget keys the profile set (`schema.AUDIT_OPTIONS`), as `AuditOptions`
    # field -> value (each is the `robustbench-lr audit --<field with dashes>` flag).
    audit_options: dict[str, int] = field(default_factory=dict)
    analysis_options: dict[str, str] = field(default_factory=dict)
    matched_partner: str = Analyses.matched_partner
    tables: tuple[str, ...] = ProfileFile.tables
    source_path: str = ""
    corruptions: CorruptionGrid = field(default_factory=CorruptionGrid)
    l2: L2Grid = field(default_factory=L2Grid)
    shifts: ShiftGrid = field(default_factory=ShiftGrid)
    numerics_spread: bool = ProfileFile.numerics_spread

    def partner(self, cfg: TrainConfig, method: str) -> TrainConfig | None:
        """This profile's `method` model of the same dataset, arch, width and seed as `cfg`."""
        return same_seed(cfg, self._relatives(cfg, method))

    def black_box_source(self, cfg: TrainConfig) -> TrainConfig | None:
        """The model black-box examples for `cfg` are crafted on (`attacks.blackbox_protocol`),
        or None when that would be `cfg` itself (examples crafted on the attacked model are
        white-box, whatever a column says)."""
        relatives = self._relatives(cfg, self.attacks.blackbox_source)
        source = BLACKBOX_PROTOCOLS[self.attacks.blackbox_protocol](cfg, relatives)
        return source if source is not None and source != cfg else None

    def _relatives(self, cfg: TrainConfig, method: str) -> list[TrainConfig]:
        """The `method` models of `cfg`'s dataset, arch and width, by seed."""
        key = (method, cfg.dataset, cfg.arch, cfg.width)
        same = [m for m in self.models if (m.method, m.dataset, m.arch, m.width) == key]
        return sorted(same, key=lambda m: m.seed)


def shipped_profiles() -> list[str]:
    return sorted(
        p.name[:-5]
        for p in resources.files("robustbench_lr.profiles").iterdir()
        if p.name.endswith(".toml")
    )


def selects(only: dict[str, tuple[str, ...]], cfg: TrainConfig) -> bool:
    """Whether `cfg` passes a selector such as `{"arch": ("resnet18",)}` (empty: everything)."""
    return all(str(getattr(cfg, key)) in values for key, values in only.items())
